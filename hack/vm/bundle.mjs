// Bundles the guest suites (test/vm/guest/*.vm.ts) for node in the testbed guest, the way
// test/run.mjs bundles host suites, and rebuilds the executables they run when a source is newer.
// Output: <outdir>/test/vm/guest/<name>.vm.mjs.
//   node hack/vm/bundle.mjs <outdir> [substring…]   only the suites whose name contains one
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleScripts, ensureBuilt, root } from '../../build/dev.mjs';

const [outdir, ...filters] = process.argv.slice(2);
if (!outdir) {
  console.error('usage: node hack/vm/bundle.mjs <outdir>');
  process.exit(2);
}
const guestDir = join(root, 'test', 'vm', 'guest');
const suites = readdirSync(guestDir)
  .filter((f) => f.endsWith('.vm.ts') && (!filters.length || filters.some((s) => f.includes(s))))
  .map((f) => join(guestDir, f));
if (!suites.length) {
  console.error(`bundle: no *.vm.ts suites in ${guestDir}${filters.length ? ` match ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
ensureBuilt('vm');
await bundleScripts({ entryPoints: suites, outdir: resolve(outdir), outbase: root });

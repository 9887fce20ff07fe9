// Runs every uvu suite under test/ (each file in its own process, as root suites change the
// host) and ends with the line CI reads: "N passed, N failed".
//   node test/run.mjs [substring…]   run only the suites whose path contains a substring
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { bundleScripts, ensureBuilt, root } from '../build/dev.mjs';

// Per-run output directory: several runs may share one checkout.
const outDir = join(root, '.test-build', `run-${process.pid}`);
const SUITE_TIMEOUT_MS = 15 * 60 * 1000;

function walk(dir, keep, acc = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p, keep, acc);
    else if (keep(p)) acc.push(p);
  }
  return acc;
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function runSuite(file) {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (stream) => (chunk) => {
      output += chunk;
      stream.write(chunk);
    };
    child.stdout.on('data', onData(process.stdout));
    child.stderr.on('data', onData(process.stderr));
    const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const text = strip(output);
      // A suite may print several uvu summaries (the VM testbed relays the guest's suites): add them up.
      const sum = (label) => {
        const found = [...text.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
        return found.length ? found.reduce((n, m) => n + Number(m[1]), 0) : undefined;
      };
      const total = sum('Total');
      const passed = sum('Passed');
      const skipped = sum('Skipped') ?? 0;
      if (total === undefined || passed === undefined) {
        // Crashed before uvu could report: the suite counts as one failure.
        resolvePromise({ passed: 0, failed: 1, skipped: 0, note: `exited ${signal ?? code} without a summary` });
        return;
      }
      let failed = total - passed - skipped;
      if (code !== 0 && failed === 0) failed = 1;
      resolvePromise({ passed, failed, skipped, note: code === 0 ? '' : `exit ${signal ?? code}` });
    });
  });
}

async function main() {
  const filters = process.argv.slice(2);
  ensureBuilt('test');
  const suites = walk(join(root, 'test'), (p) => p.endsWith('.test.ts'))
    .map((p) => relative(root, p))
    .filter((p) => !filters.length || filters.some((f) => p.includes(f)))
    .sort();
  if (!suites.length) {
    console.error('test: no suites matched');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  rmSync(outDir, { recursive: true, force: true });
  await bundleScripts({ entryPoints: suites.map((s) => join(root, s)), outdir: outDir, outbase: root });
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const failures = [];
  for (const suite of suites) {
    console.log(`\n=== ${suite}`);
    const r = await runSuite(join(outDir, suite.replace(/\.ts$/, '.mjs')));
    totals.passed += r.passed;
    totals.failed += r.failed;
    totals.skipped += r.skipped;
    if (r.failed) failures.push(`${suite}${r.note ? ` (${r.note})` : ''}`);
  }
  console.log('');
  for (const f of failures) console.log(`FAILED ${f}`);
  if (totals.passed + totals.failed === 0) totals.failed = 1;
  const skipped = totals.skipped ? `, ${totals.skipped} skipped` : '';
  console.log(`${totals.passed} passed, ${totals.failed} failed${skipped}`);
  rmSync(outDir, { recursive: true, force: true });
  process.exit(totals.failed ? 1 : 0);
}

main().catch((err) => {
  console.error(`test: ${err.stack ?? err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});

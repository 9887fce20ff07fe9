// The kernel vDPA testbed, seen from the host: hack/vm/run.sh boots one guest per suite in
// test/vm/guest/*.vm.ts, and this relays what they reported. Each guest suite's output is printed
// whole, so test/run.mjs adds the guest's uvu summaries to the totals; the guest consoles are
// printed with a "vm| " prefix so their copy of those summaries is not counted twice. A guest
// that crashes, hangs or never runs its suite fails here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../support/paths.js';

const GUEST_SUITES = readdirSync(join(ROOT, 'test', 'vm', 'guest'))
  .filter((f) => f.endsWith('.vm.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();

const results = mkdtempSync(join(tmpdir(), 'vdpa-vm-'));
const read = (name: string): string | null => {
  const p = join(results, name);
  return existsSync(p) ? readFileSync(p, 'utf8') : null;
};

function runTestbed(): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(ROOT, 'hack', 'vm', 'run.sh'), results], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => console.log(`vm| ${line}`));
    }
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

test('the testbed boots guests on the backports kernel', async () => {
  const code = await runTestbed();
  assert.match(read('kernel') ?? '', /^\d+\.\d+\.\d+.*-amd64$/m, `no guest booted (run.sh exited ${code})`);
});

for (const suite of GUEST_SUITES) {
  test(`guest suite ${suite}`, () => {
    const output = read(`${suite}.out`);
    const consoleLog = join(results, `${suite}.console.log`);
    assert.ok(output !== null, `${suite} did not run in the guest; console: ${consoleLog}`);
    console.log(`\n--- guest ${suite}\n${output}`);
    assert.ok(read(`${suite}.rc`) !== null, `the guest stopped before ${suite} ended; console: ${consoleLog}`);
    assert.match(output, /^\s*Total:\s+\d+/m, `${suite} printed no uvu summary`);
    assert.is(read(`${suite}.rc`)?.trim(), '0', `${suite} exit code`);
  });
}

test.after(() => {
  // Keep the evidence of a failed run; a passing one leaves nothing behind.
  const passed = GUEST_SUITES.every((s) => read(`${s}.rc`)?.trim() === '0');
  if (passed) rmSync(results, { recursive: true, force: true });
  else console.log(`vm| results kept in ${results}`);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockName, LockTimeoutError } from '../../host/lock.js';

const scope = mkdtempSync(join(tmpdir(), 'vdpa-lock-'));

test('a second taker waits until the first releases, and learns its pid while it waits', async () => {
  const first = await acquireLock('0000:65:00.2', { scope, timeoutMs: 1000 });
  const order: string[] = [];
  let waitedOn = '';
  const second = acquireLock('0000:65:00.2', { scope, timeoutMs: 5000, onWait: (pid) => (waitedOn = pid) }).then((l) => {
    order.push('second');
    return l;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.is(waitedOn, String(process.pid), 'told while still waiting');
  order.push('release');
  await first.release();
  const l2 = await second;
  assert.equal(order, ['release', 'second']);
  assert.is(waitedOn, String(process.pid));
  await l2.release();
});

test('different keys and scopes do not block each other', async () => {
  const a = await acquireLock('k', { scope, timeoutMs: 500 });
  const b = await acquireLock('k2', { scope, timeoutMs: 500 });
  const c = await acquireLock('k', { scope: scope + '-other', timeoutMs: 500 });
  await Promise.all([a.release(), b.release(), c.release()]);
});

test('times out with the holder named', async () => {
  const a = await acquireLock('busy', { scope, timeoutMs: 500 });
  try {
    await acquireLock('busy', { scope, timeoutMs: 200 });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, LockTimeoutError);
    assert.match((err as Error).message, new RegExp(`held by pid ${process.pid}`));
  } finally {
    await a.release();
  }
});

test('a holder killed with SIGKILL leaves no stale lock', async () => {
  const name = Buffer.from(lockName(scope, 'crash')).toString('hex');
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen({path: Buffer.from('${name}','hex').toString()}, () => console.log('held'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  const waiting = acquireLock('crash', { scope, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  child.kill('SIGKILL');
  const lock = await waiting;
  assert.ok(Date.now() - started < 2000, 'woke up promptly');
  await lock.release();
});

test.after(() => rmSync(scope, { recursive: true, force: true }));
test.run();

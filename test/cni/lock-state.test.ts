import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockName, LockTimeoutError } from '../../host/lock.js';
import { listStates, readState, removeState, StateError, statePath, writeState, type AttachmentState } from '../../host/state.js';

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

const stateDir = mkdtempSync(join(tmpdir(), 'vdpa-state-'));
const sample: AttachmentState = {
  containerId: 'abc.1',
  ifname: 'net 1',
  netns: '/run/netns/p',
  pciAddress: '0000:65:00.2',
  driver: 'virtio',
  netdev: 'eth5',
  netdevAlias: '',
  mark: 'vdpa-cni/x/eth5',
  representor: 'pf0vf0',
  bridge: 'br-int',
  ifaceId: 'ns_p',
  steps: ['ipam'],
  createdAt: new Date().toISOString(),
};

test('state: write, read, list, remove; no temp files left', () => {
  assert.is(readState(stateDir, 'abc.1', 'net 1'), null);
  writeState(stateDir, sample);
  writeState(stateDir, { ...sample, steps: ['ipam', 'netdev'] });
  assert.equal(readState(stateDir, 'abc.1', 'net 1')?.steps, ['ipam', 'netdev']);
  assert.equal(readdirSync(join(stateDir, 'attachments')), ['abc.1@net%201.json']);
  assert.is(listStates(stateDir).states.length, 1);
  removeState(stateDir, 'abc.1', 'net 1');
  removeState(stateDir, 'abc.1', 'net 1');
  assert.is(readState(stateDir, 'abc.1', 'net 1'), null);
});

test('state: a corrupt file is a StateError for read and a reported error for list', () => {
  writeState(stateDir, sample);
  writeFileSync(statePath(stateDir, 'bad', 'eth0'), '{"containerId": 1}');
  assert.throws(() => readState(stateDir, 'bad', 'eth0'), (e: unknown) => e instanceof StateError && /containerId/.test(String(e)));
  const { states, errors } = listStates(stateDir);
  assert.is(states.length, 1);
  assert.is(errors.length, 1);
});

test.after(() => {
  rmSync(scope, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
});
test.run();

// host/lock.ts between callers in this process and in others: other node processes (this file
// run again as a child: VDPA_LOCK_TEST_CHILD), flock(1) with no JavaScript runtime at all, and an
// unprivileged squatter. Runs as root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockPath, LockTimeoutError } from '../../host/lock.js';

interface ChildOrder {
  readonly scope: string;
  readonly key: string;
  readonly timeoutMs: number;
}

/** The child: takes the lock and says "held <pid>" (then hangs), or says "timeout <holder pid>". */
async function child(order: ChildOrder): Promise<void> {
  try {
    await acquireLock(order.key, { scope: order.scope, timeoutMs: order.timeoutMs });
    process.stdout.write(`held ${process.pid}\n`);
    setInterval(() => undefined, 60_000);
  } catch (err) {
    if (!(err instanceof LockTimeoutError)) throw err;
    process.stdout.write(`timeout ${err.holder}\n`);
    process.exit(0);
  }
}

function spawnChild(order: ChildOrder): { proc: ChildProcess; said: Promise<string> } {
  const proc = spawn(process.execPath, [process.argv[1]!], {
    env: { ...process.env, VDPA_LOCK_TEST_CHILD: JSON.stringify(order) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const said = new Promise<string>((resolve) => proc.stdout!.setEncoding('utf8').once('data', (d: string) => resolve(d.trim())));
  return { proc, said };
}

const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));

function suite(): void {
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
    const c = await acquireLock('k', { scope: join(scope, 'other'), timeoutMs: 500 });
    await Promise.all([a.release(), b.release(), c.release()]);
  });

  test('times out with the holder named', async () => {
    const a = await acquireLock('busy', { scope, timeoutMs: 500 });
    try {
      await acquireLock('busy', { scope, timeoutMs: 200 });
      assert.unreachable();
    } catch (err) {
      assert.instance(err, LockTimeoutError);
      assert.is((err as LockTimeoutError).holder, String(process.pid));
      assert.match((err as Error).message, new RegExp(`held by pid ${process.pid}`));
    } finally {
      await a.release();
    }
  });

  test('a holder killed with SIGKILL leaves no stale lock', async () => {
    const { proc, said } = spawnChild({ scope, key: 'crash', timeoutMs: 5000 });
    assert.is(await said, `held ${proc.pid}`);
    let waitedOn = '';
    const waiting = acquireLock('crash', { scope, timeoutMs: 10_000, onWait: (pid) => (waitedOn = pid) });
    await new Promise((r) => setTimeout(r, 100));
    assert.is(waitedOn, String(proc.pid), 'waits for the child');
    const started = Date.now();
    proc.kill('SIGKILL');
    const lock = await waiting;
    assert.ok(Date.now() - started < 2000, 'woke up promptly');
    await lock.release();
  });

  test('a lock held by one process is busy in another, whichever took it through the file', async () => {
    // Another node process holds it: we time out naming it.
    const holder = spawnChild({ scope, key: 'shared', timeoutMs: 5000 });
    assert.is(await holder.said, `held ${holder.proc.pid}`);
    try {
      await acquireLock('shared', { scope, timeoutMs: 200 });
      assert.unreachable();
    } catch (err) {
      assert.instance(err, LockTimeoutError);
      assert.is((err as LockTimeoutError).holder, String(holder.proc.pid));
    }
    holder.proc.kill('SIGKILL');
    await exited(holder.proc);

    // We hold it: another node process times out naming us, and so does flock(1), no runtime at all.
    const mine = await acquireLock('shared', { scope, timeoutMs: 1000 });
    const waiter = spawnChild({ scope, key: 'shared', timeoutMs: 200 });
    assert.is(await waiter.said, `timeout ${process.pid}`);
    assert.is(spawnSync('flock', ['-x', '-n', lockPath(scope, 'shared'), 'true']).status, 1, 'flock(1) sees it busy');
    await mine.release();
    assert.is(spawnSync('flock', ['-x', '-n', lockPath(scope, 'shared'), 'true']).status, 0, 'and free once released');

    // flock(1) holds it: we wait, and get it when it lets go.
    const sh = spawn('flock', ['-x', lockPath(scope, 'shared'), '-c', 'echo held; sleep 0.5'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => sh.stdout.once('data', r));
    const started = Date.now();
    const got = await acquireLock('shared', { scope, timeoutMs: 5000 });
    assert.ok(Date.now() - started >= 300, 'waited for flock(1)');
    await got.release();
  });

  test('an unprivileged process can neither take the lock nor block it', async () => {
    // A scope others may look into, as /var/lib/cni/vdpa-k8s is (root-owned, 0755).
    const open = join(scope, 'open');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(scope, 0o755);
    await (await acquireLock('0000:65:00.3', { scope: open, timeoutMs: 500 })).release();
    const file = lockPath(open, '0000:65:00.3');
    // The name the abstract-socket lock used for this key: any uid could bind it.
    const oldName = `\0vdpa-k8s/${createHash('sha256').update(open).digest('hex').slice(0, 12)}/0000:65:00.3`.slice(0, 107);
    const script = `
      const fs = require('fs'), cp = require('child_process'), net = require('net');
      const tryIt = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
      const r = {
        open: tryIt(() => fs.openSync(${JSON.stringify(file)}, 'r')),
        create: tryIt(() => fs.openSync(${JSON.stringify(join(open, 'locks', 'mine.lock'))}, 'w')),
        flock: cp.spawnSync('flock', ['-x', '-n', ${JSON.stringify(file)}, 'true']).status,
      };
      net.createServer().on('error', (e) => console.log(JSON.stringify({ ...r, bind: e.code })))
        .listen({ path: Buffer.from(${JSON.stringify(Buffer.from(oldName).toString('hex'))}, 'hex').toString() }, () => console.log(JSON.stringify({ ...r, bind: 'ok' })));`;
    const squatter = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const said = await new Promise<string>((r) => squatter.stdout.setEncoding('utf8').once('data', (d: string) => r(d.trim())));
      const r = JSON.parse(said) as Record<string, unknown>;
      assert.is(r.open, 'EACCES', 'cannot open the lock file');
      assert.is(r.create, 'EACCES', 'cannot create files beside it');
      assert.is.not(r.flock, 0, 'flock(1) cannot lock it');
      assert.is(r.bind, 'ok', 'squats the old abstract socket name');
      const started = Date.now();
      const lock = await acquireLock('0000:65:00.3', { scope: open, timeoutMs: 5000, onWait: () => assert.unreachable('never waits') });
      assert.ok(Date.now() - started < 500, 'taken at once');
      await lock.release();
    } finally {
      squatter.kill('SIGKILL');
      chmodSync(scope, 0o700);
    }
  });

  test('refuses a locks directory another uid owns or can write, or a symlink', async () => {
    const refused = async (setup: (locks: string) => void, why: RegExp) => {
      const s = mkdtempSync(join(scope, 'refuse-'));
      setup(join(s, 'locks'));
      try {
        await acquireLock('k', { scope: s, timeoutMs: 200 });
        assert.unreachable();
      } catch (err) {
        assert.match((err as Error).message, why);
      }
    };
    await refused((d) => (mkdirSync(d, { mode: 0o700 }), chownSync(d, 65534, 65534)), /locks is owned by uid 65534; refusing/);
    await refused((d) => (mkdirSync(d), chmodSync(d, 0o777)), /locks is writable by group or others \(mode 777\)/);
    await refused((d) => symlinkSync(mkdtempSync(join(scope, 'elsewhere-')), d), /locks is not a directory/);
    await refused((d) => (mkdirSync(d, { mode: 0o700 }), symlinkSync(join(scope, 'target'), join(d, 'k.lock'))), /ELOOP/);
  });

  test.after(() => rmSync(scope, { recursive: true, force: true }));
  test.run();
}

const childOrder = process.env.VDPA_LOCK_TEST_CHILD;
if (childOrder) await child(JSON.parse(childOrder) as ChildOrder);
else suite();

// OVS hardware offload through the native OVSDB client against a real ovsdb-server (a private one
// on a temporary socket): set with its restart command, a second run changes nothing, teardown
// puts back the value that was there before (or removes the key), an unreachable OVSDB refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlanError } from '../../deviceplugin/provision/plan.js';
import { parsePolicy } from '../../deviceplugin/provision/policy.js';
import { Bench } from './harness.js';
import { FakeKernel } from './kernel.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-provision-ovs-'));
const remote = `unix:${join(dir, 'db.sock')}`;
const vsctl = (...args: string[]) => execFileSync('ovs-vsctl', [`--db=${remote}`, '--no-wait', ...args], { encoding: 'utf8' }).trim();
const hwOffload = () => vsctl('get', 'Open_vSwitch', '.', 'other_config').match(/hw-offload="?(\w+)/)?.[1] ?? null;
const policy = (on: boolean) => parsePolicy({ ovs: { hwOffload: on, remote, restartCommand: ['true', 'restart-ovs-vswitchd'] } });

test.before(() => {
  execFileSync('ovsdb-tool', ['create', join(dir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema']);
  execFileSync('ovsdb-server', [join(dir, 'conf.db'), `--remote=p${remote}`, `--pidfile=${join(dir, 'pid')}`, `--log-file=${join(dir, 'log')}`, '--detach', '--no-chdir']);
  vsctl('init');
});

test.after(() => {
  try {
    process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGTERM');
  } catch {
    // Already gone.
  }
  rmSync(dir, { recursive: true, force: true });
});

test('hw-offload set with the restart command; a second run changes nothing; teardown removes the key it added', async () => {
  const b = new Bench(new FakeKernel({ pfs: [] }));
  try {
    assert.is(hwOffload(), null);
    const up = await b.run('provision', policy(true));
    assert.equal(up.changes, ['run true restart-ovs-vswitchd']);
    assert.is(hwOffload(), 'true');
    assert.equal((await b.run('provision', policy(true))).changes, []);
    const down = await b.run('teardown', null);
    assert.equal(down.changes, ['run true restart-ovs-vswitchd']);
    assert.is(hwOffload(), null, 'the key we added is gone');
  } finally {
    b.cleanup();
  }
});

test('teardown puts back the value that was there; hwOffload false turns a true off', async () => {
  const b = new Bench(new FakeKernel({ pfs: [] }));
  try {
    vsctl('set', 'Open_vSwitch', '.', 'other_config:hw-offload=false', 'other_config:tc-policy=skip_sw');
    await b.run('provision', policy(true));
    assert.is(hwOffload(), 'true');
    await b.run('teardown', null);
    assert.is(hwOffload(), 'false');
    assert.match(vsctl('get', 'Open_vSwitch', '.', 'other_config:tc-policy'), 'skip_sw', 'other keys untouched');
    vsctl('set', 'Open_vSwitch', '.', 'other_config:hw-offload=true');
    await b.run('provision', policy(false));
    assert.is(hwOffload(), 'false');
  } finally {
    b.cleanup();
  }
});

test('an OVSDB that cannot be reached refuses the plan and changes nothing', async () => {
  const b = new Bench(new FakeKernel({ pfs: [] }));
  try {
    const gone = parsePolicy({ ovs: { hwOffload: true, remote: `unix:${join(dir, 'nosuch.sock')}` } });
    try {
      await b.plan(gone);
      assert.unreachable('refused');
    } catch (err) {
      assert.instance(err, PlanError);
      assert.match((err as Error).message, /^ovs\.remote: cannot connect to OVSDB at unix:.*nosuch\.sock/);
    }
  } finally {
    b.cleanup();
  }
});

test.run();

// The executor on fixture trees behind a fake kernel that records every write: the exact writes
// and tool runs of a full provision, convergence (a second run changes nothing), the retry
// without refused attributes, failures part-way that the next run completes, dry-run, and a
// teardown that undoes exactly what was recorded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { PlanStepError } from '../../deviceplugin/provision/apply.js';
import { parsePolicy } from '../../deviceplugin/provision/policy.js';
import { vdpaBusDriver } from '../../host/vdpa.js';
import { Bench, changes, FOUR_VFS, VFS } from './harness.js';
import { FakeKernel } from './kernel.js';

const PF = '0000:65:00.0';
const freshPf = () => new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }));
const vdpaDriver = (b: Bench, name: string) => {
  const d = b.k.fx.vf(name.slice(5));
  return d.vdpa.includes(name) ? d.driver : 'absent';
};

test('full provision of a fresh PF: the exact writes and tool runs, in order; a second run changes nothing', async () => {
  const b = freshPf();
  try {
    const first = await b.run('provision', FOUR_VFS);
    assert.equal(first.changes, [
      'run modprobe -a mlx5_vdpa vdpa vhost_vdpa virtio_net virtio_vdpa',
      `write bus/pci/devices/${PF}/sriov_numvfs 4`,
      // switchdev: the new VFs off their driver, the mode, the VFs back.
      ...VFS.map((vf) => `write bus/pci/devices/${vf}/driver/unbind ${vf}`),
      `run devlink dev eswitch set pci/${PF} mode switchdev`,
      ...VFS.map((vf) => `write bus/pci/drivers/mlx5_core/bind ${vf}`),
      'run ethtool -K enp101s0f0np0 hw-tc-offload on',
      `run vdpa dev add name vdpa:${VFS[0]} mgmtdev pci/${VFS[0]} mac 02:00:00:00:65:00 mtu 9000`,
      `run vdpa dev add name vdpa:${VFS[1]} mgmtdev pci/${VFS[1]} mac 02:00:00:00:65:01 mtu 9000`,
      `run vdpa dev add name vdpa:${VFS[2]} mgmtdev pci/${VFS[2]} max_vqp 2`,
      // The new device came up on virtio_vdpa: unbind, driver_override, bind.
      `write bus/vdpa/devices/vdpa:${VFS[2]}/driver/unbind vdpa:${VFS[2]}`,
      `write bus/vdpa/devices/vdpa:${VFS[2]}/driver_override vhost_vdpa`,
      `write bus/vdpa/drivers/vhost_vdpa/bind vdpa:${VFS[2]}`,
      `run vdpa dev add name vdpa:${VFS[3]} mgmtdev pci/${VFS[3]} max_vqp 2`,
      `write bus/vdpa/devices/vdpa:${VFS[3]}/driver/unbind vdpa:${VFS[3]}`,
      `write bus/vdpa/devices/vdpa:${VFS[3]}/driver_override vhost_vdpa`,
      `write bus/vdpa/drivers/vhost_vdpa/bind vdpa:${VFS[3]}`,
    ]);
    assert.equal(
      VFS.map((vf) => vdpaDriver(b, `vdpa:${vf}`)),
      ['virtio', 'virtio', 'vhost', 'vhost'],
    );
    assert.is(b.k.eswitch.get(`pci/${PF}`), 'switchdev');
    const state = JSON.parse(readFileSync(b.stateFile, 'utf8')) as { entries: { key: string; description: string }[] };
    assert.equal(
      state.entries.map((e) => e.key),
      [`numvfs:pci/${PF}`, `eswitch:pci/${PF}`, 'hwtc:enp101s0f0np0', ...VFS.map((vf) => `vdpa-device:vdpa:${vf}`)],
    );
    assert.is(state.entries[0]!.description, `set sriov_numvfs of pci/${PF} to 0`);
    const done = b.logLines().find((l) => l.msg === 'provision: done');
    assert.equal([done?.steps, done?.rounds], [16 - 8, 2], 'eight steps in round 1, round 2 found nothing to do');

    const second = await b.run('provision', FOUR_VFS);
    assert.equal(second.changes, [], 'a second run changes nothing');
    assert.ok(b.logLines().some((l) => l.msg === 'provision: nothing to do'));

    const down = await b.run('teardown', null);
    assert.equal(down.changes, [
      ...[...VFS].reverse().map((vf) => `run vdpa dev del vdpa:${vf}`),
      'run ethtool -K enp101s0f0np0 hw-tc-offload off',
      ...VFS.map((vf) => `write bus/pci/devices/${vf}/driver/unbind ${vf}`),
      `run devlink dev eswitch set pci/${PF} mode legacy`,
      ...VFS.map((vf) => `write bus/pci/drivers/mlx5_core/bind ${vf}`),
      `write bus/pci/devices/${PF}/sriov_numvfs 0`,
    ]);
    assert.not.ok(existsSync(b.stateFile), 'the state file goes with the last undo');
    assert.equal((await b.run('teardown', null)).changes, []);
  } finally {
    b.cleanup();
  }
});

test('dry-run prints the plan with undos and changes nothing', async () => {
  const b = freshPf();
  try {
    const { changes, out } = await b.run('provision', FOUR_VFS, true);
    assert.equal(changes, []);
    assert.not.ok(existsSync(b.stateFile), 'no state file either');
    const lines = out.split('\n');
    assert.is(lines[0], 'provision plan: 8 steps');
    assert.ok(lines.includes(`   2. [pfs[0]] set sriov_numvfs of pci/${PF} to 4`), out);
    assert.ok(lines.includes(`      undo: set sriov_numvfs of pci/${PF} to 0`), out);
    assert.ok(lines.includes(`      undo: delete vDPA device vdpa:${VFS[3]}`), out);
  } finally {
    b.cleanup();
  }
});

test('a management device that refuses max_vqp and mac gets the device without them, with a warning', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 1, vdpa: 'none' }] }, { refuse: ['max_vqp', 'mac'], hwTc: { enp101s0f0np0: true } }));
  try {
    const policy = parsePolicy({
      pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'virtio', maxVqp: 4, macBase: '02:00:00:00:00:10', mtu: 1500 }] }],
    });
    const { changes } = await b.run('provision', policy);
    assert.equal(changes.filter((c) => c.startsWith('run vdpa')), [
      `run vdpa dev add name vdpa:${VFS[0]} mgmtdev pci/${VFS[0]} max_vqp 4 mac 02:00:00:00:00:10 mtu 1500`,
      `run vdpa dev add name vdpa:${VFS[0]} mgmtdev pci/${VFS[0]} mac 02:00:00:00:00:10 mtu 1500`,
      `run vdpa dev add name vdpa:${VFS[0]} mgmtdev pci/${VFS[0]} mtu 1500`,
    ]);
    assert.is(vdpaDriver(b, `vdpa:${VFS[0]}`), 'virtio');
    const warn = b.logLines().find((l) => l.level === 'warn' && 'dropped' in l);
    assert.equal(warn?.dropped, ['max_vqp', 'mac']);
    assert.equal((await b.run('provision', policy)).changes, [], 'and the next run does not recreate it');
  } finally {
    b.cleanup();
  }
});

test('a vDPA bind that fails part-way: the new device is deleted, the run stops, the next run completes it', async () => {
  const b = freshPf();
  try {
    b.k.failNext = { match: new RegExp(`^write bus/vdpa/drivers/vhost_vdpa/bind vdpa:${VFS[3]}`), message: 'EIO' };
    let failure: unknown = null;
    try {
      await b.run('provision', FOUR_VFS);
    } catch (err) {
      failure = err;
    }
    assert.instance(failure, PlanStepError);
    assert.match((failure as Error).message, `step 8 (create vDPA device vdpa:${VFS[3]}`);
    const ops = b.k.take();
    assert.equal(
      ops.slice(-4),
      [
        `write bus/vdpa/drivers/vhost_vdpa/bind vdpa:${VFS[3]}`,
        `write bus/vdpa/devices/vdpa:${VFS[3]}/driver_override`,
        `write bus/vdpa/drivers/virtio_vdpa/bind vdpa:${VFS[3]}`,
        `run vdpa dev del vdpa:${VFS[3]}`,
      ],
      'put back on its driver, then deleted: no device is left unbound',
    );
    assert.is(vdpaDriver(b, `vdpa:${VFS[3]}`), 'absent');
    assert.is(vdpaDriver(b, `vdpa:${VFS[2]}`), 'vhost', 'the steps before it stay done');

    const { out } = await b.run('provision', FOUR_VFS, true);
    assert.is(out.split('\n')[0], 'provision plan: 1 step');
    const rerun = await b.run('provision', FOUR_VFS);
    assert.equal(rerun.changes, [
      `run vdpa dev add name vdpa:${VFS[3]} mgmtdev pci/${VFS[3]} max_vqp 2`,
      `write bus/vdpa/devices/vdpa:${VFS[3]}/driver/unbind vdpa:${VFS[3]}`,
      `write bus/vdpa/devices/vdpa:${VFS[3]}/driver_override vhost_vdpa`,
      `write bus/vdpa/drivers/vhost_vdpa/bind vdpa:${VFS[3]}`,
    ]);
    assert.is(vdpaDriver(b, `vdpa:${VFS[3]}`), 'vhost');
  } finally {
    b.cleanup();
  }
});

test('an eswitch switch that fails still rebinds the VFs; the next run switches', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 2, vdpa: 'none', switchdev: false }] }));
  try {
    const policy = parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', hwTcOffload: false }] });
    b.k.failNext = { match: /devlink dev eswitch set/, message: 'Error: mlx5_core: Failed setting eswitch to offloads.' };
    let failure: unknown = null;
    try {
      await b.run('provision', policy);
    } catch (err) {
      failure = err;
    }
    assert.match((failure as Error).message, 'Failed setting eswitch to offloads');
    assert.equal(changes(b.k.take()), [
      ...VFS.slice(0, 2).map((vf) => `write bus/pci/devices/${vf}/driver/unbind ${vf}`),
      `run devlink dev eswitch set pci/${PF} mode switchdev`,
      ...VFS.slice(0, 2).map((vf) => `write bus/pci/drivers/mlx5_core/bind ${vf}`),
    ]);
    assert.equal(VFS.slice(0, 2).map((vf) => b.k.pciDriverOf(vf)), ['mlx5_core', 'mlx5_core']);
    await b.run('provision', policy);
    assert.is(b.k.eswitch.get(`pci/${PF}`), 'switchdev');
  } finally {
    b.cleanup();
  }
});

test('vp_vdpa function: rebind that fails goes back to virtio-pci; the next run binds, creates; teardown gives it back', async () => {
  const b = new Bench(new FakeKernel({ pfs: [], plainFunction: { vdpa: 'unbound' } }, { modules: ['vdpa', 'virtio_vdpa', 'virtio_net'], refuse: ['mac'] }));
  try {
    b.k.fx.removeVdpa(b.k.fx.plainFunction!.vdpa);
    b.k.plainFunctionOnVirtioPci();
    const fn = '0000:00:05.0';
    const policy = parsePolicy({ mgmtDevs: [{ mgmtDev: `pci/${fn}`, vdpaType: 'vhost', macBase: '02:00:00:00:05:00' }] });
    b.k.failNext = { match: /^write bus\/pci\/drivers\/vp-vdpa\/bind/, message: 'ENODEV' };
    try {
      await b.run('provision', policy);
      assert.unreachable('the bind failure stops the run');
    } catch (err) {
      assert.instance(err, PlanStepError);
    }
    assert.equal(b.k.take().filter((o) => o.startsWith('write')), [
      `write bus/pci/devices/${fn}/driver/unbind ${fn}`,
      `write bus/pci/devices/${fn}/driver_override vp-vdpa`,
      `write bus/pci/drivers/vp-vdpa/bind ${fn}`,
      `write bus/pci/devices/${fn}/driver_override`,
      `write bus/pci/drivers/virtio-pci/bind ${fn}`,
    ]);
    assert.is(b.k.pciDriverOf(fn), 'virtio-pci', 'back on its driver, not unbound');

    await b.run('provision', policy);
    assert.is(b.k.pciDriverOf(fn), 'vp-vdpa');
    assert.is(vdpaBusDriver(b.k.sysfsRoot, `vdpa:${fn}`), 'vhost_vdpa');
    assert.equal((await b.run('provision', policy)).changes, []);

    const down = await b.run('teardown', null);
    assert.equal(down.changes, [
      `run vdpa dev del vdpa:${fn}`,
      `write bus/pci/devices/${fn}/driver/unbind ${fn}`,
      `write bus/pci/devices/${fn}/driver_override`,
      `write bus/pci/drivers_probe ${fn}`,
    ]);
    assert.is(b.k.pciDriverOf(fn), 'virtio-pci');
    assert.not.ok(existsSync(b.stateFile), 'nothing recorded is left');
  } finally {
    b.cleanup();
  }
});

test('teardown undoes what provision recorded, newest first, and nothing else', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: [{ vdpa: 'vhost' }, { vdpa: 'none' }] }] }, { modules: ['vdpa', 'virtio_vdpa', 'virtio_net', 'mlx5_vdpa'] }));
  try {
    const foreign = b.k.fx.vfs[0]!.vdpa[0]!;
    // Switchdev and 2 VFs were there before: not ours. VF 0's device is someone else's.
    const policy = parsePolicy({ pfs: [{ pciAddress: PF, numVfs: 2, eSwitchMode: 'switchdev', vdpa: [{ vfs: '1', vdpaType: 'virtio' }] }] });
    const up = await b.run('provision', policy);
    assert.equal(up.changes, ['run ethtool -K enp101s0f0np0 hw-tc-offload on', `run vdpa dev add name vdpa:${VFS[1]} mgmtdev pci/${VFS[1]}`]);

    const { out } = await b.run('teardown', null, true);
    assert.equal(out.trim().split('\n'), ['teardown plan: 2 steps', `   1. [teardown] delete vDPA device vdpa:${VFS[1]}`, '   2. [teardown] turn hw-tc-offload off on enp101s0f0np0']);
    await b.run('teardown', null);
    assert.equal(b.k.fx.vf(VFS[1]).vdpa, [], 'our device is gone');
    assert.equal(b.k.fx.vf(VFS[0]).vdpa, [foreign], 'the device we did not create stays');
    assert.is(b.k.eswitch.get(`pci/${PF}`), 'switchdev', 'the mode we found stays');
    assert.is(b.k.hwTc.get('enp101s0f0np0'), false);
    assert.not.ok(existsSync(b.stateFile));
  } finally {
    b.cleanup();
  }
});

test('teardown is refused while a pod holds a device it would remove', async () => {
  const b = freshPf();
  try {
    await b.run('provision', FOUR_VFS);
    const file = b.allocate(VFS[1]);
    try {
      await b.run('teardown', null);
      assert.unreachable('refused');
    } catch (err) {
      assert.match((err as Error).message, `${VFS[1]} (${file})`);
    }
    assert.equal(changes(b.k.take()), [], 'nothing changed');
    assert.ok(existsSync(b.stateFile));
  } finally {
    b.cleanup();
  }
});

test('a smaller policy deletes only our devices that it no longer wants', async () => {
  const b = freshPf();
  try {
    await b.run('provision', FOUR_VFS);
    const smaller = parsePolicy({
      pfs: [{ pciAddress: PF, numVfs: 4, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio', macBase: '02:00:00:00:65:00', mtu: 9000 }] }],
    });
    const { changes } = await b.run('provision', smaller);
    assert.equal(changes, [`run vdpa dev del vdpa:${VFS[2]}`, `run vdpa dev del vdpa:${VFS[3]}`]);
    const state = JSON.parse(readFileSync(b.stateFile, 'utf8')) as { entries: { key: string }[] };
    assert.not.ok(state.entries.some((e) => e.key.includes(VFS[2])), 'forgotten once deleted');
  } finally {
    b.cleanup();
  }
});

test('a node that does not do what a step asks stops the run instead of looping', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false }] }));
  try {
    // devlink says yes, the mode stays legacy.
    const real = b.k.run.bind(b.k);
    b.k.run = (tool, args) => (tool === 'devlink' && args[0] === 'dev' ? Promise.resolve({ code: 0, signal: null, stdout: '', stderr: '' }) : real(tool, args));
    const policy = parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', hwTcOffload: false }] });
    try {
      await b.run('provision', policy);
      assert.unreachable('stopped');
    } catch (err) {
      assert.match((err as Error).message, `no progress: round 2 plans the same 1 step again (put the eswitch of pci/${PF} in switchdev mode`);
    }
  } finally {
    b.cleanup();
  }
});

test.run();

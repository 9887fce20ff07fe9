// mlx5 specifics and drift, on fixture nodes behind the fake kernel: flow_steering_mode set to
// smfs before the VFs and switchdev (and back after legacy on teardown), refused or noted where
// mlx5 would refuse it; vDPA devices whose mac, mtu or max_vqp differ from the policy made again,
// unless a pod holds one (then refused, naming who holds it) or provision did not make it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parsePolicy } from '../../deviceplugin/provision/policy.js';
import { Bench, FOUR_VFS, refused, VFS } from './harness.js';
import { FakeKernel } from './kernel.js';

const PF = '0000:65:00.0';
const STEERING = (value: string) => `run devlink dev param set pci/${PF} name flow_steering_mode value ${value} cmode runtime`;

test('flow_steering_mode: smfs before the VFs and switchdev; teardown puts it back after legacy', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }, { steering: { [`pci/${PF}`]: 'dmfs' } }));
  try {
    const { changes } = await b.run('provision', FOUR_VFS);
    const at = (op: string) => changes.findIndex((c) => c.startsWith(op));
    assert.ok(at(STEERING('smfs')) >= 0, changes.join('\n'));
    assert.ok(at(STEERING('smfs')) < at(`write bus/pci/devices/${PF}/sriov_numvfs`), 'before the VFs');
    assert.ok(at(`write bus/pci/devices/${PF}/sriov_numvfs`) < at(`run devlink dev eswitch set pci/${PF} mode switchdev`));
    assert.is(b.k.steering.get(`pci/${PF}`), 'smfs');
    assert.equal((await b.run('provision', FOUR_VFS)).changes, []);
    const down = (await b.run('teardown', null)).changes;
    assert.ok(down.indexOf(`run devlink dev eswitch set pci/${PF} mode legacy`) < down.indexOf(STEERING('dmfs')), down.join('\n'));
    assert.is(b.k.steering.get(`pci/${PF}`), 'dmfs');
  } finally {
    b.cleanup();
  }
});

test('flow_steering_mode: a PF already in switchdev keeps it (noted, or refused when the policy names a mode); none where the device has no such parameter', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, totalVfs: 8 }] }, { steering: { [`pci/${PF}`]: 'dmfs' }, hwTc: { enp101s0f0np0: true } }));
  try {
    const plan = await b.plan(parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev' }] }));
    assert.equal(plan.steps, []);
    assert.equal(plan.notes, [`pfs[0]: pci/${PF} has flow_steering_mode dmfs, which changes in legacy mode only; left as it is`]);
    assert.equal(await refused(b, parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', flowSteeringMode: 'smfs' }] })), [
      `pfs[0].flowSteeringMode: pci/${PF} has flow_steering_mode dmfs, which changes in legacy mode only; switch the eswitch to legacy first`,
    ]);
  } finally {
    b.cleanup();
  }
  const plain = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }));
  try {
    assert.not.ok((await plain.plan(FOUR_VFS)).steps.some((s) => s.action.kind === 'set-devlink-param'));
    assert.equal(await refused(plain, parsePolicy({ pfs: [{ pciAddress: PF, flowSteeringMode: 'smfs' }] })), [`pfs[0].flowSteeringMode: devlink shows no flow_steering_mode parameter on pci/${PF}`]);
  } finally {
    plain.cleanup();
  }
});

test('drift: a device whose mtu or mac changed is made again; so is one whose policy changed; then nothing', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }));
  try {
    await b.run('provision', FOUR_VFS);
    const name = `vdpa:${VFS[0]}`;
    b.k.vdpaConfig.set(name, { mac: '02:00:00:00:99:99', mtu: 1500, max_vq_pairs: 1 });
    const plan = await b.plan(FOUR_VFS);
    assert.equal(
      plan.steps.map((s) => s.description),
      [`recreate vDPA device ${name} on pci/${VFS[0]} (mac 02:00:00:00:65:00, mtu 9000), bound to virtio_vdpa: it has mac 02:00:00:00:99:99, not 02:00:00:00:65:00, mtu 1500, not 9000`],
    );
    assert.equal((await b.run('provision', FOUR_VFS)).changes, [
      `run vdpa dev del ${name}`,
      `run vdpa dev add name ${name} mgmtdev pci/${VFS[0]} mac 02:00:00:00:65:00 mtu 9000`,
    ]);
    assert.equal(b.k.vdpaConfig.get(name), { mac: '02:00:00:00:65:00', mtu: 9000, max_vq_pairs: 1 });
    assert.equal((await b.run('provision', FOUR_VFS)).changes, []);

    // The policy asks for more queue pairs on the vhost devices: both are made again, and bound to vhost_vdpa.
    const more = parsePolicy({
      pfs: [{ pciAddress: PF, numVfs: 4, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio', macBase: '02:00:00:00:65:00', mtu: 9000 }, { vfs: '2-3', vdpaType: 'vhost', maxVqp: 4 }] }],
    });
    const { changes } = await b.run('provision', more);
    assert.equal(changes.filter((c) => c.startsWith('run vdpa')), [
      `run vdpa dev del vdpa:${VFS[2]}`,
      `run vdpa dev add name vdpa:${VFS[2]} mgmtdev pci/${VFS[2]} max_vqp 4`,
      `run vdpa dev del vdpa:${VFS[3]}`,
      `run vdpa dev add name vdpa:${VFS[3]} mgmtdev pci/${VFS[3]} max_vqp 4`,
    ]);
    assert.equal([b.k.fx.vf(VFS[2]).driver, b.k.fx.vf(VFS[3]).driver], ['vhost', 'vhost']);
    assert.equal((await b.run('provision', more)).changes, []);
    // Teardown still deletes them: their record survived being made again.
    await b.run('teardown', null);
    assert.equal(b.k.fx.vfs.flatMap((vf) => vf.vdpa), []);
  } finally {
    b.cleanup();
  }
});

test('drift on a device a pod holds is refused, naming who holds it; nothing changes', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }));
  try {
    await b.run('provision', FOUR_VFS);
    b.k.vdpaConfig.set(`vdpa:${VFS[1]}`, { mac: '02:00:00:00:65:01', mtu: 1500, max_vq_pairs: 1 });
    const holder = b.allocate(VFS[1]);
    assert.equal(await refused(b, FOUR_VFS), [
      `pfs[0].vdpa[0]: in use by a pool with allocated devices: ${VFS[1]} (${holder}); recreating vdpa:${VFS[1]} (it has mtu 1500, not 9000) would take them away from their pods`,
    ]);
    b.k.take();
    await b.run('provision', FOUR_VFS).catch(() => undefined);
    assert.not.ok(b.k.take().some((op) => op.startsWith('run vdpa dev del')), 'nothing was deleted');
  } finally {
    b.cleanup();
  }
});

test('drift on a device provision did not make is refused; on one made before refusals were recorded it is a note', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: [{ vdpa: 'virtio', vdpaName: `vdpa:${VFS[0]}` }] }] }, { modules: ['vdpa', 'virtio_vdpa', 'virtio_net', 'mlx5_vdpa'], hwTc: { enp101s0f0np0: true } }));
  try {
    const policy = parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'virtio', mtu: 9000 }] }] });
    b.k.vdpaConfig.set(`vdpa:${VFS[0]}`, { mac: '02:00:00:00:00:01', mtu: 1500, max_vq_pairs: 1 });
    assert.equal(await refused(b, policy), [
      `pfs[0].vdpa[0]: vDPA device vdpa:${VFS[0]} has mtu 1500, not 9000; provision did not make it, so it does not remake it: delete it and the next run makes it as the policy says`,
    ]);
    // A record from before drift checks: ours, but what its management device refused is unknown.
    mkState(b, [{ key: `vdpa-device:vdpa:${VFS[0]}`, at: 't', undo: { kind: 'delete-vdpa', name: `vdpa:${VFS[0]}` } }]);
    const plan = await b.plan(policy);
    assert.equal(plan.steps, []);
    assert.match(plan.notes[0]!, `vDPA device vdpa:${VFS[0]} has mtu 1500, not 9000; it was made before provision recorded what its management device refuses`);
  } finally {
    b.cleanup();
  }
});

test('an attribute the management device refused is not drift; the state file says which', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 1, vdpa: 'none' }] }, { refuse: ['mtu'], hwTc: { enp101s0f0np0: true } }));
  try {
    const policy = parsePolicy({ pfs: [{ pciAddress: PF, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'virtio', mtu: 9000 }] }] });
    await b.run('provision', policy);
    const state = JSON.parse(readFileSync(b.stateFile, 'utf8')) as { entries: { key: string; refused?: string[] }[] };
    assert.equal(state.entries.find((e) => e.key === `vdpa-device:vdpa:${VFS[0]}`)?.refused, ['mtu']);
    assert.equal((await b.run('provision', policy)).changes, []);
  } finally {
    b.cleanup();
  }
});

function mkState(b: Bench, entries: unknown[]): void {
  mkdirSync(dirname(b.stateFile), { recursive: true });
  writeFileSync(b.stateFile, JSON.stringify({ version: 1, entries }));
}

test.run();

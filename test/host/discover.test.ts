import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { discover, discoverFunction, discoverVdpaDevice, representorOwners } from '../../host/discover.js';
import type { PciFunction, Snapshot } from '../../host/snapshot.js';
import { buildFixture, type Fixture } from '../support/fixture.js';

const fixtures: Fixture[] = [];
function fixture(spec: Parameters<typeof buildFixture>[0]): Fixture {
  const fx = buildFixture(spec);
  fixtures.push(fx);
  return fx;
}
const scan = (fx: Fixture, devlink = false): Snapshot =>
  discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, ...(devlink ? { devlinkPorts: fx.devlinkPorts() } : {}) });
function fn(s: Snapshot, pci: string): PciFunction {
  const f = s.functions.get(pci);
  assert.ok(f, `function ${pci} discovered`);
  return f;
}

/**
 * The narrow entry points the CNI uses say what the whole-node pass says, of every function,
 * every vDPA device and every netdev of the tree as it is now.
 */
function narrowAgrees(fx: Fixture, devlink = false): void {
  const opts = { sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, ...(devlink ? { devlinkPorts: fx.devlinkPorts() } : {}) };
  const whole = discover(opts);
  for (const [address, f] of whole.functions) {
    const one = discoverFunction(opts, address);
    assert.equal([...one.functions.values()], [f], `discoverFunction(${address})`);
    assert.equal([...one.vdpa.keys()], f.vdpaDevices.filter((n) => whole.vdpa.has(n)), `vDPA devices of ${address}`);
    for (const [name, d] of one.vdpa) assert.equal(d, whole.vdpa.get(name), `vDPA device ${name} of ${address}`);
    assert.equal(discoverFunction(opts, address.toUpperCase()).functions.get(address), f, 'upper-case address');
  }
  for (const [name, d] of whole.vdpa) assert.equal(discoverVdpaDevice(opts, name), d, `discoverVdpaDevice(${name})`);
  const owners = new Map<string, string>();
  for (const f of whole.functions.values()) if (f.representor && 'found' in f.representor) owners.set(f.representor.found.name, f.address);
  const netdevs = readdirSync(join(fx.sysfsRoot, 'class/net'));
  assert.equal(representorOwners(opts, [...netdevs, 'no-such-netdev']), owners, 'representorOwners');
  for (const absent of ['0000:ff:1f.7', '../..', '']) assert.equal(discoverFunction(opts, absent).functions.size, 0, `no function ${absent}`);
  assert.equal(discoverVdpaDevice(opts, 'no-such-vdpa'), null);
}

test.after(() => fixtures.forEach((fx) => fx.cleanup()));

test('virtio path: VF, vDPA device, virtio netdev, representor and uplink', () => {
  const fx = fixture({ pfs: [{ vfs: [{ netdev: 'veth-pod0', representor: 'veth-rep0' }, {}], numa: 1 }] });
  const s = scan(fx);
  assert.equal(s.errors, []);
  assert.equal([...s.functions.keys()], ['0000:65:00.0', '0000:65:00.2', '0000:65:00.3'], 'root port (bridge class) skipped');
  const vf = fn(s, '0000:65:00.2');
  assert.equal(vf.vendor, '15b3');
  assert.equal(vf.device, '101e');
  assert.equal(vf.driver, 'mlx5_core');
  assert.equal(vf.numaNode, 1);
  assert.equal(vf.pf, '0000:65:00.0');
  assert.equal(vf.vfIndex, 0);
  assert.equal(vf.vdpaDevices, ['vdpa0']);
  assert.equal(vf.usable, true);
  assert.equal(vf.reason, undefined);
  assert.equal(vf.representor, {
    found: { name: 'veth-rep0', physPortName: 'pf0vf0', switchId: 'e8ebd30300a1b2c3', operState: 'up' },
    via: 'sysfs',
  });
  assert.equal(vf.uplink?.name, 'enp101s0f0np0');
  assert.equal(vf.uplink?.physPortName, 'p0');

  const d = s.vdpa.get('vdpa0');
  assert.equal(d, {
    name: 'vdpa0',
    mgmtDev: 'pci/0000:65:00.2',
    pciAddress: '0000:65:00.2',
    driver: 'virtio',
    driverName: 'virtio_vdpa',
    virtio: { device: 'virtio0', path: join(fx.sysfsRoot, 'bus/virtio/devices/virtio0'), netdev: 'veth-pod0' },
    vhost: null,
    problems: [],
  });
  const second = fn(s, '0000:65:00.3');
  assert.equal(s.vdpa.get(second.vdpaDevices[0]!)?.virtio?.netdev, 'eth1', 'default name follows virtioN');
  assert.equal(second.vfIndex, 1);

  const pf = fn(s, '0000:65:00.0');
  assert.equal(pf.vfs, ['0000:65:00.2', '0000:65:00.3']);
  assert.equal(pf.netdevs, ['enp101s0f0_1', 'enp101s0f0np0', 'veth-rep0']);
  assert.equal(pf.pf, null);
  assert.equal(pf.vfIndex, null);
  assert.equal(pf.representor, null);
  assert.equal(pf.uplink?.name, 'enp101s0f0np0');
  assert.equal(pf.usable, false);
  assert.equal(pf.reason, 'no vDPA device');
  narrowAgrees(fx);
});

test('vhost path: the char device under the dev root, re-read after a rebind', () => {
  const fx = fixture({ pfs: [{ vfs: 2, vdpa: 'vhost' }] });
  let s = scan(fx);
  const vf = fx.vfs[1]!;
  const d = s.vdpa.get(vf.vdpa[0]!);
  assert.equal(d?.driver, 'vhost');
  assert.equal(d?.driverName, 'vhost_vdpa');
  assert.equal(d?.virtio, null);
  assert.equal(d?.vhost, { name: 'vhost-vdpa-1', path: join(fx.devRoot, 'vhost-vdpa-1') });
  assert.equal(fn(s, vf.pci).usable, true);

  // After unbinding and binding again, vhost_vdpa hands out another minor: nothing may be cached.
  fx.bindVdpa(vf.vdpa[0]!, 'vhost');
  s = scan(fx);
  assert.equal(s.vdpa.get(vf.vdpa[0]!)?.vhost?.path, join(fx.devRoot, 'vhost-vdpa-2'));
  assert.equal(fx.vf(vf.pci).vhost, join(fx.devRoot, 'vhost-vdpa-2'));

  fx.rebindVdpa(vf.vdpa[0]!);
  s = scan(fx);
  const now = s.vdpa.get(vf.vdpa[0]!);
  assert.equal(now?.driver, 'virtio');
  assert.equal(now?.vhost, null);
  assert.equal(now?.virtio?.netdev, fx.vf(vf.pci).netdev);
  assert.equal(fn(s, vf.pci).usable, true);
  narrowAgrees(fx);
});

test('unbound vDPA device: function unusable, reason names the device', () => {
  const fx = fixture({ pfs: [{ vfs: [{}, { vdpa: 'unbound' }] }] });
  const s = scan(fx);
  const vf = fx.vfs[1]!;
  const f = fn(s, vf.pci);
  assert.equal(f.usable, false);
  assert.equal(f.reason, `vDPA device ${vf.vdpa[0]} is not bound to a driver`);
  assert.equal(s.vdpa.get(vf.vdpa[0]!)?.driver, null);
  assert.equal(s.vdpa.get(vf.vdpa[0]!)?.driverName, null);
  assert.equal(fn(s, fx.vfs[0]!.pci).usable, true, 'the neighbour stays usable');

  fx.unbindVdpa(fx.vfs[0]!.vdpa[0]!);
  assert.equal(fn(scan(fx), fx.vfs[0]!.pci).reason, `vDPA device ${fx.vfs[0]!.vdpa[0]} is not bound to a driver`);
  narrowAgrees(fx);
});

test('1:N: two vDPA devices on one VF are reported, not picked from', () => {
  const fx = fixture({ pfs: [{ vfs: [{ vdpa: 'two-vdpa' }] }] });
  const s = scan(fx);
  const vf = fx.vfs[0]!;
  assert.equal(vf.vdpa.length, 2);
  const f = fn(s, vf.pci);
  assert.equal(f.vdpaDevices, vf.vdpa);
  assert.equal(f.usable, false);
  assert.equal(f.reason, `2 vDPA devices (${vf.vdpa.join(', ')}); one vDPA device per function is supported`);
  // Each device on its own is still described completely.
  assert.equal(s.vdpa.get(vf.vdpa[0]!)?.virtio?.netdev, vf.netdev);
  assert.equal(s.vdpa.get(vf.vdpa[1]!)?.vhost?.name.startsWith('vhost-vdpa-'), true);
  narrowAgrees(fx);
});

test('two virtio vDPA devices on one function: the shared virtio devices are not attributed', () => {
  const fx = fixture({ pfs: [{ vfs: 1 }] });
  const vf = fx.vfs[0]!;
  const extra = fx.addVdpa(vf.pci, 'virtio');
  const s = scan(fx);
  for (const name of [vf.vdpa[0]!, extra]) {
    assert.equal(s.vdpa.get(name)?.virtio, null);
    assert.match(s.vdpa.get(name)!.problems.join(), /shares PCI function 0000:65:00.2 with other virtio_vdpa devices/);
  }
  assert.equal(fn(s, vf.pci).usable, false);
  narrowAgrees(fx);
});

test('VF without a vDPA device, and a removed vDPA device', () => {
  const fx = fixture({ pfs: [{ vfs: [{ vdpa: 'none' }, {}] }] });
  let s = scan(fx);
  assert.equal(fn(s, fx.vfs[0]!.pci).reason, 'no vDPA device');
  assert.equal(fn(s, fx.vfs[0]!.pci).vdpaDevices, []);
  const name = fx.vfs[1]!.vdpa[0]!;
  fx.removeVdpa(name);
  s = scan(fx);
  assert.equal(s.vdpa.has(name), false);
  assert.equal(fn(s, fx.vfs[1]!.pci).reason, 'no vDPA device');
  narrowAgrees(fx);
});

test('missing representor: reported with its reason, device still usable', () => {
  const fx = fixture({ pfs: [{ vfs: 2 }, { vfs: 1, switchdev: false }] });
  // A switchdev PF whose representor for VF 1 is gone.
  rmSync(join(fx.sysfsRoot, 'class/net', fx.vfs[1]!.representor!), { force: true });
  rmSync(join(fx.sysfsRoot, 'bus/pci/devices/0000:65:00.0/net', fx.vfs[1]!.representor!), { recursive: true });
  const s = scan(fx);
  const gone = fn(s, fx.vfs[1]!.pci);
  assert.equal(gone.usable, true);
  assert.equal(gone.representor, { missing: 'no representor with phys_port_name pf0vf1 on switch e8ebd30300a1b2c3 (PF 0000:65:00.0)' });

  const legacy = fx.pfs[1]!;
  assert.equal(legacy.vfs[0]!.representor, null);
  const lf = fn(s, legacy.vfs[0]!.pci);
  assert.equal(lf.usable, true);
  assert.equal(lf.representor, { missing: 'PF 0000:65:00.1 has no uplink representor (phys_port_name pN): its eswitch is not in switchdev mode' });
  assert.equal(lf.uplink, null);
  assert.equal(fn(s, legacy.pci).netdevs, ['enp101s0f1np1']);
  narrowAgrees(fx);
});

test('two PFs on one switch id: each VF gets the representor of its own PF number', () => {
  const fx = fixture({ pfs: [{ vfs: 2 }, { vfs: 2 }] });
  const s = scan(fx);
  for (const vf of fx.vfs) {
    const f = fn(s, vf.pci);
    const pfnum = vf.pf === '0000:65:00.0' ? 0 : 1;
    assert.ok(f.representor && 'found' in f.representor);
    assert.equal(f.representor.found.name, vf.representor);
    assert.equal(f.representor.found.physPortName, `pf${pfnum}vf${vf.index}`);
    assert.equal(f.uplink?.physPortName, `p${pfnum}`);
  }
  assert.equal(fx.pfs[1]!.vfs[0]!.pci, '0000:65:01.2', 'PF 1 VFs follow PF 0 totalvfs (8)');
  narrowAgrees(fx);
});

test('devlink first, sysfs as the fallback', () => {
  const fx = fixture({ pfs: [{ vfs: 3 }] });
  // A kernel that does not expose phys_port_name for VF 0: only devlink can name the representor.
  unlinkSync(join(fx.sysfsRoot, 'class/net', fx.vfs[0]!.representor!, 'phys_port_name'));
  const withDevlink = scan(fx, true);
  assert.equal(fn(withDevlink, fx.vfs[0]!.pci).representor, {
    found: { name: fx.vfs[0]!.representor!, physPortName: 'pf0vf0', switchId: 'e8ebd30300a1b2c3', operState: 'up' },
    via: 'devlink',
  });
  const r1 = fn(withDevlink, fx.vfs[1]!.pci).representor;
  assert.equal(r1 && 'found' in r1 ? r1.via : r1, 'devlink');
  assert.equal(fn(withDevlink, fx.vfs[1]!.pci).uplink?.name, 'enp101s0f0np0', 'uplink from the devlink physical port');
  assert.equal(fn(withDevlink, fx.pfs[0]!.pci).uplink?.physPortName, 'p0');

  const sysfsOnly = scan(fx);
  assert.equal(fn(sysfsOnly, fx.vfs[0]!.pci).representor, {
    missing: 'no representor with phys_port_name pf0vf0 on switch e8ebd30300a1b2c3 (PF 0000:65:00.0)',
  });
  const r2 = fn(sysfsOnly, fx.vfs[2]!.pci).representor;
  assert.equal(r2 && 'found' in r2 ? `${r2.via}:${r2.found.name}` : r2, `sysfs:${fx.vfs[2]!.representor}`);

  // A devlink port naming a netdev that no longer exists falls back to sysfs.
  const stale = fx.devlinkPorts().map((p) => (p.vfnum === 2 ? { ...p, netdev: 'gone0' } : p));
  const r3 = fn(discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, devlinkPorts: stale }), fx.vfs[2]!.pci).representor;
  assert.equal(r3 && 'found' in r3 ? `${r3.via}:${r3.found.name}` : r3, `sysfs:${fx.vfs[2]!.representor}`);
  narrowAgrees(fx);
  narrowAgrees(fx, true);
});

test('representor and uplink link state follow operstate', () => {
  const fx = fixture({ pfs: [{ vfs: 1 }] });
  fx.setOperState(fx.vfs[0]!.representor!, 'down');
  fx.setOperState(fx.pfs[0]!.uplink, 'lowerlayerdown');
  const f = fn(scan(fx), fx.vfs[0]!.pci);
  assert.equal(f.representor && 'found' in f.representor ? f.representor.found.operState : null, 'down');
  assert.equal(f.uplink?.operState, 'lowerlayerdown');
  narrowAgrees(fx);
});

test('VF with its own vendor netdev: the virtio netdev is the one handed out', () => {
  const fx = fixture({ pfs: [{ vfs: [{ vendorNetdev: true }] }] });
  const s = scan(fx);
  const vf = fx.vfs[0]!;
  assert.equal(vf.vendorNetdev, 'enp101s0f0v0');
  assert.equal(fn(s, vf.pci).netdevs, ['enp101s0f0v0']);
  assert.equal(s.vdpa.get(vf.vdpa[0]!)?.virtio?.netdev, 'eth0');
  assert.equal(fn(s, vf.pci).usable, true);
  narrowAgrees(fx);
});

test('vDPA on a PCI function that is not a VF (vp_vdpa): usable, no PF, no representor', () => {
  const fx = fixture({ pfs: [], plainFunction: { vdpa: 'virtio', netdev: 'ens5' } });
  const s = scan(fx);
  assert.equal(s.errors, []);
  const f = fn(s, '0000:00:05.0');
  assert.equal(f.vendor, '1af4');
  assert.equal(f.device, '1041');
  assert.equal(f.driver, 'vp_vdpa');
  assert.equal(f.pf, null);
  assert.equal(f.vfIndex, null);
  assert.equal(f.representor, null);
  assert.equal(f.uplink, null);
  assert.equal(f.numaNode, null, 'numa_node -1');
  assert.equal(f.usable, true);
  const d = s.vdpa.get(fx.plainFunction!.vdpa);
  assert.equal(d?.mgmtDev, 'pci/0000:00:05.0');
  assert.equal(d?.virtio?.netdev, 'ens5');
  narrowAgrees(fx);
});

test('simulator: discovered with the same fields and no PCI address', () => {
  const fx = fixture({ pfs: [{ vfs: 1 }], simulator: { vdpa: 'virtio', netdev: 'simeth0' } });
  const s = scan(fx);
  const sim = fx.simulator!;
  assert.equal(s.vdpa.get(sim.vdpa), {
    name: sim.vdpa,
    mgmtDev: 'vdpasim_net',
    pciAddress: null,
    driver: 'virtio',
    driverName: 'virtio_vdpa',
    virtio: { device: sim.virtio!, path: join(fx.sysfsRoot, 'bus/virtio/devices', sim.virtio!), netdev: 'simeth0' },
    vhost: null,
    problems: [],
  });
  assert.equal(s.functions.size, 2, 'the simulator adds no PCI function');

  fx.rebindVdpa(sim.vdpa);
  const vhost = scan(fx).vdpa.get(sim.vdpa);
  assert.equal(vhost?.vhost?.path, fx.simulator!.vhost);
  assert.equal(vhost?.problems, []);
  narrowAgrees(fx);
});

test('NUMA: -1 means no affinity, other values are kept per PF', () => {
  const fx = fixture({ pfs: [{ vfs: 1, numa: -1 }, { vfs: 1, numa: 1 }] });
  const s = scan(fx);
  assert.equal(fn(s, fx.pfs[0]!.vfs[0]!.pci).numaNode, null);
  assert.equal(fn(s, fx.pfs[0]!.pci).numaNode, null);
  assert.equal(fn(s, fx.pfs[1]!.vfs[0]!.pci).numaNode, 1);
  narrowAgrees(fx);
});

test('VFs added later are discovered with their index and representor', () => {
  const fx = fixture({ pfs: [{ vfs: 1, totalVfs: 4 }] });
  const added = fx.addVfs('0000:65:00.0', 2, { vdpa: 'vhost' });
  assert.equal(readFileSync(join(fx.sysfsRoot, 'bus/pci/devices/0000:65:00.0/sriov_numvfs'), 'utf8'), '3\n');
  const s = scan(fx);
  assert.equal(fn(s, '0000:65:00.0').vfs, ['0000:65:00.2', '0000:65:00.3', '0000:65:00.4']);
  for (const vf of added) {
    const f = fn(s, vf.pci);
    assert.equal(f.vfIndex, vf.index);
    assert.equal(f.usable, true);
    assert.equal(f.representor && 'found' in f.representor ? f.representor.found.name : null, vf.representor);
  }
  assert.throws(() => fx.addVfs('0000:65:00.0', 2), /sriov_totalvfs 4/);
  narrowAgrees(fx);
});

test('broken tree: every damaged device is reported, discovery goes on', () => {
  const fx = fixture({ pfs: [{ vfs: [{}, {}, {}, { vdpa: 'vhost' }, { vdpa: 'vhost' }, { vdpa: 'vhost' }, {}, {}, {}] }], simulator: {} });
  const vfs = fx.vfs;
  const sys = fx.sysfsRoot;
  const dir = (pci: string) => join(sys, 'bus/pci/devices', pci);
  // 0: uevent gone; 1: numa_node unparsable; 2: uevent cannot be read (EISDIR); 8: uevent without PCI_ID
  unlinkSync(join(dir(vfs[0]!.pci), 'uevent'));
  writeFileSync(join(dir(vfs[1]!.pci), 'numa_node'), 'zero\n');
  unlinkSync(join(dir(vfs[2]!.pci), 'uevent'));
  mkdirSync(join(dir(vfs[2]!.pci), 'uevent'));
  writeFileSync(join(dir(vfs[8]!.pci), 'uevent'), 'DRIVER=mlx5_core\nPCI_CLASS=20000\n');
  // 3: /dev node missing; 4: /dev node is a regular file; 5: /dev node of another device
  unlinkSync(vfs[3]!.vhost!);
  unlinkSync(vfs[4]!.vhost!);
  writeFileSync(vfs[4]!.vhost!, '');
  writeFileSync(join(dir(vfs[5]!.pci), vfs[5]!.vdpa[0]!, vfs[5]!.vhost!.split('/').pop()!, 'dev'), '237:99\n');
  // 6: virtio device not on the virtio bus; 7: virtio device without netdev
  unlinkSync(join(sys, 'bus/virtio/devices', vfs[6]!.virtio!));
  rmSync(join(dir(vfs[7]!.pci), vfs[7]!.virtio!, 'net', vfs[7]!.netdev!), { recursive: true });
  // A dangling PCI bus link, a dangling vDPA bus link, and a vDPA link that is not a link at all.
  symlinkSync('../../../devices/pci0000:64/0000:64:00.0/0000:66:00.0', join(sys, 'bus/pci/devices/0000:66:00.0'));
  symlinkSync('../../../devices/vdpa77', join(sys, 'bus/vdpa/devices/vdpa77'));
  writeFileSync(join(sys, 'bus/vdpa/devices/vdpa78'), '');

  const s = scan(fx);
  assert.equal(s.errors, []);
  const reason = (i: number) => fn(s, vfs[i]!.pci).reason ?? '';
  // Reasons name the device's own directory, as realpath shows it.
  const real = (i: number, attr: string) => join(realpathSync(dir(vfs[i]!.pci)), attr);
  assert.equal(reason(0), `${real(0, 'uevent')} is missing`);
  assert.equal(reason(1), `${real(1, 'numa_node')}: "zero" is not a number`);
  assert.equal(reason(2), `cannot read ${real(2, 'uevent')} (EISDIR)`);
  assert.equal(reason(8), `${real(8, 'uevent')} has no valid PCI_ID`);
  const dev = (i: number) => `vDPA device ${vfs[i]!.vdpa[0]} has ${vfs[i]!.vhost!.split('/').pop()}`;
  assert.equal(reason(3), `${dev(3)} but ${vfs[3]!.vhost} does not exist`);
  assert.equal(reason(4), `${dev(4)} but ${vfs[4]!.vhost} is not a character device`);
  assert.equal(reason(5), `${dev(5)} (237:99) but ${vfs[5]!.vhost} is 237:${vfs[5]!.vhost!.split('-').pop()}`);
  assert.equal(reason(6), `vDPA device ${vfs[6]!.vdpa[0]} is bound to virtio_vdpa but has no virtio device on the virtio bus`);
  assert.equal(reason(7), `vDPA device ${vfs[7]!.vdpa[0]} has ${vfs[7]!.virtio} without a netdev (is the virtio_net module loaded?)`);
  for (let i = 0; i < 9; i++) assert.equal(fn(s, vfs[i]!.pci).usable, false, `VF ${i} unusable`);

  const dangling = fn(s, '0000:66:00.0');
  assert.equal(dangling.usable, false);
  assert.equal(dangling.reason, `${join(sys, 'bus/pci/devices/0000:66:00.0')} is a dangling link`);
  assert.equal(s.vdpa.get('vdpa77')?.problems, [`${join(sys, 'bus/vdpa/devices/vdpa77')} is a dangling link`]);
  assert.match(s.vdpa.get('vdpa78')!.problems[0]!, /bus\/vdpa\/devices\/vdpa78 \(EINVAL\)$/);
  // Undamaged parts are intact.
  assert.equal(s.vdpa.get(fx.simulator!.vdpa)?.problems, []);
  assert.equal(fn(s, fx.pfs[0]!.pci).vfs.length, 9);
  const rep = fn(s, vfs[0]!.pci).representor;
  assert.equal(rep && 'found' in rep ? rep.found.name : rep, vfs[0]!.representor);
  narrowAgrees(fx);
});

test('a bus directory that cannot be read is a snapshot error; an absent bus is not', () => {
  const fx = fixture({ pfs: [{ vfs: 1 }] });
  rmSync(join(fx.sysfsRoot, 'bus/virtio'), { recursive: true });
  const vdpaDevices = join(fx.sysfsRoot, 'bus/vdpa/devices');
  rmSync(vdpaDevices, { recursive: true });
  symlinkSync('devices', vdpaDevices);
  const s = scan(fx);
  assert.equal(s.errors, [`cannot read ${vdpaDevices} (ELOOP)`]);
  assert.equal(s.vdpa.size, 0);
  assert.equal(fn(s, fx.vfs[0]!.pci).reason, 'no vDPA device');

  const empty = fixture({ pfs: [] });
  rmSync(join(empty.sysfsRoot, 'bus'), { recursive: true });
  const e = scan(empty);
  assert.equal([e.functions.size, e.vdpa.size, e.errors], [0, 0, []]);
  narrowAgrees(fx);
});

test('the real /sys and /dev of this machine (no vDPA NIC): an empty, error-free snapshot', () => {
  const s = discover({ sysfsRoot: '/sys', devRoot: '/dev' });
  assert.equal(s.errors, []);
  const vdpaBus = (() => {
    try {
      return readdirSync('/sys/bus/vdpa/devices');
    } catch {
      return [];
    }
  })();
  assert.equal([...s.vdpa.keys()], vdpaBus);
  // Every network-class function, independently listed, and none of them usable.
  const network = readdirSync('/sys/bus/pci/devices')
    .filter((a) => readFileSync(`/sys/bus/pci/devices/${a}/class`, 'utf8').startsWith('0x02'))
    .sort();
  assert.equal([...s.functions.keys()], network);
  for (const f of s.functions.values()) {
    assert.equal(f.usable, false);
    assert.equal(f.reason, 'no vDPA device');
    assert.equal(f.vendor, readFileSync(`/sys/bus/pci/devices/${f.address}/vendor`, 'utf8').trim().slice(2));
  }
});

test.run();

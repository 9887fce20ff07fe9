// The kernel's side of docs/host-layout.md, checked on Debian's backports kernel: where vDPA
// devices, their virtio netdevs and vhost char devices, representors and devlink ports really
// appear. The project's own suites (discover, deviceplugin, cni) build on these facts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import {
  addVdpa,
  bindVdpa,
  delVdpa,
  link,
  netdevsim,
  ovsVsctl,
  qemuMac,
  sh,
  startOvs,
  toVirtioPci,
  toVpVdpa,
  vdpaDir,
  vdpaDriver,
  vhostOf,
  virtioNetFunctions,
  virtioOf,
} from './testbed.js';

const attr = (p: string) => readFileSync(p, 'utf8').trim();
const [fnA, fnB] = virtioNetFunctions();

test('qemu provides virtio-net PCI functions for vp_vdpa', () => {
  assert.ok(fnA && fnB, `at least two virtio-net functions, got ${virtioNetFunctions().join(', ')}`);
});

test('vdpasim_net: a device on virtio_vdpa under /sys/devices, with the MAC given at creation', () => {
  try {
    assert.ok(addVdpa('ksim0', 'vdpasim_net', '02:00:00:00:51:01'), 'the simulator takes the mac attribute');
    assert.is(vdpaDir('ksim0'), '/sys/devices/ksim0');
    assert.is(vdpaDriver('ksim0'), 'virtio_vdpa');
    const virtio = virtioOf('ksim0');
    assert.ok(virtio, 'a virtio device on the virtio bus');
    assert.is(virtio.dir, `/sys/devices/ksim0/${virtio.device}`, 'virtioN under the vDPA device');
    assert.ok(virtio.netdev, 'virtio_net made a netdev');
    assert.is(link(virtio.netdev)?.address, '02:00:00:00:51:01');
    const shown = JSON.parse(sh('vdpa', ['-j', 'dev', 'show', 'ksim0'])) as { dev: Record<string, { mgmtdev: string }> };
    assert.is(shown.dev.ksim0?.mgmtdev, 'vdpasim_net');
  } finally {
    delVdpa('ksim0');
  }
  assert.not.ok(existsSync('/sys/bus/vdpa/devices/ksim0'), 'vdpa dev del removes it');
});

test('vp_vdpa: the PCI function is management device pci/<bdf>; device and netdev sit under the function', () => {
  try {
    const mgmt = toVpVdpa(fnA!);
    const mgmtdevs = JSON.parse(sh('vdpa', ['-j', 'mgmtdev', 'show'])) as { mgmtdev: Record<string, unknown> };
    assert.ok(mgmt in mgmtdevs.mgmtdev, `${mgmt} in ${Object.keys(mgmtdevs.mgmtdev).join(', ')}`);
    const tookMac = addVdpa('kpci0', mgmt, '02:00:00:00:51:02');
    const fnDir = `/sys/devices/pci0000:00/${fnA}`;
    assert.is(vdpaDir('kpci0'), `${fnDir}/kpci0`);
    assert.ok(existsSync(`${fnDir}/kpci0`), 'the vDPA device is a child of the PCI function');
    assert.not.ok(existsSync(`${fnDir}/physfn`), 'a plain function, not a VF');
    const virtio = virtioOf('kpci0');
    assert.ok(virtio?.netdev, 'virtio_vdpa made a netdev');
    assert.is(virtio.dir, `${fnDir}/${virtio.device}`, 'virtioN under the PCI function, as with mlx5');
    // vp_vdpa refuses the mac attribute on this kernel; the netdev then keeps qemu's MAC.
    assert.is(link(virtio.netdev)?.address, tookMac ? '02:00:00:00:51:02' : qemuMac(fnA!));
  } finally {
    delVdpa('kpci0');
    toVirtioPci(fnA!);
  }
});

test('rebinding to vhost_vdpa replaces the netdev with /dev/vhost-vdpa-N, and back', () => {
  try {
    addVdpa('ksim1', 'vdpasim_net', '02:00:00:00:51:03');
    addVdpa('kpci1', toVpVdpa(fnA!));
    for (const name of ['ksim1', 'kpci1']) {
      const netdev = virtioOf(name)?.netdev;
      assert.ok(netdev, `${name} starts on virtio_vdpa with a netdev`);
      bindVdpa(name, 'vhost_vdpa');
      assert.is(vdpaDriver(name), 'vhost_vdpa');
      assert.is(attr(`/sys/bus/vdpa/devices/${name}/driver_override`), 'vhost_vdpa');
      assert.is(virtioOf(name), null, `${name}: no virtio device while on vhost_vdpa`);
      assert.is(link(netdev), null, `${name}: ${netdev} is gone`);
      const vhost = vhostOf(name);
      assert.ok(vhost, `${name}: a vhost-vdpa-N class device`);
      assert.is(vhost.rdev, vhost.dev, `${vhost.path} is the char device sysfs names`);
      bindVdpa(name, 'virtio_vdpa');
      assert.is(vhostOf(name), null);
      assert.ok(virtioOf(name)?.netdev, `${name}: a netdev again on virtio_vdpa`);
    }
  } finally {
    delVdpa('ksim1');
    delVdpa('kpci1');
    toVirtioPci(fnA!);
  }
});

test('traffic flows between two vp_vdpa netdevs in two netns, through qemu', () => {
  const ns = ['kping-a', 'kping-b'];
  try {
    ['kping0', 'kping1'].forEach((name, i) => {
      addVdpa(name, toVpVdpa([fnA!, fnB!][i]!));
      const netdev = virtioOf(name)?.netdev;
      assert.ok(netdev);
      sh('ip', ['netns', 'add', ns[i]!]);
      sh('ip', ['link', 'set', netdev, 'netns', ns[i]!]);
      sh('ip', ['-n', ns[i]!, 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', netdev]);
      sh('ip', ['-n', ns[i]!, 'link', 'set', netdev, 'up']);
    });
    const out = sh('ip', ['netns', 'exec', ns[0]!, 'ping', '-c', '3', '-i', '0.2', '-W', '5', '10.77.0.2']);
    assert.match(out, / 0% packet loss/);
  } finally {
    for (const n of ns) if (existsSync(`/run/netns/${n}`)) sh('ip', ['netns', 'del', n]);
    delVdpa('kping0');
    delVdpa('kping1');
    toVirtioPci(fnA!);
    toVirtioPci(fnB!);
  }
});

test('netdevsim in switchdev mode: representors pf0vfN on one switch id, named by devlink per VF', () => {
  const esw = netdevsim(71, 3);
  try {
    assert.equal([...esw.representors.keys()].sort(), [0, 1, 2]);
    const switchIds = new Set<string>();
    for (const [vf, netdev] of esw.representors) {
      assert.is(attr(`/sys/class/net/${netdev}/phys_port_name`), `pf0vf${vf}`);
      switchIds.add(attr(`/sys/class/net/${netdev}/phys_switch_id`));
      assert.is(basename(readlinkSync(`/sys/class/net/${netdev}/device`)), 'netdevsim71', 'the representor belongs to the netdevsim device');
    }
    assert.is(switchIds.size, 1);
    assert.ok([...switchIds][0], 'a non-empty switch id');
    assert.match(sh('devlink', ['dev', 'eswitch', 'show', esw.handle]), /mode switchdev/);
  } finally {
    esw.remove();
  }
});

test('OVS on the kernel datapath with hw-offload takes a representor as a br-int port', () => {
  const esw = netdevsim(72, 2);
  const ovs = startOvs();
  try {
    const rep = esw.representors.get(1)!;
    ovsVsctl('add-port', 'br-int', rep);
    assert.is(ovsVsctl('get', 'Open_vSwitch', '.', 'other_config:hw-offload'), '"true"');
    assert.is(ovsVsctl('get', 'Bridge', 'br-int', 'datapath_type'), 'system');
    assert.ok(Number(ovsVsctl('get', 'Interface', rep, 'ofport')) > 0, 'the port has an OpenFlow port number');
    assert.match(sh('ovs-dpctl', ['show']), new RegExp(`port \\d+: ${rep}\\b`), 'the kernel datapath has the port');
    ovsVsctl('del-port', 'br-int', rep);
    assert.not.match(sh('ovs-dpctl', ['show']), new RegExp(`: ${rep}\\b`));
  } finally {
    ovs.stop();
    esw.remove();
  }
});

test.run();

// host/discover on the guest's real /sys and /dev: vDPA devices on the simulator and on vp_vdpa
// PCI functions, bound to virtio_vdpa and to vhost_vdpa, must come out as the kernel made them;
// a rebind must show in the next scan; devlink must name netdevsim's representors per VF.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { discover } from '../../../host/discover.js';
import { listDevlinkPorts } from '../../../host/devlink.js';
import { endpointFor, usableEndpoints } from '../../../host/endpoint.js';
import type { Snapshot } from '../../../host/snapshot.js';
import {
  addVdpa,
  bindVdpa,
  delVdpa,
  link,
  netdevsim,
  qemuMac,
  toVirtioPci,
  toVpVdpa,
  unbindVdpa,
  vhostOf,
  virtioNetFunctions,
  virtioOf,
} from './testbed.js';

const scan = (): Snapshot => discover({ sysfsRoot: '/sys', devRoot: '/dev' });
const [fnVirtio, fnVhost] = virtioNetFunctions();
const SIM_MAC = '02:00:00:00:d1:01';

test.before(() => {
  addVdpa('dsim0', 'vdpasim_net', SIM_MAC);
  addVdpa('dsim1', 'vdpasim_net', '02:00:00:00:d1:02');
  bindVdpa('dsim1', 'vhost_vdpa');
  addVdpa('dpci0', toVpVdpa(fnVirtio!));
  addVdpa('dpci1', toVpVdpa(fnVhost!));
  bindVdpa('dpci1', 'vhost_vdpa');
});

test.after(() => {
  for (const name of ['dsim0', 'dsim1', 'dpci0', 'dpci1']) delVdpa(name);
  toVirtioPci(fnVirtio!);
  toVirtioPci(fnVhost!);
});

test('a scan of the real /sys has no errors', () => {
  assert.equal(scan().errors, []);
});

test('simulator device on virtio_vdpa: mgmtdev, driver, virtio netdev with the MAC given at creation', () => {
  const d = scan().vdpa.get('dsim0');
  assert.ok(d, 'dsim0 discovered');
  assert.is(d.mgmtDev, 'vdpasim_net');
  assert.is(d.pciAddress, null, 'the simulator has no PCI parent');
  assert.is(d.driver, 'virtio');
  assert.is(d.driverName, 'virtio_vdpa');
  assert.equal(d.problems, []);
  const kernel = virtioOf('dsim0')!;
  assert.equal(d.virtio, { device: kernel.device, path: `/sys/bus/virtio/devices/${kernel.device}`, netdev: kernel.netdev });
  assert.is(link(d.virtio!.netdev!)?.address, SIM_MAC);
  assert.is(d.vhost, null);
});

test('simulator device on vhost_vdpa: the real /dev/vhost-vdpa-N', () => {
  const d = scan().vdpa.get('dsim1')!;
  assert.is(d.driver, 'vhost');
  assert.is(d.driverName, 'vhost_vdpa');
  const kernel = vhostOf('dsim1')!;
  assert.equal(d.vhost, { name: kernel.name, path: `/dev/${kernel.name}` });
  assert.ok(statSync(d.vhost!.path).isCharacterDevice());
  assert.is(d.virtio, null);
  assert.equal(d.problems, []);
});

test('vp_vdpa device on virtio_vdpa: PCI parent, mgmtdev pci/<bdf>, the function usable as a non-VF', () => {
  const s = scan();
  const d = s.vdpa.get('dpci0')!;
  assert.is(d.mgmtDev, `pci/${fnVirtio}`);
  assert.is(d.pciAddress, fnVirtio);
  assert.is(d.driver, 'virtio');
  const kernel = virtioOf('dpci0')!;
  assert.is(d.virtio?.netdev, kernel.netdev);
  assert.is(d.virtio?.path, `/sys/bus/virtio/devices/${kernel.device}`);
  // vp_vdpa refuses the mac attribute: the netdev carries the function's own (qemu's) MAC.
  assert.is(link(d.virtio!.netdev!)?.address, qemuMac(fnVirtio!));

  const fn = s.functions.get(fnVirtio!)!;
  assert.is(fn.vendor, '1af4');
  assert.is(fn.driver, 'vp-vdpa');
  assert.is(fn.pf, null, 'no physfn');
  assert.is(fn.vfIndex, null);
  assert.is(fn.representor, null, 'not a VF, so no representor lookup');
  assert.equal(fn.vdpaDevices, ['dpci0']);
  assert.ok(fn.usable, fn.reason);
});

test('vp_vdpa device on vhost_vdpa: endpoint with the real /dev/vhost-vdpa-N', () => {
  const s = scan();
  const ep = endpointFor(s, fnVhost!);
  const kernel = vhostOf('dpci1')!;
  assert.equal(ep, {
    pciAddress: fnVhost,
    pfPciAddress: null,
    vdpaDevice: 'dpci1',
    driver: 'vhost',
    path: `/dev/${kernel.name}`,
    netdev: null,
    representor: null,
    numaNode: null,
  });
  assert.equal(
    usableEndpoints(s).map((e) => e.vdpaDevice),
    ['dpci0', 'dpci1'],
    'both PCI functions are usable; simulator devices are not PCI functions',
  );
});

test('a rebind from virtio to vhost flips in the next scan, and back', () => {
  const before = scan().vdpa.get('dpci0')!;
  assert.is(before.driver, 'virtio');
  bindVdpa('dpci0', 'vhost_vdpa');
  try {
    const after = scan().vdpa.get('dpci0')!;
    assert.is(after.driver, 'vhost');
    assert.is(after.virtio, null);
    assert.is(after.vhost?.path, `/dev/${vhostOf('dpci0')!.name}`);
    assert.is(endpointFor(scan(), fnVirtio!).path, after.vhost!.path);
  } finally {
    bindVdpa('dpci0', 'virtio_vdpa');
  }
  const back = scan().vdpa.get('dpci0')!;
  assert.is(back.driver, 'virtio');
  assert.ok(back.virtio?.netdev, 'a netdev again');
});

test('an unbound device is reported with its reason, and its function is not usable', () => {
  unbindVdpa('dpci0');
  try {
    const s = scan();
    const d = s.vdpa.get('dpci0')!;
    assert.is(d.driver, null);
    assert.is(d.driverName, null);
    assert.match(d.problems.join(), /not bound/);
    const fn = s.functions.get(fnVirtio!)!;
    assert.not.ok(fn.usable);
    assert.match(fn.reason ?? '', /dpci0/);
    assert.throws(() => endpointFor(s, fnVirtio!), new RegExp(fnVirtio!.replace(/\./g, '\\.')));
  } finally {
    bindVdpa('dpci0', 'virtio_vdpa');
  }
});

test('a deleted device is gone from the next scan', () => {
  addVdpa('dsim9', 'vdpasim_net', '02:00:00:00:d1:09');
  assert.ok(scan().vdpa.has('dsim9'));
  delVdpa('dsim9');
  assert.not.ok(scan().vdpa.has('dsim9'));
});

test('devlink names netdevsim representors pf0vfN by VF index', async () => {
  const esw = netdevsim(81, 4);
  try {
    const ports = (await listDevlinkPorts()).filter((p) => p.device === esw.handle);
    const vfPorts = ports.filter((p) => p.flavour === 'pcivf');
    assert.equal(
      vfPorts.map((p) => p.vfnum).sort(),
      [0, 1, 2, 3],
    );
    for (const p of vfPorts) {
      assert.is(p.pfnum, 0);
      assert.is(p.external, false);
      assert.ok(p.netdev && existsSync(`/sys/class/net/${p.netdev}`), `${p.port} names a real netdev`);
      assert.is(readFileSync(`/sys/class/net/${p.netdev}/phys_port_name`, 'utf8').trim(), `pf0vf${p.vfnum}`);
    }
    assert.is(ports.filter((p) => p.flavour === 'physical').length, 1, 'one uplink port');
  } finally {
    esw.remove();
  }
});

test.run();

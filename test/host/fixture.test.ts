// The fixture must look like the kernel's tree, or discovery tests prove nothing: check the layout
// with plain fs calls, independently of host/discover.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../support/fixture.js';

const fx = buildFixture({
  pfs: [{ vfs: [{ vendorNetdev: true }, { vdpa: 'vhost' }], numa: -1 }],
  plainFunction: {},
  simulator: {},
});
test.after(() => fx.cleanup());
const sys = (p: string) => join(fx.sysfsRoot, p);
const read = (p: string) => readFileSync(sys(p), 'utf8');

test('PCI: bus links into /sys/devices/pci…, PF/VF links both ways, ids and drivers', () => {
  assert.equal(readlinkSync(sys('bus/pci/devices/0000:65:00.2')), '../../../devices/pci0000:64/0000:64:00.0/0000:65:00.2');
  const pf = realpathSync(sys('bus/pci/devices/0000:65:00.0'));
  assert.equal(pf, sys('devices/pci0000:64/0000:64:00.0/0000:65:00.0'));
  assert.equal(readlinkSync(join(pf, 'virtfn1')), '../0000:65:00.3');
  assert.equal(readlinkSync(sys('bus/pci/devices/0000:65:00.3/physfn')), '../0000:65:00.0');
  assert.equal([read('bus/pci/devices/0000:65:00.0/sriov_numvfs'), read('bus/pci/devices/0000:65:00.0/sriov_totalvfs')], ['2\n', '8\n']);
  assert.equal([read('bus/pci/devices/0000:65:00.3/vendor'), read('bus/pci/devices/0000:65:00.3/device')], ['0x15b3\n', '0x101e\n']);
  assert.equal(read('bus/pci/devices/0000:65:00.0/class'), '0x020000\n');
  assert.equal(read('bus/pci/devices/0000:65:00.0/numa_node'), '-1\n');
  assert.equal(realpathSync(sys('bus/pci/devices/0000:65:00.2/driver')), sys('bus/pci/drivers/mlx5_core'));
  assert.equal(realpathSync(sys('bus/pci/drivers/mlx5_core/0000:65:00.2')), sys('devices/pci0000:64/0000:64:00.0/0000:65:00.2'));
  assert.equal(readdirSync(sys('bus/pci/devices/0000:00:05.0')).includes('physfn'), false);
  assert.equal(realpathSync(sys('bus/pci/devices/0000:00:05.0/driver')), sys('bus/pci/drivers/vp_vdpa'));
});

test('switchdev: uplink and representors under the PF with port names and one switch id', () => {
  const net = sys('bus/pci/devices/0000:65:00.0/net');
  assert.equal(readdirSync(net).sort(), ['enp101s0f0_0', 'enp101s0f0_1', 'enp101s0f0np0']);
  assert.equal(readFileSync(join(net, 'enp101s0f0np0/phys_port_name'), 'utf8'), 'p0\n');
  assert.equal(readFileSync(join(net, 'enp101s0f0_1/phys_port_name'), 'utf8'), 'pf0vf1\n');
  assert.equal(readFileSync(join(net, 'enp101s0f0_1/phys_switch_id'), 'utf8'), readFileSync(join(net, 'enp101s0f0np0/phys_switch_id'), 'utf8'));
  assert.equal(realpathSync(sys('class/net/enp101s0f0_1')), join(realpathSync(net), 'enp101s0f0_1'));
  for (const attr of ['operstate', 'address', 'mtu', 'ifindex']) assert.ok(existsSync(join(net, 'enp101s0f0_1', attr)), attr);
  assert.equal(readdirSync(sys('bus/pci/devices/0000:65:00.2/net')), ['enp101s0f0v0'], 'VF vendor netdev');
});

test('vDPA: bus and driver links, virtio under the VF (mlx5) and under the simulator device', () => {
  const [vf0, vf1] = fx.vfs;
  const vdpa0 = realpathSync(sys(`bus/vdpa/devices/${vf0!.vdpa[0]}`));
  assert.equal(vdpa0, sys(`devices/pci0000:64/0000:64:00.0/0000:65:00.2/${vf0!.vdpa[0]}`));
  assert.equal(realpathSync(join(vdpa0, 'driver')), sys('bus/vdpa/drivers/virtio_vdpa'));
  assert.equal(realpathSync(sys(`bus/virtio/devices/${vf0!.virtio}`)), sys(`devices/pci0000:64/0000:64:00.0/0000:65:00.2/${vf0!.virtio}`));
  assert.equal(readdirSync(sys(`bus/virtio/devices/${vf0!.virtio}/net`)), [vf0!.netdev]);
  assert.equal(realpathSync(sys(`class/net/${vf0!.netdev}`)), sys(`devices/pci0000:64/0000:64:00.0/0000:65:00.2/${vf0!.virtio}/net/${vf0!.netdev}`));

  const sim = fx.simulator!;
  assert.equal(realpathSync(sys(`bus/vdpa/devices/${sim.vdpa}`)), sys(`devices/${sim.vdpa}`));
  assert.equal(realpathSync(sys(`bus/virtio/devices/${sim.virtio}`)), sys(`devices/${sim.vdpa}/${sim.virtio}`));
  assert.ok(statSync(sys('devices/vdpasim_net')).isDirectory());

  const vhostName = vf1!.vhost!.split('/').pop()!;
  const vdpa1 = realpathSync(sys(`bus/vdpa/devices/${vf1!.vdpa[0]}`));
  assert.equal(realpathSync(join(vdpa1, 'driver')), sys('bus/vdpa/drivers/vhost_vdpa'));
  assert.equal(realpathSync(sys(`class/vhost-vdpa/${vhostName}`)), join(vdpa1, vhostName));
  const [major, minor] = readFileSync(join(vdpa1, vhostName, 'dev'), 'utf8').trim().split(':').map(Number);
  const node = statSync(vf1!.vhost!);
  assert.ok(node.isCharacterDevice());
  assert.equal(node.rdev, major! * 256 + minor!);
});

test('mutators keep facts and tree in step; cleanup removes the root', () => {
  const other = buildFixture({ pfs: [{ vfs: 1, vdpa: 'vhost' }] });
  const vf = other.vfs[0]!;
  const oldVhost = vf.vhost!;
  other.rebindVdpa(vf.vdpa[0]!);
  assert.equal(existsSync(oldVhost), false, 'old char device gone');
  const now = other.vf(vf.pci);
  assert.equal(now.driver, 'virtio');
  assert.ok(existsSync(join(other.sysfsRoot, 'class/net', now.netdev!)));
  other.rebindVdpa(vf.vdpa[0]!);
  assert.not.equal(other.vf(vf.pci).vhost, oldVhost, 'vhost-vdpa-N is renumbered');
  other.unbindVdpa(vf.vdpa[0]!);
  assert.equal(existsSync(join(other.sysfsRoot, 'bus/vdpa/devices', vf.vdpa[0]!, 'driver')), false);
  assert.equal(readdirSync(join(other.sysfsRoot, 'bus/vdpa/drivers/vhost_vdpa')).sort(), ['bind', 'unbind']);
  other.cleanup();
  assert.equal(existsSync(other.root), false);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { discover } from '../../host/discover.js';
import { endpointFor, usableEndpoints } from '../../host/endpoint.js';
import { buildFixture } from '../support/fixture.js';

const fx = buildFixture({
  pfs: [
    { vfs: [{ netdev: 'veth-p0', representor: 'veth-r0' }, { vdpa: 'vhost' }, { vdpa: 'unbound' }, { vdpa: 'two-vdpa' }], numa: 1 },
    { vfs: [{ vdpa: 'none' }, { vdpa: 'vhost' }], switchdev: false, numa: -1 },
  ],
  plainFunction: { vdpa: 'virtio', netdev: 'ens5' },
  simulator: { vdpa: 'virtio' },
});
test.after(() => fx.cleanup());
const snapshot = () => discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot });

test('usableEndpoints: PCI functions only, sorted by address, every field filled from the tree', () => {
  const [pf0, pf1] = fx.pfs;
  const eps = usableEndpoints(snapshot());
  assert.equal(eps, [
    {
      pciAddress: '0000:00:05.0',
      pfPciAddress: null,
      vdpaDevice: fx.plainFunction!.vdpa,
      driver: 'virtio',
      path: join(fx.sysfsRoot, 'bus/virtio/devices', fx.plainFunction!.virtio!),
      netdev: 'ens5',
      representor: null,
      numaNode: null,
    },
    {
      pciAddress: '0000:65:00.2',
      pfPciAddress: '0000:65:00.0',
      vdpaDevice: pf0!.vfs[0]!.vdpa[0]!,
      driver: 'virtio',
      path: join(fx.sysfsRoot, 'bus/virtio/devices', pf0!.vfs[0]!.virtio!),
      netdev: 'veth-p0',
      representor: 'veth-r0',
      numaNode: 1,
    },
    {
      pciAddress: '0000:65:00.3',
      pfPciAddress: '0000:65:00.0',
      vdpaDevice: pf0!.vfs[1]!.vdpa[0]!,
      driver: 'vhost',
      path: pf0!.vfs[1]!.vhost!,
      netdev: null,
      representor: pf0!.vfs[1]!.representor,
      numaNode: 1,
    },
    {
      pciAddress: pf1!.vfs[1]!.pci,
      pfPciAddress: '0000:65:00.1',
      vdpaDevice: pf1!.vfs[1]!.vdpa[0]!,
      driver: 'vhost',
      path: pf1!.vfs[1]!.vhost!,
      netdev: null,
      representor: null,
      numaNode: null,
    },
  ]);
  assert.equal(fx.simulator!.pci, null, 'the simulator is not among them');
});

test('endpointFor: the endpoint of a usable function, case-insensitive address', () => {
  const ep = endpointFor(snapshot(), '0000:65:00.3');
  assert.equal(ep.path, fx.vf('0000:65:00.3').vhost);
  assert.equal(endpointFor(snapshot(), '0000:00:05.0'.toUpperCase()).netdev, 'ens5');
});

test('endpointFor: operator-facing errors naming the device and why', () => {
  const s = snapshot();
  const [unbound, two] = [fx.vfs[2]!, fx.vfs[3]!];
  assert.throws(() => endpointFor(s, unbound.pci), (e: Error) => e.message === `${unbound.pci}: vDPA device ${unbound.vdpa[0]} is not bound to a driver`);
  assert.throws(
    () => endpointFor(s, two.pci),
    (e: Error) => e.message === `${two.pci}: 2 vDPA devices (${two.vdpa.join(', ')}); one vDPA device per function is supported`,
  );
  assert.throws(() => endpointFor(s, fx.pfs[1]!.vfs[0]!.pci), (e: Error) => e.message === `${fx.pfs[1]!.vfs[0]!.pci}: no vDPA device`);
  assert.throws(() => endpointFor(s, '0000:65:00.0'), (e: Error) => e.message === '0000:65:00.0: no vDPA device');
  assert.throws(
    () => endpointFor(s, '0000:99:00.0'),
    (e: Error) => e.message === '0000:99:00.0: no network PCI function with this address on the node',
  );
});

test('a device rebound after the snapshot was taken is seen only in a new snapshot', () => {
  const vf = fx.vfs[1]!;
  const before = snapshot();
  fx.rebindVdpa(vf.vdpa[0]!);
  assert.equal(endpointFor(before, vf.pci).driver, 'vhost', 'a snapshot is a value');
  const after = endpointFor(snapshot(), vf.pci);
  assert.equal(after.driver, 'virtio');
  assert.equal(after.netdev, fx.vf(vf.pci).netdev);
  assert.equal(after.path, join(fx.sysfsRoot, 'bus/virtio/devices', fx.vf(vf.pci).virtio!));
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../deviceplugin/config.js';
import { advertisableEndpoints, advertised, buildPools, describeChanges, type Pool } from '../../deviceplugin/pools.js';
import { discover } from '../../host/discover.js';
import { usableEndpoints } from '../../host/endpoint.js';
import { buildFixture } from '../support/fixture.js';
import type { PciFunction, Representor, Snapshot, VdpaDriver, VdpaEndpoint } from '../../host/snapshot.js';

// Hand-made snapshots: PF 0000:65:00.0 (uplink p0 "ens1f0np0", NUMA 0) with VFs .2-.5,
// PF 0000:b3:00.0 (uplink "ens2f0np0", NUMA 1) with VF b3:00.2.
const PF_A = '0000:65:00.0';
const PF_B = '0000:b3:00.0';

function rep(name: string, physPortName: string, operState = 'up'): Representor {
  return { name, physPortName, switchId: 'abc', operState };
}

const uplinks: Record<string, Representor> = { [PF_A]: rep('ens1f0np0', 'p0'), [PF_B]: rep('ens2f0np0', 'p0') };

function pf(address: string, vfs: string[]): PciFunction {
  return {
    address,
    vendor: '15b3',
    device: '101d',
    driver: 'mlx5_core',
    numaNode: address === PF_A ? 0 : 1,
    pf: null,
    vfIndex: null,
    vfs,
    netdevs: [uplinks[address]!.name],
    vdpaDevices: [],
    uplink: uplinks[address]!,
    representor: null,
    usable: false,
    reason: 'no vDPA device',
  };
}

function vf(address: string, parent: string, index: number, over: Partial<PciFunction> = {}): PciFunction {
  return {
    address,
    vendor: '15b3',
    device: '101e',
    driver: 'mlx5_core',
    numaNode: parent === PF_A ? 0 : 1,
    pf: parent,
    vfIndex: index,
    vfs: [],
    netdevs: [],
    vdpaDevices: [`vdpa-${address}`],
    uplink: uplinks[parent]!,
    representor: { found: rep(`rep${index}`, `pf0vf${index}`, 'down'), via: 'sysfs' },
    usable: true,
    ...over,
  };
}

function endpoint(fn: PciFunction, driver: VdpaDriver): VdpaEndpoint {
  return {
    pciAddress: fn.address,
    pfPciAddress: fn.pf,
    vdpaDevice: `vdpa-${fn.address}`,
    driver,
    path: driver === 'vhost' ? '/dev/vhost-vdpa-1' : '/sys/bus/virtio/devices/virtio1',
    netdev: driver === 'virtio' ? 'eth1' : null,
    representor: null,
    numaNode: fn.numaNode,
  };
}

interface Node {
  snapshot: Snapshot;
  endpoints: VdpaEndpoint[];
}

/** VFs with the driver their (usable) vDPA device is bound to. */
function node(vfs: [PciFunction, VdpaDriver | null][]): Node {
  const pfs = [pf(PF_A, vfs.filter(([f]) => f.pf === PF_A).map(([f]) => f.address)), pf(PF_B, vfs.filter(([f]) => f.pf === PF_B).map(([f]) => f.address))];
  const functions = new Map<string, PciFunction>([...pfs, ...vfs.map(([f]) => f)].map((f) => [f.address, f]));
  const endpoints = vfs.flatMap(([f, d]) => (d && f.usable ? [endpoint(f, d)] : []));
  return { snapshot: { functions, vdpa: new Map(), errors: [] }, endpoints };
}

const config = (resourceList: unknown[]): Config => parseConfig({ resourceList }, 'example.com');

function pools(n: Node, c: Config, previous?: Pool[]): Pool[] {
  return buildPools({ snapshot: n.snapshot, endpoints: n.endpoints, config: c, previous });
}

const ids = (p: Pool) => [...p.devices.keys()];
const health = (p: Pool) => Object.fromEntries([...p.devices.values()].map((d) => [d.id, d.health]));

const v2 = vf('0000:65:00.2', PF_A, 0);
const v3 = vf('0000:65:00.3', PF_A, 1);
const v4 = vf('0000:65:00.4', PF_A, 2);
const b2 = vf('0000:b3:00.2', PF_B, 0);

test('devices join the pool whose selector matches their vDPA type; the first matching pool claims a device', () => {
  const n = node([[v2, 'virtio'], [v3, 'vhost'], [v4, 'virtio'], [b2, 'virtio']]);
  const c = config([
    { resourceName: 'numa1', selectors: [{ vdpaType: 'virtio', rootDevices: [PF_B] }] },
    { resourceName: 'virtio', selectors: { vdpaType: 'virtio' } },
    { resourceName: 'vhost', selectors: { vdpaType: 'vhost' } },
    { resourceName: 'virtio_too', selectors: { vdpaType: 'virtio' } },
  ]);
  const [numa1, virtio, vhost, virtioToo] = pools(n, c);
  assert.equal(ids(numa1!), ['0000:b3:00.2']);
  assert.equal(ids(virtio!), ['0000:65:00.2', '0000:65:00.4']);
  assert.equal(ids(vhost!), ['0000:65:00.3']);
  assert.equal(ids(virtioToo!), []);
  const d = virtio!.devices.get('0000:65:00.2')!;
  assert.equal(d, { id: '0000:65:00.2', pf: PF_A, numaNode: 0, health: 'Healthy', problems: [], endpoint: n.endpoints[0]! });
});

test('unusable functions and functions without an endpoint (non-PCI vDPA has none) are never advertised', () => {
  const unbound = vf('0000:65:00.5', PF_A, 3, { usable: false, reason: 'vDPA device vdpa3 is not bound to a driver' });
  const n = node([[v2, 'virtio'], [unbound, null]]);
  const [p] = pools(n, config([{ resourceName: 'all', selectors: [{ vdpaType: 'virtio' }, { vdpaType: 'vhost' }] }]));
  assert.equal(ids(p!), ['0000:65:00.2']);
});

test('selector fields: vendors, devices, drivers, pciAddresses, pfNames with VF ranges, rootDevices, linkTypes', () => {
  const other = vf('0000:65:00.5', PF_A, 3, { vendor: '8086', device: '154c', driver: 'ifcvf' });
  const n = node([[v2, 'virtio'], [v3, 'virtio'], [v4, 'virtio'], [other, 'virtio'], [b2, 'virtio']]);
  const only = (selector: Record<string, unknown>) => ids(pools(n, config([{ resourceName: 'p', selectors: { vdpaType: 'virtio', ...selector } }]))[0]!);
  assert.equal(only({ vendors: ['8086'] }), ['0000:65:00.5']);
  assert.equal(only({ devices: ['101e'] }), ['0000:65:00.2', '0000:65:00.3', '0000:65:00.4', '0000:b3:00.2']);
  assert.equal(only({ drivers: ['ifcvf'] }), ['0000:65:00.5']);
  assert.equal(only({ pciAddresses: ['65:00.3', '0000:b3:00.2'] }), ['0000:65:00.3', '0000:b3:00.2']);
  assert.equal(only({ pfNames: ['ens1f0np0#0,2-3'] }), ['0000:65:00.2', '0000:65:00.4', '0000:65:00.5']);
  assert.equal(only({ pfNames: ['ens2f0np0'] }), ['0000:b3:00.2']);
  assert.equal(only({ pfNames: ['ens9'] }), []);
  assert.equal(only({ rootDevices: [`${PF_A}#1`] }), ['0000:65:00.3']);
  // Every vDPA net device is Ethernet: the operator's linkTypes ["ether"] selects them all, "infiniband" none.
  assert.equal(only({ linkTypes: ['ether'] }).length, 5);
  assert.equal(only({ linkTypes: ['infiniband'] }), []);
  // All fields of one selector must match.
  assert.equal(only({ vendors: ['15b3'], pfNames: ['ens1f0np0#0-1'] }), ['0000:65:00.2', '0000:65:00.3']);
  // Any selector of a pool may match.
  const either = pools(n, config([{ resourceName: 'p', selectors: [{ vdpaType: 'virtio', rootDevices: [PF_B] }, { vdpaType: 'virtio', drivers: ['ifcvf'] }] }]));
  assert.equal(ids(either[0]!), ['0000:65:00.5', '0000:b3:00.2']);
});

test('a PF or plain function carrying a vDPA device joins a pool; pfNames/rootDevices never select it', () => {
  const plain: PciFunction = { ...vf('0000:00:05.0', PF_A, 0), pf: null, vfIndex: null, uplink: null, representor: null, numaNode: null };
  const n = node([[plain, 'virtio']]);
  assert.equal(ids(pools(n, config([{ resourceName: 'p', selectors: { vdpaType: 'virtio' } }]))[0]!), ['0000:00:05.0']);
  assert.equal(ids(pools(n, config([{ resourceName: 'p', selectors: { vdpaType: 'virtio', rootDevices: [PF_A] } }]))[0]!), []);
  const [p] = pools(n, config([{ resourceName: 'p', selectors: { vdpaType: 'virtio' } }]));
  // Its own address stands for the PF; no NUMA node means no topology.
  assert.is(p!.devices.get('0000:00:05.0')!.pf, '0000:00:05.0');
  assert.equal(advertised(p!), [{ ID: '0000:00:05.0', health: 'Healthy', topology: undefined }]);
});

test('health: a PF uplink that is down or a missing representor on a switchdev PF makes a device Unhealthy', () => {
  const downA = { ...uplinks[PF_A]!, operState: 'down' };
  const n = node([
    [vf('0000:65:00.2', PF_A, 0, { uplink: downA }), 'virtio'],
    [vf('0000:65:00.3', PF_A, 1, { representor: { missing: 'no representor with phys_port_name pf0vf1' } }), 'virtio'],
    // Legacy SR-IOV: no uplink representor, so no representor is expected either.
    [vf('0000:65:00.4', PF_A, 2, { uplink: null, representor: { missing: 'not in switchdev mode' } }), 'virtio'],
    // An idle VF's representor is down by design; it says nothing about the device.
    [vf('0000:65:00.5', PF_A, 3, { representor: { found: rep('rep3', 'pf0vf3', 'down'), via: 'devlink' } }), 'virtio'],
  ]);
  const [p] = pools(n, config([{ resourceName: 'p', selectors: { vdpaType: 'virtio' } }]));
  assert.equal(health(p!), { '0000:65:00.2': 'Unhealthy', '0000:65:00.3': 'Unhealthy', '0000:65:00.4': 'Healthy', '0000:65:00.5': 'Healthy' });
  assert.equal(p!.devices.get('0000:65:00.2')!.problems, ['PF uplink ens1f0np0 is down']);
  assert.equal(p!.devices.get('0000:65:00.3')!.problems, ['representor missing: no representor with phys_port_name pf0vf1']);
  // The device can still be handed out later, when healthy again: the endpoint stays known.
  assert.ok(p!.devices.get('0000:65:00.2')!.endpoint);
});

test('a member whose vDPA device goes away stays as Unhealthy; a vanished function is removed', () => {
  const c = config([{ resourceName: 'p', selectors: { vdpaType: 'virtio' } }]);
  const first = pools(node([[v2, 'virtio'], [v3, 'virtio'], [v4, 'virtio']]), c);
  const unbound = vf('0000:65:00.2', PF_A, 0, { usable: false, reason: 'vDPA device vdpa0 is not bound to a driver' });
  const gone = vf('0000:65:00.3', PF_A, 1, { vdpaDevices: [], usable: false, reason: 'no vDPA device' });
  const second = pools(node([[unbound, null], [gone, null]]), c, first);
  assert.equal(health(second[0]!), { '0000:65:00.2': 'Unhealthy', '0000:65:00.3': 'Unhealthy' });
  assert.equal(second[0]!.devices.get('0000:65:00.2')!.problems, ['vDPA device vdpa0 is not bound to a driver']);
  assert.is(second[0]!.devices.get('0000:65:00.2')!.endpoint, null);
  assert.equal(describeChanges(first[0], second[0]!), [
    '0000:65:00.2 Healthy → Unhealthy: vDPA device vdpa0 is not bound to a driver',
    '0000:65:00.3 Healthy → Unhealthy: no vDPA device',
    '0000:65:00.4 removed',
  ]);
  // Bound again: Healthy again.
  const third = pools(node([[v2, 'virtio'], [v3, 'virtio']]), c, second);
  assert.equal(health(third[0]!), { '0000:65:00.2': 'Healthy', '0000:65:00.3': 'Healthy' });
  // Without a previous scan (a plugin restart) an unusable device is simply not advertised.
  assert.equal(ids(pools(node([[unbound, null]]), c)[0]!), []);
});

test('a driver type change: Unhealthy in the old pool, unless another pool takes the device', () => {
  const onlyVirtio = config([{ resourceName: 'virtio', selectors: { vdpaType: 'virtio' } }]);
  const before = pools(node([[v2, 'virtio']]), onlyVirtio);
  const after = pools(node([[v2, 'vhost']]), onlyVirtio, before);
  assert.equal(health(after[0]!), { '0000:65:00.2': 'Unhealthy' });
  assert.equal(after[0]!.devices.get('0000:65:00.2')!.problems, ['vDPA device vdpa-0000:65:00.2 is bound to vhost, the pool wants virtio']);

  const both = config([
    { resourceName: 'virtio', selectors: { vdpaType: 'virtio' } },
    { resourceName: 'vhost', selectors: { vdpaType: 'vhost' } },
  ]);
  const moved = pools(node([[v2, 'vhost']]), both, pools(node([[v2, 'virtio']]), both));
  assert.equal(ids(moved[0]!), []);
  assert.equal(health(moved[1]!), { '0000:65:00.2': 'Healthy' });
});

test('a config that no longer selects a former member drops it', () => {
  const before = pools(node([[v2, 'virtio'], [v3, 'virtio']]), config([{ resourceName: 'p', selectors: { vdpaType: 'virtio' } }]));
  const narrowed = config([{ resourceName: 'p', selectors: { vdpaType: 'virtio', pciAddresses: ['0000:65:00.3'] } }]);
  const unbound = vf('0000:65:00.2', PF_A, 0, { usable: false, reason: 'unbound' });
  assert.equal(ids(pools(node([[unbound, null], [v3, 'virtio']]), narrowed, before)[0]!), ['0000:65:00.3']);
});

test('advertised: ID, health and NUMA topology unless excludeTopology', () => {
  const n = node([[v2, 'virtio'], [b2, 'virtio']]);
  const [withTopo, without] = pools(
    n,
    config([
      { resourceName: 'a', selectors: { vdpaType: 'virtio', rootDevices: [PF_A] } },
      { resourceName: 'b', excludeTopology: true, selectors: { vdpaType: 'virtio' } },
    ]),
  );
  assert.equal(advertised(withTopo!), [{ ID: '0000:65:00.2', health: 'Healthy', topology: { nodes: [{ ID: 0 }] } }]);
  assert.equal(advertised(without!), [{ ID: '0000:b3:00.2', health: 'Healthy', topology: undefined }]);
});

test("advertisable: an allocated virtio VF whose netdev is in a pod's namespace (hidden from the host's sysfs)", () => {
  const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'virtio' }, { vdpa: 'unbound' }, { vdpa: 'vhost' }] }] });
  try {
    const [inPod, idle, unbound, vhost] = fx.vfs;
    // What the kernel shows once the netdev moved to another namespace: virtioN/net/ no longer lists it.
    for (const vf of [inPod!, idle!]) {
      const dir = join(fx.sysfsRoot, 'bus', 'virtio', 'devices', vf.virtio!, 'net');
      renameSync(join(dir, vf.netdev!), join(dir, '..', `hidden-${vf.netdev}`));
    }
    const snapshot = discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot });
    assert.not.ok(snapshot.functions.get(inPod!.pci)!.usable);
    assert.equal(usableEndpoints(snapshot).map((e) => e.pciAddress), [vhost!.pci]);
    const eps = advertisableEndpoints(snapshot, new Set([inPod!.pci, unbound!.pci, '0000:99:00.0']));
    assert.equal(eps.map((e) => e.pciAddress).sort(), [inPod!.pci, vhost!.pci].sort());
    assert.equal(eps.find((e) => e.pciAddress === inPod!.pci), {
      pciAddress: inPod!.pci,
      pfPciAddress: inPod!.pf,
      vdpaDevice: inPod!.vdpa[0],
      driver: 'virtio',
      path: join(fx.sysfsRoot, 'bus', 'virtio', 'devices', inPod!.virtio!),
      netdev: null,
      representor: inPod!.representor,
      numaNode: 0,
    });
  } finally {
    fx.cleanup();
  }
});

test.run();

// The built plugin against a fixture node and the kubelet stand-in: registration, ListAndWatch
// contents, and Allocate for virtio and vhost pools checked field by field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AllocateResponse, Device } from '../../proto/gen/deviceplugin_v1beta1.js';
import { buildFixture } from '../support/fixture.js';
import type { ConnectedPlugin } from '../support/kubelet.js';
import { Scenario } from './harness.js';

const fx = buildFixture({
  pfs: [
    { vfs: [{ vdpa: 'virtio', netdev: 'vnet-a0' }, { vdpa: 'virtio' }, { vdpa: 'vhost' }, { vdpa: 'vhost' }], numa: 0 },
    { vfs: [{ vdpa: 'virtio' }], numa: 1, switchdev: false },
  ],
  simulator: { vdpa: 'virtio' },
  plainFunction: { vdpa: 'vhost' },
});
const [a0, a1, a2, a3, b0] = fx.vfs as [typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0]];
const plain = fx.plainFunction!;
const config = {
  resourceList: [
    {
      resourceName: 'vdpa_virtio',
      resourcePrefix: 'example.com',
      selectors: { vdpaType: 'virtio' },
      additionalInfo: { '*': { network: 'ovn' }, [a1.pci]: { network: 'special', extra: 'yes' } },
    },
    { resourceName: 'vdpa-vhost', resourcePrefix: 'dp.example-corp.io', selectors: [{ vdpaType: 'vhost' }] },
  ],
};
const VIRTIO = 'example.com/vdpa_virtio';
const VHOST = 'dp.example-corp.io/vdpa-vhost';
let sc: Scenario;
let virtio: ConnectedPlugin;
let vhost: ConnectedPlugin;

const dpFile = (resource: string, id: string) => join(sc.ws.devinfoDir, 'dp', `${resource.replace('/', '-')}-${id}-device.json`);
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));
const dpFiles = () => (existsSync(join(sc.ws.devinfoDir, 'dp')) ? readdirSync(join(sc.ws.devinfoDir, 'dp')).sort() : []);

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

test.before(async () => {
  sc = await Scenario.start({ fixture: fx, config });
  virtio = await sc.kubelet.waitForPlugin(VIRTIO);
  vhost = await sc.kubelet.waitForPlugin(VHOST);
});

test.after(() => sc?.stop());

test('each pool is served on <prefix>_<name>.sock and registered with v1beta1 and preferred allocation', async () => {
  const byResource = Object.fromEntries(sc.kubelet.registrations.map((r) => [r.resourceName, r]));
  assert.equal(byResource[VIRTIO], {
    version: 'v1beta1',
    endpoint: 'example.com_vdpa_virtio.sock',
    resourceName: VIRTIO,
    options: { preStartRequired: false, getPreferredAllocationAvailable: true },
  });
  assert.is(byResource[VHOST]!.endpoint, 'dp.example-corp.io_vdpa-vhost.sock');
  assert.equal(sc.kubelet.pluginSockets().sort(), ['dp.example-corp.io_vdpa-vhost.sock', 'example.com_vdpa_virtio.sock']);
  // The stand-in dialled back the socket named in the registration: serving came first.
  assert.equal(virtio.options, { preStartRequired: false, getPreferredAllocationAvailable: true });
  assert.equal(await vhost.client.options(), { preStartRequired: false, getPreferredAllocationAvailable: true });
  assert.equal(sc.kubelet.errors, []);
});

test('ListAndWatch: VF PCI addresses with NUMA topology; the plain function joins, the simulator never does', async () => {
  const devices = await virtio.stream.waitFor((d) => d.length === 3);
  const numa = (n: number) => ({ nodes: [{ ID: n }] });
  assert.equal(devices, [
    { ID: a0.pci, health: 'Healthy', topology: numa(0) },
    { ID: a1.pci, health: 'Healthy', topology: numa(0) },
    { ID: b0.pci, health: 'Healthy', topology: numa(1) },
  ] satisfies Device[]);
  assert.equal(await vhost.stream.waitFor((d) => d.length === 3), [
    { ID: plain.pci!, health: 'Healthy', topology: undefined },
    { ID: a2.pci, health: 'Healthy', topology: numa(0) },
    { ID: a3.pci, health: 'Healthy', topology: numa(0) },
  ]);
});

test('virtio Allocate: env, _INFO and the DeviceInfo file, field by field; no device nodes', async () => {
  const resp: AllocateResponse = await virtio.client.allocate([[a0.pci, a1.pci]]);
  assert.is(resp.containerResponses.length, 1);
  const c = resp.containerResponses[0]!;
  assert.equal(Object.keys(c.envs).sort(), ['PCIDEVICE_EXAMPLE_COM_VDPA_VIRTIO', 'PCIDEVICE_EXAMPLE_COM_VDPA_VIRTIO_INFO']);
  assert.is(c.envs.PCIDEVICE_EXAMPLE_COM_VDPA_VIRTIO, `${a0.pci},${a1.pci}`);
  assert.equal(JSON.parse(c.envs.PCIDEVICE_EXAMPLE_COM_VDPA_VIRTIO_INFO!), {
    [a0.pci]: {
      generic: { deviceID: a0.pci },
      vdpa: { 'parent-device': a0.vdpa[0], driver: 'virtio', netdev: 'vnet-a0' },
      extra: { network: 'ovn' },
    },
    [a1.pci]: {
      generic: { deviceID: a1.pci },
      vdpa: { 'parent-device': a1.vdpa[0], driver: 'virtio', netdev: a1.netdev },
      extra: { network: 'special', extra: 'yes' },
    },
  });
  assert.equal(c.devices, []);
  assert.equal(c.mounts, []);
  assert.equal(c.annotations, {});
  for (const vf of [a0, a1]) {
    assert.equal(readJson(dpFile(VIRTIO, vf.pci)), {
      type: 'vdpa',
      version: '1.1.0',
      vdpa: {
        'parent-device': vf.vdpa[0],
        driver: 'virtio',
        path: join(fx.sysfsRoot, 'bus', 'virtio', 'devices', vf.virtio!),
        'pci-address': vf.pci,
        'pf-pci-address': vf.pf,
        'representor-device': vf.representor,
      },
    });
  }
});

test('virtio on a legacy (non-switchdev) PF: DeviceInfo has no representor', async () => {
  await virtio.client.allocate([[b0.pci]]);
  const doc = readJson(dpFile(VIRTIO, b0.pci)) as { vdpa: Record<string, string> };
  assert.is(b0.representor, null);
  assert.equal(doc.vdpa, {
    'parent-device': b0.vdpa[0],
    driver: 'virtio',
    path: join(fx.sysfsRoot, 'bus', 'virtio', 'devices', b0.virtio!),
    'pci-address': b0.pci,
    'pf-pci-address': b0.pf,
  });
});

test('vhost Allocate: a DeviceSpec per device (rw), the mount in _INFO, the char device in DeviceInfo; one response per container', async () => {
  const resp = await vhost.client.allocate([[a2.pci], [a3.pci, plain.pci!]]);
  assert.is(resp.containerResponses.length, 2);
  const [first, second] = resp.containerResponses;
  // The incumbent's name keeps "-" (only "." becomes "_"); not a shell name, so the sanitized one is set too.
  const incumbent = 'PCIDEVICE_DP_EXAMPLE-CORP_IO_VDPA-VHOST';
  const key = 'PCIDEVICE_DP_EXAMPLE_CORP_IO_VDPA_VHOST';
  assert.equal(Object.keys(first!.envs).sort(), [incumbent, `${incumbent}_INFO`, key, `${key}_INFO`]);
  assert.is(first!.envs[incumbent], first!.envs[key]);
  assert.is(first!.envs[`${incumbent}_INFO`], first!.envs[`${key}_INFO`]);
  const name = (path: string) => path.split('/').pop()!;
  assert.equal(first!.envs[key], a2.pci);
  assert.equal(first!.devices, [{ containerPath: `/dev/${name(a2.vhost!)}`, hostPath: a2.vhost!, permissions: 'rw' }]);
  assert.equal(JSON.parse(first!.envs[`${key}_INFO`]!), {
    [a2.pci]: { generic: { deviceID: a2.pci }, vdpa: { 'parent-device': a2.vdpa[0], driver: 'vhost', mount: `/dev/${name(a2.vhost!)}` } },
  });
  assert.equal(second!.envs[key], `${a3.pci},${plain.pci}`);
  assert.equal(second!.devices, [
    { containerPath: `/dev/${name(a3.vhost!)}`, hostPath: a3.vhost!, permissions: 'rw' },
    { containerPath: `/dev/${name(plain.vhost!)}`, hostPath: plain.vhost!, permissions: 'rw' },
  ]);
  assert.equal(readJson(dpFile(VHOST, a2.pci)), {
    type: 'vdpa',
    version: '1.1.0',
    vdpa: {
      'parent-device': a2.vdpa[0],
      driver: 'vhost',
      path: a2.vhost,
      'pci-address': a2.pci,
      'pf-pci-address': a2.pf,
      'representor-device': a2.representor,
    },
  });
  // A plain PCI function has no PF and no representor.
  assert.equal(readJson(dpFile(VHOST, plain.pci!)), {
    type: 'vdpa',
    version: '1.1.0',
    vdpa: { 'parent-device': plain.vdpa, driver: 'vhost', path: plain.vhost, 'pci-address': plain.pci },
  });
});

test('an unknown device ID fails with NOT_FOUND naming it, and nothing is written', async () => {
  const before = dpFiles();
  const err = await refused(virtio.client.allocate([[a0.pci], ['0000:99:00.7']]));
  assert.is(err.code, grpc.status.NOT_FOUND);
  assert.match(err.details, '0000:99:00.7');
  assert.match(err.details, VIRTIO);
  // A device of the other pool is unknown to this one.
  const other = await refused(virtio.client.allocate([[a2.pci]]));
  assert.is(other.code, grpc.status.NOT_FOUND);
  assert.match(other.details, a2.pci);
  assert.equal(dpFiles(), before);
});

test('GetPreferredAllocation: must-include first, then one NUMA node; PreStartContainer is accepted', async () => {
  const resp = await virtio.client.preferred([
    { available: [a0.pci, a1.pci, b0.pci], mustInclude: [b0.pci], size: 1 },
    { available: [a0.pci, a1.pci, b0.pci], size: 2 },
  ]);
  assert.equal(resp.containerResponses.map((c) => c.deviceIDs), [[b0.pci], [a0.pci, a1.pci]]);
  assert.equal(await virtio.client.preStart([a0.pci]), {});
});

test('vhost: the char device is re-read at Allocate — after a rebind the new vhost-vdpa-K is handed out', async () => {
  const old = fx.vf(a3.pci).vhost!;
  fx.bindVdpa(a3.vdpa[0]!, 'vhost');
  const now = fx.vf(a3.pci).vhost!;
  assert.is.not(now, old);
  const resp = await vhost.client.allocate([[a3.pci]]);
  assert.equal(resp.containerResponses[0]!.devices, [{ containerPath: `/dev/${now.split('/').pop()}`, hostPath: now, permissions: 'rw' }]);
  assert.is((readJson(dpFile(VHOST, a3.pci)) as { vdpa: { path: string } }).vdpa.path, now);
});

test('an Unhealthy device fails with FAILED_PRECONDITION naming it and why, and nothing is written', async () => {
  fx.unbindVdpa(a1.vdpa[0]!);
  await virtio.stream.waitFor((d) => d.find((x) => x.ID === a1.pci)?.health === 'Unhealthy');
  const before = readFileSync(dpFile(VIRTIO, a0.pci), 'utf8');
  const files = dpFiles();
  const err = await refused(virtio.client.allocate([[a0.pci, a1.pci]]));
  assert.is(err.code, grpc.status.FAILED_PRECONDITION);
  assert.match(err.details, `${a1.pci} (vDPA device ${a1.vdpa[0]} is not bound to a driver)`);
  assert.equal(dpFiles(), files);
  assert.is(readFileSync(dpFile(VIRTIO, a0.pci), 'utf8'), before);
  assert.ok(sc.plugin.logs.some((l) => l.level === 'warn' && l.msg === 'allocate refused'));
});

test.run();

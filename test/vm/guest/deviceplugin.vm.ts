// The built vdpa-device-plugin against the guest's real /sys and /dev, talking to the kubelet
// stand-in: vp_vdpa functions (plain PCI functions, no physfn) join the pools as non-VF vDPA
// functions, the vhost pool's Allocate hands out the real /dev/vhost-vdpa-N, and a device whose
// vDPA driver goes away turns Unhealthy on the ListAndWatch stream.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KubeletStandIn, type ConnectedPlugin } from '../../support/kubelet.js';
import { PluginProcess, Workspace } from '../../deviceplugin/harness.js';
import { addVdpa, bindVdpa, delVdpa, toVirtioPci, toVpVdpa, unbindVdpa, vhostOf, virtioNetFunctions, virtioOf } from './testbed.js';

// The guest runs on an emulated CPU: starts and rescans are slow, so waits are generous.
const WAIT_MS = 90_000;
const VIRTIO = 'example.com/vdpa_virtio';
const VHOST = 'example.com/vdpa_vhost';
const fns = virtioNetFunctions();
const [v0, v1, h0, h1] = fns as [string, string, string, string];
const DEVICES: [string, string, 'virtio_vdpa' | 'vhost_vdpa'][] = [
  ['dpv0', v0, 'virtio_vdpa'],
  ['dpv1', v1, 'virtio_vdpa'],
  ['dph0', h0, 'vhost_vdpa'],
  ['dph1', h1, 'vhost_vdpa'],
];

const ws = new Workspace();
let kubelet: KubeletStandIn;
let plugin: PluginProcess;
let virtio: ConnectedPlugin;
let vhost: ConnectedPlugin;

const ids = (devices: readonly { ID: string }[]) => devices.map((d) => d.ID).sort();
const health = (devices: readonly { ID: string; health: string }[], id: string) => devices.find((d) => d.ID === id)?.health;
const dpFile = (resource: string, id: string) => join(ws.devinfoDir, 'dp', `${resource.replace('/', '-')}-${id}-device.json`);

test.before(async () => {
  for (const [name, fn, driver] of DEVICES) {
    addVdpa(name, toVpVdpa(fn));
    bindVdpa(name, driver);
  }
  // A simulator device matches every selector but is no PCI function: it must never join.
  addVdpa('dpsim0', 'vdpasim_net', '02:00:00:00:dd:01');
  ws.writeConfig({
    resourceList: [
      { resourceName: 'vdpa_virtio', resourcePrefix: 'example.com', selectors: { vendors: ['1af4'], vdpaType: 'virtio' } },
      { resourceName: 'vdpa_vhost', resourcePrefix: 'example.com', selectors: [{ drivers: ['vp-vdpa'], vdpaType: 'vhost' }] },
    ],
  });
  kubelet = await KubeletStandIn.start();
  plugin = PluginProcess.start({ ws, sysfsRoot: '/sys', devRoot: '/dev', kubeletDir: kubelet.dir });
  virtio = await kubelet.waitForPlugin(VIRTIO, 1, WAIT_MS);
  vhost = await kubelet.waitForPlugin(VHOST, 1, WAIT_MS);
});

test.after(async () => {
  await plugin?.stop();
  await kubelet?.stop();
  ws.cleanup();
  for (const [name, fn] of DEVICES) {
    delVdpa(name);
    toVirtioPci(fn);
  }
  delVdpa('dpsim0');
});

test('qemu gave four virtio-net functions', () => {
  assert.is(fns.length, 4, fns.join(', '));
});

test('ListAndWatch: the vp_vdpa functions join their pools by vDPA type, Healthy, without topology', async () => {
  const virtioDevices = await virtio.stream.waitFor((d) => d.length === 2, WAIT_MS);
  assert.equal(virtioDevices, [
    { ID: v0, health: 'Healthy', topology: undefined },
    { ID: v1, health: 'Healthy', topology: undefined },
  ]);
  assert.equal(ids(await vhost.stream.waitFor((d) => d.length === 2, WAIT_MS)), [h0, h1]);
});

test('vhost Allocate returns the real /dev/vhost-vdpa-N, and the DeviceInfo file names it', async () => {
  const resp = await vhost.client.allocate([[h0]]);
  const char = `/dev/${vhostOf('dph0')!.name}`;
  assert.ok(statSync(char).isCharacterDevice());
  const c = resp.containerResponses[0]!;
  assert.equal(c.devices, [{ containerPath: char, hostPath: char, permissions: 'rw' }]);
  assert.equal(JSON.parse(readFileSync(dpFile(VHOST, h0), 'utf8')), {
    type: 'vdpa',
    version: '1.1.0',
    vdpa: { 'parent-device': 'dph0', driver: 'vhost', path: char, 'pci-address': h0 },
  });
});

test('virtio Allocate names the real virtio device and netdev', async () => {
  const resp = await virtio.client.allocate([[v0]]);
  const kernel = virtioOf('dpv0')!;
  const info = JSON.parse(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VDPA_VIRTIO_INFO!) as Record<string, unknown>;
  assert.equal(info[v0], { generic: { deviceID: v0 }, vdpa: { 'parent-device': 'dpv0', driver: 'virtio', netdev: kernel.netdev } });
  const doc = JSON.parse(readFileSync(dpFile(VIRTIO, v0), 'utf8')) as { vdpa: { path: string } };
  assert.is(doc.vdpa.path, `/sys/bus/virtio/devices/${kernel.device}`);
  assert.is(realpathSync(doc.vdpa.path), kernel.dir, 'the path leads to the virtio device under the PCI function');
});

test('unbinding a device turns it Unhealthy on the stream; Allocate refuses it; rebinding heals it', async () => {
  unbindVdpa('dpv1');
  try {
    const devices = await virtio.stream.waitFor((d) => health(d, v1) === 'Unhealthy', WAIT_MS, `${v1} Unhealthy`);
    assert.is(health(devices, v0), 'Healthy', 'the other device is untouched');
    let refused: grpc.ServiceError | null = null;
    try {
      await virtio.client.allocate([[v1]]);
    } catch (err) {
      refused = err as grpc.ServiceError;
    }
    assert.is(refused?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(refused?.details ?? '', v1);
  } finally {
    bindVdpa('dpv1', 'virtio_vdpa');
  }
  await virtio.stream.waitFor((d) => health(d, v1) === 'Healthy', WAIT_MS, `${v1} Healthy again`);
});

test('a deleted vDPA device leaves its function Unhealthy; a new device on it is Healthy again', async () => {
  delVdpa('dph1');
  await vhost.stream.waitFor((d) => health(d, h1) === 'Unhealthy', WAIT_MS, `${h1} Unhealthy`);
  addVdpa('dph1', `pci/${h1}`);
  bindVdpa('dph1', 'vhost_vdpa');
  await vhost.stream.waitFor((d) => health(d, h1) === 'Healthy', WAIT_MS, `${h1} Healthy again`);
  const resp = await vhost.client.allocate([[h1]]);
  assert.is(resp.containerResponses[0]!.devices[0]!.hostPath, `/dev/${vhostOf('dph1')!.name}`);
});

test.run();

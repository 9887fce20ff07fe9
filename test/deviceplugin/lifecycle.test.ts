// The plugin process across kubelet restarts, its own restarts and shutdown, in both registration
// modes: sockets, registrations and DeviceInfo files as the kubelet and the CNI would see them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture } from '../support/fixture.js';
import { KubeletStandIn, PluginWatcherStandIn, until } from '../support/kubelet.js';
import { PluginProcess, Workspace } from './harness.js';

const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'virtio' }, { vdpa: 'vhost' }] }] });
const [v0, v1, v2] = fx.vfs as [typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0]];
const RESOURCE = 'example.com/vdpa';
const VHOST = 'example.com/vdpa_vhost';
const CONFIG = {
  resourceList: [
    { resourceName: 'vdpa', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio' } },
    { resourceName: 'vdpa_vhost', resourcePrefix: 'example.com', selectors: { vdpaType: 'vhost' } },
  ],
};
const cleanups: (() => unknown)[] = [];

function workspace(): Workspace {
  const ws = new Workspace();
  ws.writeConfig(CONFIG);
  cleanups.push(() => ws.cleanup());
  return ws;
}

async function kubeletFor(dir?: string): Promise<KubeletStandIn> {
  const k = await KubeletStandIn.start(dir ? { dir } : {});
  cleanups.push(() => k.stop());
  return k;
}

function run(ws: Workspace, kubeletDir: string, extra: { registryDir?: string; registration?: 'auto' | 'kubelet' | 'watcher' } = {}): PluginProcess {
  const p = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir, ...extra });
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

const dpDir = (ws: Workspace) => join(ws.devinfoDir, 'dp');
const dpFiles = (ws: Workspace) => (existsSync(dpDir(ws)) ? readdirSync(dpDir(ws)).sort() : []);
const fileOf = (resource: string, id: string) => `${resource.replace('/', '-')}-${id}-device.json`;

test.after.each(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
test.after(() => fx.cleanup());

test('kubelet restart (sockets deleted, kubelet.sock recreated): the plugin re-serves and re-registers at once', async () => {
  const kubelet = await kubeletFor();
  const plugin = run(workspace(), kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE);
  await kubelet.waitForPlugin(VHOST);
  const restartedAt = performance.now();
  await kubelet.restart();
  // Under the 4-5 s periodic check: this is the event path at work.
  const again = await kubelet.waitForPlugin(RESOURCE, 2, 3_000);
  await kubelet.waitForPlugin(VHOST, 2, 3_000);
  assert.equal(kubelet.pluginSockets().sort(), ['example.com_vdpa.sock', 'example.com_vdpa_vhost.sock']);
  assert.equal(await again.stream.waitFor((d) => d.length === 2), [
    { ID: v0.pci, health: 'Healthy', topology: { nodes: [{ ID: 0 }] } },
    { ID: v1.pci, health: 'Healthy', topology: { nodes: [{ ID: 0 }] } },
  ]);
  const resp = await again.client.allocate([[v0.pci]]);
  assert.is(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VDPA, v0.pci);
  console.log(`    re-registered ${(again.registeredAt - restartedAt).toFixed(0)} ms after the kubelet restart`);
  assert.ok(plugin.logs.some((l) => l.msg === 'serving' && l.reason === 'socket missing or replaced'));
});

test('a kubelet that comes back without deleting the sockets gets a new registration too', async () => {
  const kubelet = await kubeletFor();
  run(workspace(), kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE);
  await kubelet.restart({ keepPluginSockets: true });
  const again = await kubelet.waitForPlugin(RESOURCE, 2, 3_000);
  assert.is((await again.stream.waitFor((d) => d.length === 2)).length, 2);
});

test('started before the kubelet: serves, waits, and registers when kubelet.sock appears', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-late-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const plugin = run(workspace(), dir);
  await plugin.waitForLog((l) => l.msg === 'waiting for the kubelet');
  await until(() => (existsSync(join(dir, 'example.com_vdpa.sock')) ? true : undefined), 5_000, 'the plugin socket');
  const kubelet = await kubeletFor(dir);
  const connected = await kubelet.waitForPlugin(RESOURCE, 1, 3_000);
  assert.is((await connected.stream.waitFor((d) => d.length === 2)).length, 2);
});

test('started before the kubelet directory exists: keeps running, serves once it appears', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-parent-'));
  cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, 'device-plugins');
  const plugin = run(workspace(), dir);
  await plugin.waitForLog((l) => l.msg === 'socket directory missing; serving once it exists' && l.dir === dir);
  const kubelet = await kubeletFor(dir);
  // No event can come from a directory that did not exist: the periodic check (≤ 5 s) finds it.
  const connected = await kubelet.waitForPlugin(RESOURCE, 1, 8_000);
  assert.is((await connected.stream.waitFor((d) => d.length === 2)).length, 2);
});

test('a refused registration is retried until the kubelet accepts it', async () => {
  let refuse = true;
  const kubelet = await KubeletStandIn.start({ refuse: () => (refuse ? 'not now' : null) });
  cleanups.push(() => kubelet.stop());
  const plugin = run(workspace(), kubelet.dir);
  await plugin.waitForLog((l) => l.msg === 'registration failed; retrying' && String(l.error).includes('not now'));
  refuse = false;
  await kubelet.waitForPlugin(RESOURCE, 1, 5_000);
  assert.ok(kubelet.registrations.filter((r) => r.resourceName === RESOURCE).length >= 2);
});

test('SIGTERM and SIGINT: servers stop, sockets are removed, exit 0, DeviceInfo files stay', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const ws = workspace();
    const kubelet = await kubeletFor();
    const plugin = run(ws, kubelet.dir);
    const p = await kubelet.waitForPlugin(RESOURCE);
    await p.client.allocate([[v1.pci]]);
    assert.equal(kubelet.pluginSockets().sort(), ['example.com_vdpa.sock', 'example.com_vdpa_vhost.sock']);
    const exit = await plugin.stop(signal);
    assert.equal(exit, { code: 0, signal: null }, `${signal}: ${plugin.stderr}`);
    assert.equal(kubelet.pluginSockets(), [], signal);
    assert.ok(p.stream.ended, `${signal}: the ListAndWatch stream ended`);
    assert.equal(dpFiles(ws), [fileOf(RESOURCE, v1.pci)], signal);
    assert.ok(plugin.logs.some((l) => l.msg === 'stopping' && l.signal === signal));
  }
});

test('DeviceInfo files survive a plugin restart; files of devices that no longer exist are removed', async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  let plugin = run(ws, kubelet.dir);
  const virtio = await kubelet.waitForPlugin(RESOURCE);
  const vhost = await kubelet.waitForPlugin(VHOST);
  await virtio.client.allocate([[v0.pci], [v1.pci]]);
  await vhost.client.allocate([[v2.pci]]);
  const all = [fileOf(RESOURCE, v0.pci), fileOf(RESOURCE, v1.pci), fileOf(VHOST, v2.pci)].sort();
  assert.equal(dpFiles(ws), all);
  assert.equal((await plugin.stop()).code, 0);

  // Restarted with every device still there: every file stays (pods may be using them).
  plugin = run(ws, kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE, 2);
  assert.equal(dpFiles(ws), all);
  await plugin.stop();

  // v1's vDPA device was deleted while the plugin was down: its file goes at start.
  fx.removeVdpa(v1.vdpa[0]!);
  plugin = run(ws, kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE, 3);
  await until(() => (dpFiles(ws).length === 2 ? true : undefined), 5_000, 'the stale file to go');
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v0.pci), fileOf(VHOST, v2.pci)].sort());
  assert.ok(plugin.logs.some((l) => l.msg === 'removed the DeviceInfo file of a device that no longer exists' && String(l.reason).includes(v1.vdpa[0]!)));

  // While running: v2's vDPA device goes; so does its file. Unrelated files stay.
  fx.removeVdpa(v2.vdpa[0]!);
  await until(() => (dpFiles(ws).length === 1 ? true : undefined), 5_000, 'the vhost file to go');
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v0.pci)]);
  fx.addVdpa(v1.pci, 'virtio', v1.vdpa[0]);
  fx.addVdpa(v2.pci, 'vhost', v2.vdpa[0]);
});

test("a virtio VF in a pod (its netdev gone from the host's sysfs) stays Healthy, and stays advertised after a plugin restart", async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  let plugin = run(ws, kubelet.dir);
  const first = await kubelet.waitForPlugin(RESOURCE);
  await first.stream.waitFor((d) => d.length === 2);
  await first.client.allocate([[v0.pci]]);
  // The CNI moved the netdev into the pod: the kernel no longer lists it under virtioN/net/.
  const net = join(fx.sysfsRoot, 'bus', 'virtio', 'devices', fx.vf(v0.pci).virtio!, 'net');
  const netdev = fx.vf(v0.pci).netdev!;
  renameSync(join(net, netdev), join(net, '..', 'in-pod'));
  cleanups.push(() => renameSync(join(net, '..', 'in-pod'), join(net, netdev)));
  // v1, never handed out, loses its netdev too (virtio_net unloaded, say): that one is not usable.
  const net1 = join(fx.sysfsRoot, 'bus', 'virtio', 'devices', fx.vf(v1.pci).virtio!, 'net');
  renameSync(join(net1, fx.vf(v1.pci).netdev!), join(net1, '..', 'gone'));
  cleanups.push(() => renameSync(join(net1, '..', 'gone'), join(net1, fx.vf(v1.pci).netdev!)));
  const after = await first.stream.waitFor((d) => d.some((x) => x.health === 'Unhealthy'), 6_000);
  assert.equal(after.map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy'], [v1.pci, 'Unhealthy']]);
  await plugin.stop();

  plugin = run(ws, kubelet.dir);
  const second = await kubelet.waitForPlugin(RESOURCE, 2);
  // The capacity still counts the VF in the pod; the one without a netdev and no DeviceInfo is left out.
  assert.equal((await second.stream.waitFor((d) => d.length >= 1)).map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy']]);
});

test('plugin-watcher mode: the socket sits in plugins_registry; GetInfo, connection and NotifyRegistrationStatus', async () => {
  const watcher = PluginWatcherStandIn.start();
  cleanups.push(() => watcher.stop());
  const kubeletDir = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-unused-'));
  cleanups.push(() => rmSync(kubeletDir, { recursive: true, force: true }));
  // auto: the registry directory exists, so watcher mode.
  const plugin = run(workspace(), kubeletDir, { registryDir: watcher.dir, registration: 'auto' });
  const connected = await watcher.waitForPlugin(RESOURCE);
  await watcher.waitForPlugin(VHOST);
  const socket = join(watcher.dir, 'example.com_vdpa.sock');
  assert.equal(watcher.infos.get(socket), { type: 'DevicePlugin', name: RESOURCE, endpoint: socket, supportedVersions: ['v1beta1'] });
  assert.equal(connected.options, { preStartRequired: false, getPreferredAllocationAvailable: true });
  assert.is((await connected.stream.waitFor((d) => d.length === 2)).length, 2);
  await plugin.waitForLog((l) => l.msg === 'registered through the plugin watcher' && l.resource === RESOURCE);
  assert.equal(readdirSync(kubeletDir), [], 'nothing in the device-plugins directory');
  const resp = await connected.client.allocate([[v0.pci]]);
  assert.is(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VDPA, v0.pci);
  await plugin.stop();
  assert.equal(readdirSync(watcher.dir).filter((n) => n.endsWith('.sock')), []);
});

test('plugin-watcher mode: a rejected registration makes the plugin serve a new socket, and the watcher retries', async () => {
  let rejections = 1;
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-registry-'));
  const watcher = PluginWatcherStandIn.start({ dir, verdict: (info) => (info.name === RESOURCE && rejections-- > 0 ? 'try again' : null) });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => watcher.stop());
  const plugin = run(workspace(), join(dir, 'unused'), { registryDir: dir, registration: 'watcher' });
  await plugin.waitForLog((l) => l.msg === 'the kubelet rejected the registration; re-serving' && l.error === 'try again');
  await plugin.waitForLog((l) => l.msg === 'serving' && l.resource === RESOURCE && l.reason === 'registration rejected');
  const connected = await watcher.waitForPlugin(RESOURCE, 1, 5_000);
  assert.is((await connected.stream.waitFor((d) => d.length === 2)).length, 2);
  await plugin.waitForLog((l) => l.msg === 'registered through the plugin watcher' && l.resource === RESOURCE);
});

test.run();

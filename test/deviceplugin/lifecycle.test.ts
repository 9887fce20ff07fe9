// The plugin process across kubelet restarts, its own restarts and shutdown, in both registration
// modes: sockets, registrations and DeviceInfo files as the kubelet and the CNI would see them,
// and what pods hold as the plugin learns it from the kubelet's pod resources API (the stand-in
// serves its own book of the allocations it made).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodResourcesListerClient } from '../../proto/gen/podresources_v1.js';
import { buildFixture } from '../support/fixture.js';
import { KubeletStandIn, PluginClient, PluginWatcherStandIn, until } from '../support/kubelet.js';
import { PluginProcess, Workspace, type LogLine } from './harness.js';

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

function run(ws: Workspace, kubeletDir: string, extra: { registryDir?: string; registration?: 'auto' | 'kubelet' | 'watcher'; args?: string[] } = {}): PluginProcess {
  const p = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir, ...extra });
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

const dpDir = (ws: Workspace) => join(ws.devinfoDir, 'dp');
const dpFiles = (ws: Workspace) => (existsSync(dpDir(ws)) ? readdirSync(dpDir(ws)).sort() : []);
const fileOf = (resource: string, id: string) => `${resource.replace('/', '-')}-${id}-device.json`;
const back = (path: string, ms: number) => utimesSync(path, new Date(Date.now() - ms), new Date(Date.now() - ms));
/** Dates every DeviceInfo file back, as if the devices had been handed out that long ago. */
const ageFiles = (ws: Workspace, ms: number) => dpFiles(ws).forEach((n) => back(join(dpDir(ws), n), ms));
const removals = (p: PluginProcess) => p.logs.filter((l) => l.msg === 'removed a DeviceInfo file no pod needs');
/** The reasons of the first `n` removals, once they are logged. */
const removed = (p: PluginProcess, n: number) => until(() => (removals(p).length >= n ? removals(p).map((l) => String(l.reason)) : undefined), 7_000, `${n} removals`);

/** Resolves after `n` more periodic ticks (each asks the kubelet, then scans); needs --log-level debug. */
async function ticks(p: PluginProcess, n: number): Promise<void> {
  const periodic = (l: LogLine) => l.msg === 'rescanned' && l.reason === 'periodic';
  const seen = p.logs.filter(periodic).length;
  await until(() => (p.logs.filter(periodic).length >= seen + n ? true : undefined), 6_000 * n, `${n} periodic ticks`);
}

/** The VF's netdev leaves the host (into a pod, or lost): sysfs no longer lists it under virtioN/net/. */
function hideNetdev(pci: string): void {
  const net = join(fx.sysfsRoot, 'bus', 'virtio', 'devices', fx.vf(pci).virtio!, 'net');
  const netdev = fx.vf(pci).netdev!;
  renameSync(join(net, netdev), join(net, '..', `away-${netdev}`));
  cleanups.push(() => renameSync(join(net, '..', `away-${netdev}`), join(net, netdev)));
}

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
  const parent = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-late-'));
  cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, 'device-plugins');
  mkdirSync(dir);
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

test('DeviceInfo files stay while the kubelet lists a container holding the device, across plugin restarts; then they go', async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  let plugin = run(ws, kubelet.dir);
  const virtio = await kubelet.waitForPlugin(RESOURCE);
  const vhost = await kubelet.waitForPlugin(VHOST);
  await virtio.client.allocate([[v0.pci], [v1.pci]], { namespace: 'ns', name: 'web' });
  await vhost.client.allocate([[v2.pci]], { namespace: 'ns', name: 'vm' });
  const all = [fileOf(RESOURCE, v0.pci), fileOf(RESOURCE, v1.pci), fileOf(VHOST, v2.pci)].sort();
  assert.equal(dpFiles(ws), all);
  assert.equal((await plugin.stop()).code, 0);

  // Restarted with every device still there: every file stays (pods may be using them).
  plugin = run(ws, kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE, 2);
  assert.equal(dpFiles(ws), all);
  await plugin.stop();

  // v1's vDPA device was deleted while the plugin was down, but pod ns/web still holds v1: kept.
  fx.removeVdpa(v1.vdpa[0]!);
  cleanups.push(() => fx.addVdpa(v1.pci, 'virtio', v1.vdpa[0]));
  plugin = run(ws, kubelet.dir);
  await kubelet.waitForPlugin(RESOURCE, 3);
  await plugin.waitForLog((l) => l.msg === 'asking the kubelet which devices pods hold' && l.held === 3);
  assert.equal(dpFiles(ws), all);

  // The pod goes (allocated long enough ago for the kubelet to have booked it): its files go at
  // the next tick, the other pod's stays.
  ageFiles(ws, 60_000);
  assert.ok(kubelet.deletePod('ns', 'web'));
  assert.equal((await removed(plugin, 2)).sort(), [`the kubelet lists no container holding ${v0.pci}`, `the kubelet lists no container holding ${v1.pci} (vDPA device ${v1.vdpa[0]} is gone)`]);
});

test("a virtio VF in a pod (its netdev gone from the host's sysfs) stays Healthy while a container holds it, also after a plugin restart", async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  let plugin = run(ws, kubelet.dir, { args: ['--log-level', 'debug'] });
  const first = await kubelet.waitForPlugin(RESOURCE);
  await first.stream.waitFor((d) => d.length === 2);
  await first.client.allocate([[v0.pci]], { namespace: 'ns', name: 'web' });
  // The CNI moved the netdev into the pod.
  hideNetdev(v0.pci);
  // v1, never handed out, loses its netdev too (virtio_net unloaded, say): that one is not usable.
  hideNetdev(v1.pci);
  const after = await first.stream.waitFor((d) => d.some((x) => x.health === 'Unhealthy'), 6_000);
  assert.equal(after.map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy'], [v1.pci, 'Unhealthy']]);
  await plugin.stop();

  ageFiles(ws, 60_000);
  plugin = run(ws, kubelet.dir, { args: ['--log-level', 'debug'] });
  const second = await kubelet.waitForPlugin(RESOURCE, 2);
  // The capacity still counts the VF in the pod; the one without a netdev and no pod is left out.
  assert.equal((await second.stream.waitFor((d) => d.length >= 1)).map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy']]);
  await ticks(plugin, 1);
  assert.equal((second.stream.latest ?? []).map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy']]);
  // The pod is deleted, but the netdev never came back to the host: its file does not keep it Healthy.
  assert.ok(kubelet.deletePod('ns', 'web'));
  const gone = await second.stream.waitFor((d) => d.some((x) => x.health === 'Unhealthy'), 7_000);
  assert.equal(gone.map((d) => [d.ID, d.health]), [[v0.pci, 'Unhealthy']]);
  assert.equal(await removed(plugin, 1), [`the kubelet lists no container holding ${v0.pci}`]);
  assert.equal(dpFiles(ws), []);
});

test('the stand-in serves podresources v1 from the allocations it made: List, Get, GetAllocatableResources', async () => {
  const kubelet = await kubeletFor();
  run(workspace(), kubelet.dir);
  const virtio = await kubelet.waitForPlugin(RESOURCE);
  await virtio.stream.waitFor((d) => d.length === 2);
  await virtio.client.allocate([[v0.pci], [v1.pci]], { namespace: 'ns', name: 'web' });
  const client = new PodResourcesListerClient(`unix://${kubelet.podResourcesSocket}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const call = <T>(fn: (cb: (e: grpc.ServiceError | null, r: T) => void) => unknown) => new Promise<T>((res, rej) => fn((e, r) => (e ? rej(e) : res(r))));
  const container = (name: string, id: string) => ({ name, devices: [{ resourceName: RESOURCE, deviceIds: [id], topology: undefined }], cpuIds: [], memory: [], dynamicResources: [] });
  const web = { name: 'web', namespace: 'ns', containers: [container('c0', v0.pci), container('c1', v1.pci)] };
  assert.equal((await call<{ podResources: unknown[] }>((cb) => client.list({}, cb))).podResources, [web]);
  assert.equal((await call<{ podResources: unknown }>((cb) => client.get({ podName: 'web', podNamespace: 'ns' }, cb))).podResources, web);
  const missing = await call((cb) => client.get({ podName: 'nope', podNamespace: 'ns' }, cb)).catch((e: grpc.ServiceError) => e.details);
  assert.is(missing, 'pod nope in namespace ns not found');
  const allocatable = await call<{ devices: { resourceName: string; deviceIds: string[] }[] }>((cb) => client.getAllocatableResources({}, cb));
  assert.equal(allocatable.devices.filter((d) => d.resourceName === RESOURCE).flatMap((d) => d.deviceIds).sort(), [v0.pci, v1.pci].sort());
  assert.ok(kubelet.deletePod('ns', 'web'));
  assert.equal((await call<{ podResources: unknown[] }>((cb) => client.list({}, cb))).podResources, []);
});

test('no pod resources API: said once, naming the socket and the files; every file counts then, and only a gone device loses its file', async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  kubelet.stopPodResources();
  const plugin = run(ws, kubelet.dir, { args: ['--log-level', 'debug'] });
  const virtio = await kubelet.waitForPlugin(RESOURCE);
  const vhost = await kubelet.waitForPlugin(VHOST);
  await virtio.stream.waitFor((d) => d.length === 2);
  await virtio.client.allocate([[v0.pci]]);
  await vhost.client.allocate([[v2.pci]]);
  kubelet.deletePod('default', 'pod-1');
  ageFiles(ws, 60_000);
  hideNetdev(v0.pci);
  await ticks(plugin, 2);
  const warned = plugin.logs.filter((l) => l.msg === 'cannot ask the kubelet which devices pods hold; every DeviceInfo file counts as a device in use');
  assert.is(warned.length, 1, 'said once, not on every tick');
  assert.is(warned[0]!.socket, kubelet.podResourcesSocket);
  assert.match(String(warned[0]!.error), 'no such socket');
  // The file is all there is to go by: v0 stays Healthy with its netdev away, and its file stays.
  assert.equal((virtio.stream.latest ?? []).map((d) => [d.ID, d.health]), [[v0.pci, 'Healthy'], [v1.pci, 'Healthy']]);
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v0.pci), fileOf(VHOST, v2.pci)]);
  // A device that no longer exists describes nothing: its file goes.
  fx.removeVdpa(v2.vdpa[0]!);
  cleanups.push(() => fx.addVdpa(v2.pci, 'vhost', v2.vdpa[0]));
  assert.equal(await removed(plugin, 1), [`vDPA device ${v2.vdpa[0]} is gone`]);
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v0.pci)]);

  // The kubelet answers again, and pod-1 is gone from it: v0's file goes, v0 turns Unhealthy.
  await kubelet.servePodResources(3_600_000);
  await plugin.waitForLog((l) => l.msg === 'asking the kubelet which devices pods hold', 7_000);
  assert.equal(await removed(plugin, 2), [`vDPA device ${v2.vdpa[0]} is gone`, `the kubelet lists no container holding ${v0.pci}`]);
  const after = await virtio.stream.waitFor((d) => d.some((x) => x.health === 'Unhealthy'), 7_000);
  assert.equal(after.map((d) => [d.ID, d.health]), [[v0.pci, 'Unhealthy'], [v1.pci, 'Healthy']]);
});

test('a kubelet that has just started is not believed about free devices; a device handed out a moment ago keeps its file', async () => {
  const ws = workspace();
  const kubelet = await kubeletFor();
  const plugin = run(ws, kubelet.dir, { args: ['--log-level', 'debug'] });
  const virtio = await kubelet.waitForPlugin(RESOURCE);
  await virtio.stream.waitFor((d) => d.length === 2);
  await virtio.client.allocate([[v0.pci]]);
  ageFiles(ws, 60_000);
  // The kubelet restarts and, not having heard from its sources yet, lists no pod.
  await kubelet.restart();
  kubelet.deletePod('default', 'pod-1');
  await kubelet.waitForPlugin(RESOURCE, 2);
  // An Allocate the kubelet has not booked (it books only after Allocate returns).
  const raw = new PluginClient(join(kubelet.dir, 'example.com_vdpa.sock'));
  cleanups.push(() => raw.close());
  await raw.allocate([[v1.pci]]);
  await ticks(plugin, 2);
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v0.pci), fileOf(RESOURCE, v1.pci)]);
  assert.equal(removals(plugin), []);
  // Up long enough to know its pods: v0's file goes; v1's, written moments ago, stays.
  back(kubelet.podResourcesSocket, 3_600_000);
  assert.equal(await removed(plugin, 1), [`the kubelet lists no container holding ${v0.pci}`]);
  assert.equal(dpFiles(ws), [fileOf(RESOURCE, v1.pci)]);
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

// The running plugin follows the node and its config: vDPA devices unbound, removed or rebound,
// VFs added, the PF link going down, config edits valid and invalid — each seen on the
// ListAndWatch stream the kubelet stand-in opened at registration. Metrics are read at the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Device } from '../../proto/gen/deviceplugin_v1beta1.js';
import { buildFixture } from '../support/fixture.js';
import type { ConnectedPlugin } from '../support/kubelet.js';
import { Scenario } from './harness.js';

const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'virtio' }, { vdpa: 'virtio' }, { vdpa: 'vhost' }], totalVfs: 8 }] });
const pf = fx.pfs[0]!;
const [v0, v1, v2, v3] = fx.vfs as [typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0]];
const VIRTIO = 'example.com/virtio';
const VHOST = 'example.com/vhost';
const FIRST = 'example.com/first';
const base = {
  resourceList: [
    { resourceName: 'virtio', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio' } },
    { resourceName: 'vhost', resourcePrefix: 'example.com', selectors: { vdpaType: 'vhost' } },
  ],
};
let sc: Scenario;
let virtio: ConnectedPlugin;
let vhost: ConnectedPlugin;

const state = (ds: readonly Device[]) => Object.fromEntries(ds.map((d) => [d.ID, d.health]));
const has = (id: string, health?: string) => (ds: readonly Device[]) => ds.some((d) => d.ID === id && (!health || d.health === health));

test.before(async () => {
  sc = await Scenario.start({ fixture: fx, config: base, metrics: true });
  virtio = await sc.kubelet.waitForPlugin(VIRTIO);
  vhost = await sc.kubelet.waitForPlugin(VHOST);
  await virtio.stream.waitFor((ds) => ds.length === 3);
});

test.after(() => sc?.stop());

test('unbinding a vDPA device turns it Unhealthy on the open stream; binding it again heals it', async () => {
  const updates = virtio.stream.updates.length;
  fx.unbindVdpa(v0.vdpa[0]!);
  const ds = await virtio.stream.waitFor(has(v0.pci, 'Unhealthy'), 5_000);
  assert.equal(state(ds), { [v0.pci]: 'Unhealthy', [v1.pci]: 'Healthy', [v2.pci]: 'Healthy' });
  // The whole list is re-sent, on the stream that was already open.
  assert.is(virtio.stream.updates.length, updates + 1);
  assert.ok(!virtio.stream.ended);
  const line = await sc.plugin.waitForLog((l) => l.msg === 'pool changed' && JSON.stringify(l.changes).includes(`${v0.pci} Healthy → Unhealthy`));
  assert.match(JSON.stringify(line.changes), 'is not bound to a driver');
  fx.bindVdpa(v0.vdpa[0]!, 'virtio');
  assert.equal(state(await virtio.stream.waitFor(has(v0.pci, 'Healthy'), 5_000)), { [v0.pci]: 'Healthy', [v1.pci]: 'Healthy', [v2.pci]: 'Healthy' });
});

test('removing a vDPA device (vdpa dev del) turns its VF Unhealthy; a new vDPA device heals it', async () => {
  fx.removeVdpa(v1.vdpa[0]!);
  await virtio.stream.waitFor(has(v1.pci, 'Unhealthy'), 5_000);
  const name = fx.addVdpa(v1.pci, 'virtio');
  await virtio.stream.waitFor(has(v1.pci, 'Healthy'), 5_000);
  const resp = await virtio.client.allocate([[v1.pci]]);
  assert.match(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VIRTIO_INFO!, `"parent-device":"${name}"`);
});

test('rebinding virtio → vhost moves the VF from the virtio pool to the vhost pool', async () => {
  fx.bindVdpa(v2.vdpa[0]!, 'vhost');
  await virtio.stream.waitFor((ds) => !has(v2.pci)(ds), 5_000);
  assert.equal(state(await vhost.stream.waitFor(has(v2.pci, 'Healthy'), 5_000)), { [v2.pci]: 'Healthy', [v3.pci]: 'Healthy' });
  fx.bindVdpa(v2.vdpa[0]!, 'virtio');
  await virtio.stream.waitFor(has(v2.pci, 'Healthy'), 5_000);
  await vhost.stream.waitFor((ds) => ds.length === 1, 5_000);
});

test('VFs created later (provisioning) join their pool without a restart', async () => {
  const added = fx.addVfs(pf.pci, 2, { vdpa: 'virtio' });
  const ds = await virtio.stream.waitFor((d) => d.length === 5, 5_000);
  assert.equal(ds.map((d) => d.ID), [v0.pci, v1.pci, v2.pci, ...added.map((v) => v.pci)]);
  assert.ok(ds.every((d) => d.health === 'Healthy'));
  const resp = await virtio.client.allocate([[added[1]!.pci]]);
  assert.is(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VIRTIO, added[1]!.pci);
});

test("the PF's uplink going down turns every device on it Unhealthy; back up, Healthy", async () => {
  fx.setOperState(pf.uplink, 'down');
  const ds = await virtio.stream.waitFor((d) => d.every((x) => x.health === 'Unhealthy'), 6_000);
  assert.is(ds.length, 5);
  await vhost.stream.waitFor((d) => d.every((x) => x.health === 'Unhealthy'), 6_000);
  await sc.plugin.waitForLog((l) => l.msg === 'pool changed' && JSON.stringify(l.changes).includes(`PF uplink ${pf.uplink} is down`));
  fx.setOperState(pf.uplink, 'up');
  await virtio.stream.waitFor((d) => d.every((x) => x.health === 'Healthy'), 6_000);
});

test('config reload: a new pool is served and registered, and claims its devices from the old one', async () => {
  sc.ws.writeConfig({
    resourceList: [
      { resourceName: 'first', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio', pciAddresses: [v0.pci] } },
      ...base.resourceList,
    ],
  });
  const first = await sc.kubelet.waitForPlugin(FIRST, 1, 5_000);
  assert.equal(state(await first.stream.waitFor((d) => d.length === 1)), { [v0.pci]: 'Healthy' });
  await virtio.stream.waitFor((d) => !has(v0.pci)(d) && d.length === 4, 5_000);
  await sc.plugin.waitForLog((l) => l.msg === 'config reloaded');
  assert.ok(sc.kubelet.pluginSockets().includes('example.com_first.sock'));
});

test('config reload: an invalid edit is logged with the field and the running pools stay', async () => {
  const updates = virtio.stream.updates.length;
  const reloads = sc.plugin.logs.filter((l) => l.msg === 'config reloaded').length;
  sc.ws.writeConfig({ resourceList: [{ resourceName: 'virtio', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio-net' } }] });
  const err = await sc.plugin.waitForLog((l) => l.msg === 'config edit rejected; keeping the running config');
  assert.is(err.level, 'error');
  assert.is(err.error, 'resourceList[0].selectors.vdpaType: must be "virtio" or "vhost"');
  sc.ws.writeConfig('{"resourceList": [');
  await sc.plugin.waitForLog((l) => l.msg === 'config edit rejected; keeping the running config' && String(l.error).startsWith('config: not valid JSON'));
  // Everything still served as before; a device can still be allocated from the running pools.
  assert.equal(sc.kubelet.pluginSockets().sort(), ['example.com_first.sock', 'example.com_vhost.sock', 'example.com_virtio.sock']);
  const first = sc.kubelet.plugin(FIRST)!;
  assert.is((await first.client.allocate([[v0.pci]])).containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_FIRST, v0.pci);
  assert.is(virtio.stream.updates.length, updates);
  assert.is(sc.plugin.logs.filter((l) => l.msg === 'config reloaded').length, reloads);
});

test('config reload: a removed pool stops serving and its socket goes; its devices return to the pool that matches', async () => {
  const first = sc.kubelet.plugin(FIRST)!;
  sc.ws.writeConfig(base);
  await virtio.stream.waitFor((d) => has(v0.pci, 'Healthy')(d) && d.length === 5, 5_000);
  await first.stream.waitForEnd(5_000);
  assert.equal(sc.kubelet.pluginSockets().sort(), ['example.com_vhost.sock', 'example.com_virtio.sock']);
});

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

test('metrics: devices per resource and health, allocations, Allocate latency, registrations, discovery, reloads', async () => {
  const url = await sc.plugin.metricsUrl();
  const res = await fetch(url);
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', 'text/plain');
  const text = await res.text();
  const P = 'vdpa_device_plugin_';
  assert.is(metricValue(text, `${P}devices`, { resource: VIRTIO, health: 'Healthy' }), 5);
  assert.is(metricValue(text, `${P}devices`, { resource: VIRTIO, health: 'Unhealthy' }), 0);
  assert.is(metricValue(text, `${P}devices`, { resource: VHOST, health: 'Healthy' }), 1);
  assert.is(metricValue(text, `${P}devices`, { resource: FIRST }), undefined, 'a removed pool is no longer reported');
  assert.is(metricValue(text, `${P}allocations_total`, { resource: VIRTIO, result: 'ok' }), 2);
  assert.is(metricValue(text, `${P}allocated_devices_total`, { resource: FIRST }), 1);
  assert.is(metricValue(text, `${P}allocated_devices`, { resource: VIRTIO }), 3, 'held now: its two allocations and the one FIRST made before its devices came back');
  assert.is(metricValue(text, `${P}allocate_duration_seconds_count`, { resource: VIRTIO }), 2);
  assert.ok((metricValue(text, `${P}allocate_duration_seconds_bucket`, { resource: VIRTIO, le: '+Inf' }) ?? 0) >= 2);
  assert.is(metricValue(text, `${P}registrations_total`, { resource: VIRTIO, mode: 'kubelet', result: 'ok' }), 1);
  assert.ok((metricValue(text, `${P}discovery_duration_seconds_count`) ?? 0) >= 5);
  assert.is(metricValue(text, `${P}discovery_errors_total`), 0);
  assert.is(metricValue(text, `${P}config_reloads_total`, { result: 'ok' }), 2);
  assert.is(metricValue(text, `${P}config_reloads_total`, { result: 'invalid' }), 2);
  assert.ok((metricValue(text, `${P}process_resident_memory_bytes`) ?? 0) > 0);
  assert.is((await fetch(url.replace('/metrics', '/nope'))).status, 404);
});

test.run();

// The binary refuses what it cannot run with: each kind of bad config exits 1 with a JSON log line
// naming the field, bad flags exit 2; nothing is served or registered in either case. A config
// the SR-IOV network operator wrote for the incumbent loads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture } from '../support/fixture.js';
import { KubeletStandIn } from '../support/kubelet.js';
import { PluginProcess, Workspace } from './harness.js';
import { operatorNodeConfig } from './operator-config.js';

const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }] }] });
const kubeletDir = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-startup-'));
const good = (over: Record<string, unknown> = {}, selector: Record<string, unknown> = {}) => ({
  resourceName: 'vdpa',
  resourcePrefix: 'example.com',
  selectors: { vdpaType: 'virtio', ...selector },
  ...over,
});

test.after(() => {
  rmSync(kubeletDir, { recursive: true, force: true });
  fx.cleanup();
});

async function refusedConfig(config: unknown): Promise<string> {
  const ws = new Workspace();
  try {
    ws.writeConfig(config);
    const plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir });
    const exit = await plugin.exit;
    assert.equal(exit, { code: 1, signal: null }, plugin.stderr);
    const errors = plugin.logs.filter((l) => l.level === 'error');
    assert.is(errors.length, 1, plugin.stderr);
    assert.is(errors[0]!.config, ws.configPath);
    assert.equal(readdirSync(kubeletDir), [], 'nothing served');
    return errors[0]!.msg;
  } finally {
    ws.cleanup();
  }
}

const cases: [string, unknown, string][] = [
  ['a bad vdpaType', { resourceList: [good(), good({ resourceName: 'b', selectors: [{ vdpaType: 'vdpa' }] })] }, 'resourceList[1].selectors[0].vdpaType: must be "virtio" or "vhost"'],
  ['an unknown pool key', { resourceList: [good({ resourceNmae: 'x' })] }, 'resourceList[0].resourceNmae: unknown key; did you mean "resourceName"?'],
  ['an unknown selector key', { resourceList: [good({}, { vendor: ['15b3'] })] }, 'resourceList[0].selectors.vendor: unknown key; did you mean "vendors"?'],
  ['an unknown top-level key', { resourceList: [good()], version: 2 }, 'config.version: unknown key'],
  ['a bad resource name', { resourceList: [good({ resourceName: 'vdpa pool' })] }, 'resourceList[0].resourceName: "vdpa pool" must be 1-63 letters'],
  ['a bad resource prefix', { resourceList: [good({ resourcePrefix: 'Example_Com' })] }, 'resourceList[0].resourcePrefix: "Example_Com" is not a DNS subdomain'],
  ['a duplicate prefix/name', { resourceList: [good(), good({}, { vdpaType: 'vhost' })] }, 'resourceList[1].resourceName: "example.com/vdpa" is already defined by resourceList[0]'],
  ['a bad pfNames range', { resourceList: [good({}, { pfNames: ['ens1f0#7-3'] })] }, 'resourceList[0].selectors.pfNames[0]: bad VF range "7-3" in "ens1f0#7-3": start 7 is greater than end 3'],
  ['a bad rootDevices entry', { resourceList: [good({}, { rootDevices: ['0000:65:00.0#a'] })] }, 'resourceList[0].selectors.rootDevices[0]: bad VF range "a"'],
  ['a wrong type', { resourceList: [good({ excludeTopology: 'no' })] }, 'resourceList[0].excludeTopology: must be true or false, got "no"'],
  ['an empty resourceList', { resourceList: [] }, 'resourceList: must hold at least one pool'],
  ['broken JSON', '{"resourceList": [ {"resourceName": "vdpa", }', 'config: not valid JSON'],
];

for (const [what, config, message] of cases) {
  test(`${what}: exit 1, and the log names the field`, async () => {
    const msg = await refusedConfig(config);
    assert.ok(msg.startsWith(`invalid config: ${message}`), `got: ${msg}`);
  });
}

test('a missing config file: exit 1 naming the file', async () => {
  const ws = new Workspace();
  const plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir });
  assert.equal(await plugin.exit, { code: 1, signal: null });
  assert.match(plugin.logs[0]!.msg, `invalid config: ${ws.configPath}: cannot read the config file`);
  ws.cleanup();
});

test('bad flags: exit 2 with the reason on stderr; --help exits 0 listing every flag', async () => {
  for (const [args, reason] of [
    [['--registration', 'sometimes'], '--registration: must be auto, kubelet or watcher, got "sometimes"'],
    [['--metrics-addr', 'nowhere'], '--metrics-addr: "nowhere" is not HOST:PORT'],
    [['--log-level', 'loud'], '--log-level: must be one of debug, info, warn, error'],
    [['--frobnicate'], 'unknown flag --frobnicate'],
  ] as const) {
    const p = PluginProcess.run(args);
    assert.equal(await p.exit, { code: 2, signal: null }, args.join(' '));
    assert.match(p.stderr, `vdpa-device-plugin: ${reason}`);
  }
  const help = PluginProcess.run(['--help']);
  assert.equal(await help.exit, { code: 0, signal: null });
  assert.is(help.stderr, '');
});

test('a metrics address already in use: exit 1 after removing the sockets it served', async () => {
  const ws = new Workspace();
  ws.writeConfig({ resourceList: [good()] });
  const first = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir, metrics: true });
  const url = new URL(await first.metricsUrl());
  const otherDir = mkdtempSync(join(tmpdir(), 'vdpa-kubelet-startup2-'));
  const second = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir: otherDir, args: ['--metrics-addr', url.host] });
  assert.equal(await second.exit, { code: 1, signal: null });
  assert.ok(second.logs.some((l) => l.level === 'error' && l.msg.startsWith(`cannot serve metrics on ${url.host}`)), second.stderr);
  assert.equal(readdirSync(otherDir), []);
  await first.stop();
  rmSync(otherDir, { recursive: true, force: true });
  ws.cleanup();
});

test("the operator's ConfigMap: its vDPA pools are served under --resource-prefix, each other pool skipped with one warning; envs as the incumbent names them", async () => {
  const node = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'virtio' }, { vdpa: 'vhost' }, { vdpa: 'vhost' }] }] });
  const [v0, v1, v2, v3] = node.vfs.map((v) => v.pci);
  const ws = new Workspace();
  ws.writeConfig(operatorNodeConfig('worker-0'));
  const kubelet = await KubeletStandIn.start();
  const plugin = PluginProcess.start({ ws, sysfsRoot: node.sysfsRoot, devRoot: node.devRoot, kubeletDir: kubelet.dir, args: ['--resource-prefix', 'openshift.io'] });
  try {
    const virtio = await kubelet.waitForPlugin('openshift.io/vdpa_virtio');
    const vhost = await kubelet.waitForPlugin('openshift.io/vdpa_vhost');
    assert.equal((await virtio.stream.waitFor((d) => d.length === 2)).map((d) => [d.ID, d.health, d.topology?.nodes[0]?.ID]), [[v0, 'Healthy', 0], [v1, 'Healthy', 0]]);
    // excludeTopology: true
    assert.equal((await vhost.stream.waitFor((d) => d.length === 2)).map((d) => [d.ID, d.topology]), [[v2, undefined], [v3, undefined]]);
    assert.equal(kubelet.registrations.map((r) => r.resourceName).sort(), ['openshift.io/vdpa_vhost', 'openshift.io/vdpa_virtio']);
    const warnings = plugin.logs.filter((l) => l.level === 'warn').map((l) => l.msg);
    assert.equal(warnings, [
      'resourceList[2] (resourceName "mlx_rdma") skipped: no selector has a vdpaType: a pool of plain VFs, for sriov-network-device-plugin',
      'resourceList[3] (resourceName "intel_dpdk") skipped: no selector has a vdpaType: a pool of plain VFs, for sriov-network-device-plugin',
    ]);
    const resp = await virtio.client.allocate([[v0!]]);
    assert.equal(Object.keys(resp.containerResponses[0]!.envs).sort(), ['PCIDEVICE_OPENSHIFT_IO_VDPA_VIRTIO', 'PCIDEVICE_OPENSHIFT_IO_VDPA_VIRTIO_INFO']);
  } finally {
    await plugin.stop();
    await kubelet.stop();
    ws.cleanup();
    node.cleanup();
  }
});

test.run();

// CDI mode (--cdi): the built plugin keeps a CDI spec of its vhost VFs in --cdi-dir, Allocate names
// CDI devices instead of returning DeviceSpecs, and a real CDI consumer (podman 4.3) injects the
// /dev/vhost-vdpa-N node from the spec the plugin wrote.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildFixture } from '../support/fixture.js';
import { run } from '../support/exec.js';
import { KubeletStandIn, until } from '../support/kubelet.js';
import { PluginProcess, Workspace } from './harness.js';

const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'vhost' }, { vdpa: 'vhost' }] }] });
const [v0, v1, v2] = fx.vfs as [typeof fx.vfs[0], typeof fx.vfs[0], typeof fx.vfs[0]];
const VIRTIO = 'example.com/vdpa';
const VHOST = 'example.com/vdpa_vhost';
const KIND = 'vdpa-k8s.io/vdpa';
const SPEC_FILE = 'vdpa-k8s.io-vdpa.json';
const CONFIG = {
  resourceList: [
    { resourceName: 'vdpa', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio' } },
    { resourceName: 'vdpa_vhost', resourcePrefix: 'example.com', selectors: { vdpaType: 'vhost' } },
  ],
};
const cleanups: (() => unknown)[] = [];

test.after.each(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
test.after(() => fx.cleanup());

async function start(cdiDir: string): Promise<{ kubelet: KubeletStandIn; plugin: PluginProcess }> {
  const ws = new Workspace();
  ws.writeConfig(CONFIG);
  cleanups.push(() => ws.cleanup());
  const kubelet = await KubeletStandIn.start();
  cleanups.push(() => kubelet.stop());
  const plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir: kubelet.dir, args: ['--cdi', '--cdi-dir', cdiDir] });
  cleanups.push(() => plugin.stop('SIGKILL'));
  return { kubelet, plugin };
}

const node = (vhost: string) => ({ path: `/dev/${basename(vhost)}`, hostPath: vhost, permissions: 'rw' });
const readSpec = (dir: string): unknown => JSON.parse(readFileSync(join(dir, SPEC_FILE), 'utf8'));

test('the spec: a device per vhost VF with its char device, kept current on rescans, removed at stop; Allocate names CDI devices', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-cdi-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const { kubelet, plugin } = await start(dir);
  const vhost = await kubelet.waitForPlugin(VHOST);
  const virtio = await kubelet.waitForPlugin(VIRTIO);
  await vhost.stream.waitFor((d) => d.length === 2);
  // hostPath (the fixture's /dev) is a 0.5.0 field: the lowest version that has it.
  assert.equal(readSpec(dir), {
    cdiVersion: '0.5.0',
    kind: KIND,
    devices: [
      { name: v1.pci, containerEdits: { deviceNodes: [node(v1.vhost!)] } },
      { name: v2.pci, containerEdits: { deviceNodes: [node(v2.vhost!)] } },
    ],
  });

  const resp = await vhost.client.allocate([[v1.pci], [v2.pci]]);
  assert.equal(resp.containerResponses.map((c) => [c.cdiDevices, c.devices]), [
    [[{ name: `${KIND}=${v1.pci}` }], []],
    [[{ name: `${KIND}=${v2.pci}` }], []],
  ]);
  assert.match(resp.containerResponses[0]!.envs.PCIDEVICE_EXAMPLE_COM_VDPA_VHOST_INFO!, `"mount":"/dev/${basename(v1.vhost!)}"`);
  // A virtio VF has nothing for the runtime to inject.
  assert.equal((await virtio.client.allocate([[v0.pci]])).containerResponses[0]!.cdiDevices, []);

  // v2 goes to virtio_vdpa: it leaves the spec; back on vhost (a new vhost-vdpa-K), it is in again.
  fx.rebindVdpa(v2.vdpa[0]!);
  await until(() => ((readSpec(dir) as { devices: unknown[] }).devices.length === 1 ? true : undefined), 5_000, 'the spec without v2');
  fx.rebindVdpa(v2.vdpa[0]!);
  const again = await until(() => {
    const spec = readSpec(dir) as { devices: { name: string; containerEdits: unknown }[] };
    return spec.devices.length === 2 ? spec : undefined;
  }, 5_000, 'the spec with v2 again');
  assert.equal(again.devices[1], { name: v2.pci, containerEdits: { deviceNodes: [node(fx.vf(v2.pci).vhost!)] } });

  assert.equal((await plugin.stop()).code, 0);
  assert.not.ok(existsSync(join(dir, SPEC_FILE)), 'removed at stop');
  assert.ok(plugin.logs.some((l) => l.msg === 'wrote the CDI spec' && l.devices === 2));
});

test("podman (a real CDI consumer) injects the vhost VF's char device from the spec the plugin wrote", async () => {
  // podman 4.3 reads specs only from /etc/cdi and /var/run/cdi.
  const cdiDir = '/var/run/cdi';
  assert.not.ok(existsSync(join(cdiDir, SPEC_FILE)), `${join(cdiDir, SPEC_FILE)} exists: another vdpa-k8s plugin is running here`);
  const { kubelet, plugin } = await start(cdiDir);
  const vhost = await kubelet.waitForPlugin(VHOST);
  await vhost.stream.waitFor((d) => d.length === 2);
  const vf = fx.vf(v1.pci);
  const resp = await vhost.client.allocate([[vf.pci]]);
  const device = resp.containerResponses[0]!.cdiDevices[0]!.name;

  // An image without a registry: busybox-static in an empty root.
  const rootfs = mkdtempSync(join(tmpdir(), 'vdpa-cdi-rootfs-'));
  cleanups.push(() => rmSync(rootfs, { recursive: true, force: true }));
  mkdirSync(join(rootfs, 'bin'));
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  const image = `localhost/vdpa-cdi-test:${process.pid}`;
  const imported = await run('sh', ['-c', `tar -C ${rootfs} -c . | podman import - ${image}`], { timeoutMs: 120_000 });
  assert.is(imported.code, 0, imported.stderr);
  cleanups.push(() => run('podman', ['rmi', '-f', image]));

  const name = `/dev/${basename(vf.vhost!)}`;
  const args = ['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', '--device', device, image, '/bin/busybox', 'ls', '-l', name];
  const r = await run('podman', args, { timeoutMs: 180_000 });
  console.log(`    ${readFileSync(join(cdiDir, SPEC_FILE), 'utf8').trim().replaceAll('\n', '\n    ')}\n    $ podman ${args.join(' ')}\n    ${r.stdout.trim()}`);
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const minor = Number(/(\d+)$/.exec(vf.vhost!)![1]);
  assert.match(r.stdout, new RegExp(`^c\\S+\\s+\\d+\\s+\\S+\\s+\\S+\\s+${fx.vhostMajor},\\s+${minor}\\s.*${name}$`, 'm'));
  await plugin.stop();
  assert.not.ok(existsSync(join(cdiDir, SPEC_FILE)), 'removed at stop');
});

test.run();

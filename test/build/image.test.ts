// The image `npm run image` builds, run under podman the way the DaemonSet runs it: install-cni
// copying vdpa-cni into a host directory, `provision --dry-run` on a fixture node mounted at
// /sys, and the device plugin against a fixture node's /sys and /dev, registering with the
// kubelet stand-in over the real socket directory and answering its Allocate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildFixture } from '../support/fixture.js';
import { KubeletStandIn } from '../support/kubelet.js';
import { CNI_BIN, ROOT } from '../support/paths.js';

const TAG = `localhost/vdpa-k8s-test:${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'vdpa-image-'));
const podman = (args: string[], timeout = 120_000) => spawnSync('podman', args, { encoding: 'utf8', timeout });
// This machine's container runtime may not raise these limits past the host's: ask for what it has.
const LIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];

/**
 * A fixture's /sys and /dev as a node's are when the DaemonSet mounts them: the runtime mounts
 * cgroups at /sys/fs/cgroup and needs /dev/null and friends (the fixture has only its vDPA nodes).
 */
function asHostMounts(fx: { sysfsRoot: string; devRoot: string }): void {
  spawnSync('mkdir', ['-p', join(fx.sysfsRoot, 'fs', 'cgroup')]);
  for (const [n, minor] of [['null', 3], ['zero', 5], ['full', 7], ['random', 8], ['urandom', 9]] as const) {
    if (!existsSync(join(fx.devRoot, n))) spawnSync('mknod', ['-m', '666', join(fx.devRoot, n), 'c', '1', String(minor)]);
  }
}

test.before(() => {
  const r = spawnSync(process.execPath, [join(ROOT, 'build', 'image.mjs'), '--tag', TAG], { encoding: 'utf8', timeout: 600_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`image ${TAG}: [\\d.]+ MB`));
});

test('FROM scratch: the executables, the provisioning tools and their libraries, nothing else', () => {
  const r = podman(['run', '--rm', ...LIMITS, '--entrypoint', '/usr/sbin/devlink', TAG, '-V']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /devlink utility/);
  const sh = podman(['run', '--rm', ...LIMITS, '--entrypoint', '/bin/sh', TAG, '-c', 'true']);
  assert.is.not(sh.status, 0, 'no shell in the image');
});

test('install-cni copies vdpa-cni into the mounted host directory', () => {
  const bin = join(dir, 'opt-cni-bin');
  spawnSync('mkdir', ['-p', bin]);
  const r = podman(['run', '--rm', ...LIMITS, '--read-only', '--cap-drop=ALL', '-v', `${bin}:/host/opt/cni/bin`, TAG, 'install-cni', '--bin-dir', '/host/opt/cni/bin']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(readFileSync(join(bin, 'vdpa-cni')).equals(readFileSync(CNI_BIN)), 'the image carries the built CNI');
});

test('provision --dry-run on a fixture node mounted at /sys prints the plan and changes nothing', () => {
  const fx = buildFixture({ pfs: [], plainFunction: { vdpa: 'none' } });
  asHostMounts(fx);
  try {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ mgmtDevs: [{ mgmtDev: 'pci/0000:00:05.0', vdpaType: 'vhost' }] }));
    const r = podman(['run', '--rm', ...LIMITS, '--network=host', '-v', `${fx.sysfsRoot}:/sys`, '-v', `${fx.devRoot}:/dev`, '-v', `${policy}:/policy.json:ro`, TAG, 'provision', '--policy', '/policy.json', '--state', '/tmp/state.json', '--dry-run']);
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, 'create vDPA device vdpa:0000:00:05.0 on pci/0000:00:05.0, bound to vhost_vdpa');
  } finally {
    fx.cleanup();
  }
});

test('the device plugin in the container registers with the kubelet over the socket directory and allocates', async () => {
  const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'vhost' }] }] });
  asHostMounts(fx);
  const kubelet = await KubeletStandIn.start();
  const devinfo = join(dir, 'devinfo');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ resourceList: [{ resourceName: 'vdpa_vhost', resourcePrefix: 'vdpa-k8s.io', selectors: { vdpaType: 'vhost' } }] }));
  const name = `vdpa-dp-${process.pid}`;
  const container = spawn('podman', [
    'run', '--rm', ...LIMITS, '--name', name, '--network=host', '--read-only', '--cap-drop=ALL', '--security-opt=no-new-privileges',
    '-v', `${kubelet.dir}:/var/lib/kubelet/device-plugins`,
    '-v', `${join(kubelet.dir, '..', 'pod-resources')}:/var/lib/kubelet/pod-resources`,
    '-v', `${devinfo}:/var/run/k8s.cni.cncf.io/devinfo`,
    '-v', `${fx.sysfsRoot}:/sys:ro`, '-v', `${fx.devRoot}:/dev`, '-v', `${config}:/etc/vdpa-k8s/config.json:ro`,
    TAG, '--config=/etc/vdpa-k8s/config.json', '--registration=kubelet', '--metrics-addr=',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  container.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  spawnSync('mkdir', ['-p', devinfo]);
  try {
    const plugin = await kubelet.waitForPlugin('vdpa-k8s.io/vdpa_vhost', 1, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${log}`);
    });
    await plugin.stream.waitFor((ds) => ds.length === 1);
    const resp = await plugin.client.allocate([[fx.vfs[1]!.pci]]);
    const c = resp.containerResponses[0]!;
    assert.equal(c.devices.map((d) => d.hostPath), [join('/dev', basename(fx.vfs[1]!.vhost!))], 'the DeviceSpec names the node as the container sees /dev');
    assert.ok(existsSync(join(devinfo, 'dp', `vdpa-k8s.io-vdpa_vhost-${fx.vfs[1]!.pci}-device.json`)), 'DeviceInfo written through the mount');
  } finally {
    podman(['rm', '-f', name]);
    await kubelet.stop();
    fx.cleanup();
  }
});

test.after(() => {
  podman(['rmi', '-f', TAG]);
  rmSync(dir, { recursive: true, force: true });
});
test.run();

// Provisioning's "held by a pod": the kubelet's pod resources API (the stand-in serving its book)
// says which devices containers hold; the DeviceInfo files count only when it cannot say, and a
// warning then names the socket and the files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { heldByPods } from '../../deviceplugin/inuse.js';
import { gatherFacts } from '../../deviceplugin/provision/facts.js';
import { PlanError, planProvision } from '../../deviceplugin/provision/plan.js';
import { dpDeviceInfoPath } from '../../host/deviceinfo.js';
import { KubeletStandIn } from '../support/kubelet.js';
import { Bench, FOUR_VFS, VFS } from './harness.js';
import { FakeKernel } from './kernel.js';

const VF0 = '0000:65:00.2';
const VF1 = '0000:65:00.3';
const cleanups: (() => unknown)[] = [];

test.after.each(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function devinfo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-held-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A DeviceInfo file as the device plugin writes it at Allocate, dated `ageMs` back. */
function dpFile(dir: string, pci: string, ageMs: number, type: 'vdpa' | 'pci' = 'vdpa'): string {
  const file = dpDeviceInfoPath(dir, 'example.com/vdpa', pci);
  mkdirSync(dirname(file), { recursive: true });
  const doc = type === 'vdpa' ? { 'parent-device': `vdpa:${pci}`, driver: 'virtio', path: '/sys/bus/virtio/devices/virtio0', 'pci-address': pci } : { 'pci-address': pci };
  writeFileSync(file, JSON.stringify({ type, version: '1.1.0', [type]: doc }));
  const then = new Date(Date.now() - ageMs);
  utimesSync(file, then, then);
  return file;
}

async function kubelet(): Promise<KubeletStandIn> {
  const k = await KubeletStandIn.start();
  cleanups.push(() => k.stop());
  return k;
}

test('the kubelet says: its containers hold a device, whatever the files say; a stale file alone holds nothing', async () => {
  const k = await kubelet();
  k.book('example.com/vdpa', [[VF0]], { namespace: 'ns', name: 'web' });
  const dir = devinfo();
  dpFile(dir, VF1, 3_600_000);
  const warnings: string[] = [];
  assert.equal([...(await heldByPods(k.podResourcesSocket, dir, warnings))], [[VF0, 'pod ns/web, container c0, example.com/vdpa']]);
  assert.equal(warnings, []);
});

test('a file written a moment ago counts: the kubelet books a device only after Allocate returns', async () => {
  const k = await kubelet();
  const dir = devinfo();
  const file = dpFile(dir, VF1, 1_000);
  assert.equal([...(await heldByPods(k.podResourcesSocket, dir, []))], [[VF1, file]]);
});

test('no kubelet to ask: it says so, naming the socket, and goes by the files (another plugin\'s pci documents too)', async () => {
  const dir = devinfo();
  const a = dpFile(dir, VF0, 3_600_000);
  const b = dpFile(dir, VF1, 3_600_000, 'pci');
  const socket = join(dir, 'pod-resources', 'kubelet.sock');
  const warnings: string[] = [];
  const held = await heldByPods(socket, dir, warnings);
  assert.equal([...held].sort(), [[VF0, a], [VF1, b]].sort());
  assert.equal(warnings, [
    `cannot ask the kubelet which devices pods hold (${socket}: no such socket (is the kubelet's pod-resources directory mounted?)); going by the DeviceInfo files: ${[a, b].sort().join(', ')}`,
  ]);
});

test('a kubelet that has just started may not know its pods: the files count too, and a warning says why', async () => {
  const k = await kubelet();
  await k.servePodResources(0);
  const dir = devinfo();
  const file = dpFile(dir, VF0, 3_600_000);
  const warnings: string[] = [];
  assert.equal([...(await heldByPods(k.podResourcesSocket, dir, warnings))], [[VF0, file]]);
  assert.match(warnings[0]!, /^the kubelet has served pod resources for \d+ s and may not know all its pods yet; the DeviceInfo files count too: /);
});

test('a plan that would take a VF from a pod is refused naming the pod; once the pod is gone, the stale file does not stop it', async () => {
  const b = new Bench(
    new FakeKernel({ pfs: [{ vfs: [{ vdpa: 'virtio', vdpaName: `vdpa:${VFS[0]}` }, { vdpa: 'none' }] }] }, { modules: ['vdpa', 'virtio_vdpa', 'vhost_vdpa', 'virtio_net', 'mlx5_vdpa'], hwTc: { enp101s0f0np0: true } }),
  );
  cleanups.push(() => b.cleanup());
  const k = await kubelet();
  k.book('example.com/vdpa', [[VFS[0]]], { namespace: 'ns', name: 'web' });
  dpFile(b.devinfoDir, VFS[0], 3_600_000);
  const problems = async (): Promise<string[]> => {
    const facts = await gatherFacts(b.k, { ...b.session().gather, podResourcesSocket: k.podResourcesSocket }, FOUR_VFS, []);
    try {
      planProvision(FOUR_VFS, facts);
      return [];
    } catch (err) {
      if (err instanceof PlanError) return [...err.problems];
      throw err;
    }
  };
  assert.equal(await problems(), [`pfs[0]: in use by a pool with allocated devices: ${VFS[0]} (pod ns/web, container c0, example.com/vdpa); changing numVfs from 2 to 4 would take them away from their pods`]);
  // The pod is gone; its file is an hour old: nothing holds the VF (what is left is the device this policy did not create).
  k.deletePod('ns', 'web');
  const left = await problems();
  assert.ok(left.length > 0 && !left.some((p) => p.includes('in use')), left.join('\n'));
});

test.run();

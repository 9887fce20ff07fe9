// Every DEL case without OVS: netns gone (as the kernel returns a physical netdev), state missing,
// repeated DEL, half-done ADD (kill -9 at each step), and a pod-side eth0 next to the host's eth0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, hostLocal, hostView, link, links, sh, startCni } from '../support/cni.js';

const b = bed('d', { count: 4, legacy: true });
const hostPid = String(process.pid);

const conf = (pci: string) => ({
  cniVersion: '1.0.0',
  name: 'deltest',
  type: 'vdpa-cni',
  bridge: '',
  deviceID: pci,
  ipam: hostLocal(b, '10.79.0.0/24'),
});
const leases = () => {
  const dir = join(b.dir, 'ipam', 'deltest');
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d/.test(f)) : [];
};
const stateFiles = () => (existsSync(join(b.stateDir, 'attachments')) ? readdirSync(join(b.stateDir, 'attachments')) : []);

function assertHome(netdev: string): void {
  const l = link(null, netdev);
  assert.ok(l, `${netdev} back in the host under its original name`);
  assert.is(l!.alias, '', 'mark cleared');
  assert.equal(stateFiles(), [], 'no state left');
  assert.equal(leases(), [], 'IPAM lease released');
}

/**
 * A veth end inside a netns is destroyed when the netns goes, but a real virtio netdev is handed
 * back to the host under its pod-side name (as dev<N> when that name is taken). Do what the kernel
 * does for the real device: move it to the host under that name, keeping its alias, then delete
 * the netns.
 */
function killNetnsLikeTheKernel(netns: string, podName: string): string {
  const taken = link(null, podName) !== undefined;
  const hostName = taken ? `dev${Math.floor(Math.random() * 9000) + 1000}` : podName;
  sh('ip', ['-n', netns, 'link', 'set', 'dev', podName, 'netns', `/proc/${hostPid}/ns/net`, ...(taken ? ['name', hostName] : [])]);
  sh('ip', ['netns', 'del', netns]);
  return hostName;
}

for (const podName of ['net1', 'eth0']) {
  test(`netns gone (pod-side ${podName}): DEL finds the netdev in the host by its mark`, async () => {
    const vf = b.vfs[0]!;
    const pod = b.netns(`g${podName}`);
    const hostEth0 = link(null, 'eth0');
    const add = await cni(b, 'ADD', conf(vf.pci), { containerId: 'gone', netns: pod, ifname: podName });
    assert.is(add.code, 0, add.stderr);
    const returnedAs = killNetnsLikeTheKernel(pod, podName);
    assert.ok(link(null, returnedAs), 'kernel-style return');
    const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'gone', netns: pod, ifname: podName });
    assert.is(del.code, 0, del.stdout + del.stderr);
    assertHome(vf.netdev);
    assert.not.ok(link(null, returnedAs) && returnedAs !== 'eth0', 'pod-side name gone from the host');
    assert.equal(link(null, 'eth0'), hostEth0, "the host's own eth0 untouched");
  });
}

test('state missing: DEL finds the netdev by its mark and still releases IPAM', async () => {
  const vf = b.vfs[1]!;
  const pod = b.netns('nostate');
  assert.is((await cni(b, 'ADD', conf(vf.pci), { containerId: 'nostate', netns: pod })).code, 0);
  rmSync(join(b.stateDir, 'attachments'), { recursive: true });
  const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'nostate', netns: pod });
  assert.is(del.code, 0, del.stderr);
  assertHome(vf.netdev);
});

test('repeated DEL, DEL without netns, DEL of something never added: all succeed and change nothing', async () => {
  const vf = b.vfs[1]!;
  const pod = b.netns('rep');
  assert.is((await cni(b, 'ADD', conf(vf.pci), { containerId: 'rep', netns: pod })).code, 0);
  for (let i = 0; i < 3; i++) {
    const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'rep', netns: pod });
    assert.is(del.code, 0, del.stderr);
    assertHome(vf.netdev);
  }
  const before = hostView(b, []);
  const never = await cni(b, 'DEL', conf(vf.pci), { containerId: 'never', netns: '' });
  assert.is(never.code, 0, never.stderr);
  assert.is(hostView(b, []), before);
});

test('a second pod-side eth0 coming home while the original name is taken: temporary name, logged', async () => {
  const vf = b.vfs[2]!;
  const pod = b.netns('taken');
  assert.is((await cni(b, 'ADD', conf(vf.pci), { containerId: 'taken', netns: pod, ifname: 'eth0' })).code, 0);
  // Something else took the VF's old name in the host meanwhile.
  sh('ip', ['link', 'add', vf.netdev, 'type', 'veth', 'peer', 'name', `${vf.netdev}x`]);
  const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'taken', netns: pod, ifname: 'eth0' });
  sh('ip', ['link', 'del', `${vf.netdev}x`]);
  const tmp = links(null).find((l) => l.name.startsWith('vdpatmp'));
  if (tmp) sh('ip', ['link', 'set', 'dev', tmp.name, 'name', vf.netdev]);
  assert.is(del.code, 0, del.stderr);
  assert.match(del.stderr, /original netdev name is taken in the host/);
  assert.ok(tmp, 'returned under a vdpatmp name');
  assert.equal(links(pod).map((l) => l.name), ['lo']);
  assert.ok(link(null, 'eth0'), "host's eth0 still there");
});

test('GC returns an orphaned netdev (state lost, netns gone, DEL never came)', async () => {
  const vf = b.vfs[2]!;
  const pod = b.netns('orphan');
  const c = { ...conf(vf.pci), cniVersion: '1.1.0', ipam: undefined };
  assert.is((await cni(b, 'ADD', c, { containerId: 'orphan', netns: pod })).code, 0);
  rmSync(join(b.stateDir, 'attachments'), { recursive: true });
  killNetnsLikeTheKernel(pod, 'net1');
  const keep = await cni(b, 'GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: 'orphan', ifname: 'net1' }] }, { containerId: '' });
  assert.is(keep.code, 0, keep.stderr);
  assert.ok(link(null, 'net1'), 'a valid attachment is left alone');
  const gc = await cni(b, 'GC', { ...c, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stderr);
  assert.ok(link(null, vf.netdev), 'netdev home under its original name');
  assert.is(link(null, 'net1'), undefined);
});

for (const point of ['before:ipam', 'after:ipam', 'before:netdev', 'after:netdev']) {
  test(`kill -9 at ${point}, then DEL: nothing leaked`, async () => {
    const vf = b.vfs[3]!;
    const pod = b.netns(`k${point.replace(':', '')}`.slice(0, 12));
    const { child, paused } = startCni(b, 'ADD', conf(vf.pci), {
      containerId: 'killed',
      netns: pod,
      env: { VDPA_CNI_TEST_PAUSE: point },
    });
    await paused;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    assert.equal(stateFiles().length, 1, 'state was written before the host changed');
    const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'killed', netns: pod });
    assert.is(del.code, 0, del.stderr);
    assertHome(vf.netdev);
    assert.equal(links(pod).map((l) => l.name), ['lo']);
  });
}

test.after(() => b.cleanup());
test.run();

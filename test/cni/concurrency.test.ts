// 32 parallel ADDs and DELs on distinct VFs, and pod A's DEL racing pod B's ADD on the same,
// re-allocated VF: no leaked VF, no stale port, no cross-talk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, link, links, sh } from '../support/cni.js';
import { ensureOvn, OvnRun, ovsInterface, ovsPort } from '../support/ovn.js';

await ensureOvn();
const ovn = new OvnRun();
const N = 32;
const b = bed('p', { count: N });
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
let seq = 0;

interface Pod {
  name: string;
  netns: string;
  mac: string;
}

async function newPod(tag: string): Promise<Pod> {
  const n = ++seq;
  const pod = { name: `${tag}${n}`, netns: b.netns(`${tag}${n}`), mac: `0a:01:00:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}` };
  await ovn.addLogicalPort(ls, `${ns}_${pod.name}`, pod.mac, []);
  return pod;
}

const conf = (vf: number, pod: Pod) => ({
  cniVersion: '1.0.0',
  name: 'par',
  type: 'vdpa-cni',
  deviceID: b.vfs[vf]!.pci,
  runtimeConfig: { mac: pod.mac },
  ovn: { ifaceId: '{namespace}_{pod}', timeout: '60s' },
});
const call = (verb: string, vf: number, pod: Pod) =>
  cni(b, verb, conf(vf, pod), {
    containerId: `ctr-${pod.name}`,
    netns: pod.netns,
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod.name}`,
  });
const stateFiles = () => (existsSync(join(b.stateDir, 'attachments')) ? readdirSync(join(b.stateDir, 'attachments')).sort() : []);

async function assertAttached(vf: number, pod: Pod): Promise<void> {
  const v = b.vfs[vf]!;
  assert.ok(link(pod.netns, 'net1'), `${pod.name} has net1`);
  assert.is(link(pod.netns, 'net1')!.mac, pod.mac);
  const ids = (await ovsInterface(v.representor))?.externalIds;
  assert.is(ids?.sandbox, `ctr-${pod.name}`, `port of ${v.representor} serves ${pod.name}`);
  assert.is(ids?.['iface-id'], `${ns}_${pod.name}`);
  assert.is(ids?.['ovn-installed'], 'true');
}

async function assertFree(vf: number): Promise<void> {
  const v = b.vfs[vf]!;
  assert.ok(link(null, v.netdev), `${v.netdev} home`);
  assert.is(await ovsPort(v.representor), undefined, `no port on ${v.representor}`);
}

test(`${N} parallel ADDs on distinct VFs, then ${N} parallel DELs`, async () => {
  const pods = await Promise.all(Array.from({ length: N }, () => newPod('x')));
  const adds = await Promise.all(pods.map((p, i) => call('ADD', i, p)));
  adds.forEach((r, i) => assert.is(r.code, 0, `ADD ${i}: ${r.stdout} ${r.stderr}`));
  for (let i = 0; i < N; i++) await assertAttached(i, pods[i]!);
  assert.is(stateFiles().length, N);
  const dels = await Promise.all(pods.map((p, i) => call('DEL', i, p)));
  dels.forEach((r, i) => assert.is(r.code, 0, `DEL ${i}: ${r.stderr}`));
  for (let i = 0; i < N; i++) await assertFree(i);
  assert.equal(stateFiles(), []);
});

for (let round = 0; round < 4; round++) {
  test(`round ${round}: DEL of pod A racing ADD of pod B on the same VF`, async () => {
    const a = await newPod('a');
    const bb = await newPod('b');
    assert.is((await call('ADD', 0, a)).code, 0);
    // Alternate which process starts first; the per-VF lock decides who runs first.
    const racing = round % 2 ? { addB: call('ADD', 0, bb), delA: call('DEL', 0, a) } : { delA: call('DEL', 0, a), addB: call('ADD', 0, bb) };
    const [delA, first] = await Promise.all([racing.delA, racing.addB]);
    assert.is(delA.code, 0, delA.stderr);
    // B's ADD that wins the lock while A still holds the VF is refused (11, naming A), as the
    // kubelet then retries it; one that comes after A's DEL gets the VF.
    let addB = first;
    if (first.code !== 0) {
      assert.is(JSON.parse(first.stdout).code, 11, first.stdout);
      assert.match(JSON.parse(first.stdout).msg, `held by container ctr-${a.name} interface net1`);
      addB = await call('ADD', 0, bb);
    }
    assert.is(addB.code, 0, addB.stdout + addB.stderr);
    await assertAttached(0, bb);
    assert.equal(links(a.netns).map((l) => l.name), ['lo'], "A's pod is empty");
    assert.equal(stateFiles(), [`ctr-${bb.name}@net1.json`]);
    assert.is((await call('DEL', 0, bb)).code, 0);
    await assertFree(0);
  });
}

test("ADD of pod B after pod A is gone but before A's DEL: B reclaims the VF, A's late DEL leaves B alone", async () => {
  const a = await newPod('a');
  const bb = await newPod('b');
  assert.is((await call('ADD', 1, a)).code, 0);
  // A's pod dies the way the kernel ends a netns: its physical netdev goes back to the host.
  sh('ip', ['-n', a.netns.split('/').pop()!, 'link', 'set', 'dev', 'net1', 'netns', `/proc/${process.pid}/ns/net`]);
  sh('ip', ['netns', 'del', a.netns.split('/').pop()!]);
  const addB = await call('ADD', 1, bb);
  assert.is(addB.code, 0, addB.stderr);
  assert.match(addB.stderr, /VF is still recorded for an attachment that is gone; undoing it first.*network namespace .* is gone/);
  await assertAttached(1, bb);
  const delA = await call('DEL', 1, a);
  assert.is(delA.code, 0, delA.stderr);
  await assertAttached(1, bb);
  assert.is((await call('DEL', 1, bb)).code, 0);
  await assertFree(1);
  assert.equal(stateFiles(), []);
});

test.after(async () => {
  await ovn.cleanup();
  b.cleanup();
});
test.run();

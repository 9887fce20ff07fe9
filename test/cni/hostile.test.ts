// vdpa-cni on a shared, hostile node: another CNI's ports on the same br-int, other vdpa-cni
// networks, tenants who write their own netconf and DeviceInfo files, and pods with
// CAP_NET_ADMIN that rename, re-alias and re-address their interfaces or forge look-alikes.
// Each test plays the attack against the built binary on real veths, netns and OVS/OVN and
// asserts that the victim is unharmed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, hostView, link, links, sh, shOk, testIpam, type Bed } from '../support/cni.js';
import { ensureOvn, OvnRun, ovsInterface, ovsPort } from '../support/ovn.js';

await ensureOvn();
const ovn = new OvnRun();
const b = bed('h', { count: 8 });
const ipam = testIpam(b);
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;

let n = 0;
interface Pod {
  readonly name: string;
  readonly netns: string;
  readonly mac: string;
  readonly ip: string;
}
async function pod(tag: string, withLsp = true): Promise<Pod> {
  const k = ++n;
  const p = { name: `${tag}${k}`, netns: b.netns(`${tag}${k}`), mac: `0a:02:00:00:00:${k.toString(16).padStart(2, '0')}`, ip: `10.82.0.${10 + k}` };
  if (withLsp) await ovn.addLogicalPort(ls, `${ns}_${p.name}`, p.mac, [p.ip]);
  return p;
}

function conf(vf: number, p: Pod, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'net-a',
    type: 'vdpa-cni',
    deviceID: b.vfs[vf]!.pci,
    runtimeConfig: { mac: p.mac },
    ipam: { type: 'test-ipam', address: `${p.ip}/24`, gateway: '10.82.0.1' },
    // A NAD author may name the port as ovn-kubernetes names the pod's own: the plug must still not take ovn-k's.
    ovn: { ifaceId: '{namespace}_{pod}', timeout: '20s' },
    ...extra,
  };
}
const call = (verb: string, vf: number, p: Pod, extra: Record<string, unknown> = {}, env: Record<string, string> = {}) =>
  cni(b, verb, conf(vf, p, extra), {
    containerId: `ctr-${p.name}`,
    netns: p.netns,
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${p.name}`,
    path: ipam.path,
    env,
  });
const stateFiles = (bb: Bed = b) => (existsSync(join(bb.stateDir, 'attachments')) ? readdirSync(join(bb.stateDir, 'attachments')).sort() : []);
const inPod = (p: Pod) => links(p.netns).map((l) => l.name);

async function assertHolds(vf: number, p: Pod): Promise<void> {
  const v = b.vfs[vf]!;
  assert.ok(link(p.netns, 'net1'), `${p.name} still has net1`);
  assert.is(link(null, v.netdev), undefined, `${v.netdev} is not in the host`);
  assert.ok(stateFiles().includes(`ctr-${p.name}@net1.json`), `${p.name}'s state is still there`);
  assert.is((await ovsInterface(v.representor))?.externalIds.sandbox, `ctr-${p.name}`, `the port still serves ${p.name}`);
}

async function assertHome(vf: number, p: { mac?: string; mtu?: number } = {}): Promise<void> {
  const v = b.vfs[vf]!;
  const home = link(null, v.netdev);
  assert.ok(home, `${v.netdev} back in the host under its original name`);
  if (p.mac) assert.is(home!.mac, p.mac, 'with its original MAC');
  if (p.mtu) assert.is(home!.mtu, p.mtu, 'with its original MTU');
  assert.is(home!.alias, '', 'and its original alias');
  assert.is(await ovsPort(v.representor), undefined, 'no port left');
}

test('rule 1: ADD for pod B naming the VF a live pod A holds fails with 11 naming A; A keeps netdev, state and port', async () => {
  const a = await pod('a');
  const bb = await pod('b');
  assert.is((await call('ADD', 0, a)).code, 0);
  const r = await call('ADD', 0, bb);
  assert.is(r.json?.code, 11, r.stdout + r.stderr);
  assert.match(String(r.json?.msg), `held by container ctr-${a.name} interface net1`);
  await assertHolds(0, a);
  assert.equal(inPod(bb), ['lo'], 'B got nothing');
  assert.is((await call('DEL', 0, bb)).code, 0, "B's DEL of what it never got");
  await assertHolds(0, a);
  assert.is((await call('DEL', 0, a)).code, 0);
  await assertHome(0);
});

test('rule 2: a pod that renames, re-aliases and re-MACs the VF and forges a look-alike with its alias gets the real VF taken back, nothing else', async () => {
  const v = b.vfs[1]!;
  const hostMac = link(null, v.netdev)!.mac;
  const a = await pod('a');
  assert.is((await call('ADD', 1, a)).code, 0);
  const mark = link(a.netns, 'net1')!.alias;
  assert.match(mark, /^vdpa-cni\//);
  const ip = (...args: string[]) => sh('ip', ['-n', a.netns, ...args]);
  ip('link', 'set', 'dev', 'net1', 'down');
  ip('link', 'set', 'dev', 'net1', 'name', 'renamed');
  ip('link', 'set', 'dev', 'renamed', 'alias', 'x'.repeat(20), 'address', '02:66:66:66:66:66');
  // The look-alike: named like the pod interface, carrying the VF's mark, with a 20-character name in a forged mark too.
  ip('link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'fakepeer');
  ip('link', 'set', 'dev', 'net1', 'alias', mark);
  ip('link', 'set', 'dev', 'fakepeer', 'alias', mark.replace(/[^/]+$/, 'y'.repeat(20)));
  const d = await call('DEL', 1, a);
  assert.is(d.code, 0, d.stdout + d.stderr);
  await assertHome(1, { mac: hostMac });
  assert.equal(inPod(a).sort(), ['fakepeer', 'lo', 'net1'], 'the look-alikes stay in the pod');
  assert.is(link(null, 'fakepeer'), undefined, 'nothing forged came into the host');
  assert.is(link(null, 'y'.repeat(15)), undefined);
});

test('rule 3: a DeviceInfo file in a tenant directory, or one whose path is made up, is refused (7) and no host netdev moves', async () => {
  const a = await pod('a');
  const victim = `${b.vfs[2]!.netdev}`;
  const tenantDir = join(b.dir, 'kubelet-pods', 'uid', 'volumes', 'emptydir');
  mkdirSync(tenantDir, { recursive: true });
  const forged = (path: string) => ({ type: 'vdpa', version: '1.1.0', vdpa: { 'parent-device': b.vfs[3]!.fixture.vdpa[0], driver: 'virtio', path, 'pci-address': b.vfs[3]!.pci } });
  const evil = join(tenantDir, 'devinfo.json');
  writeFileSync(evil, JSON.stringify(forged(join(b.dir, 'made-up', 'virtio76'))));
  const before = hostView(b, [a.netns]);
  const outside = await call('ADD', 3, a, { runtimeConfig: { mac: a.mac, CNIDeviceInfoFile: evil } });
  assert.is(outside.json?.code, 7, outside.stdout);
  assert.match(String(outside.json?.msg), /runtimeConfig\.CNIDeviceInfoFile: .* is not under the DeviceInfo directory/);
  const inside = join(b.devinfoDir, 'cni', `${a.name}.json`);
  mkdirSync(join(b.devinfoDir, 'cni'), { recursive: true });
  writeFileSync(inside, JSON.stringify(forged(join(b.dir, 'made-up', 'virtio77'))));
  const madeUp = await call('ADD', 3, a, { runtimeConfig: { mac: a.mac, CNIDeviceInfoFile: inside } });
  assert.is(madeUp.json?.code, 7, madeUp.stdout);
  assert.match(String(madeUp.json?.msg), /vdpa\.path is .*made-up.*, but sysfs has/);
  assert.is(hostView(b, [a.netns]), before, 'host unchanged');
  assert.ok(link(null, victim), 'the other VF stays in the host');
});

test('rule 4: GC of one network leaves another network\'s live pod alone', async () => {
  const a = await pod('a');
  const other = await pod('o');
  assert.is((await call('ADD', 4, a)).code, 0);
  assert.is((await call('ADD', 5, other, { name: 'net-b' })).code, 0);
  const gc = await cni(b, 'GC', { ...conf(4, a), ipam: undefined, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stdout + gc.stderr);
  await assertHome(4);
  await assertHolds(5, other);
  assert.is((await ovsInterface(b.vfs[5]!.representor))?.externalIds['vdpa-k8s-network'], 'net-b');
  assert.is((await call('DEL', 5, other, { name: 'net-b' })).code, 0);
  await assertHome(5);
});

test("rule 5: ovn-kubernetes' port with the iface-id our template gives is refused and untouched; a literal iface-id is refused", async () => {
  const a = await pod('a');
  // ovn-k's own primary port for the pod: a veth on br-int with iface-id namespace_pod.
  const [ovnk] = await ovn.createVeth();
  sh('ovs-vsctl', ['add-port', 'br-int', ovnk, '--', 'set', 'Interface', ovnk, `external_ids:iface-id=${ns}_${a.name}`, 'external_ids:sandbox=ovnk-sandbox']);
  sh('ip', ['link', 'set', 'dev', ovnk, 'up']);
  const before = hostView(b, [a.netns]);
  const r = await call('ADD', 6, a);
  assert.is(r.json?.code, 7, r.stdout + r.stderr);
  assert.match(String(r.json?.msg), new RegExp(`OVS interface ${ovnk} was not created by vdpa-cni`));
  const ids = (await ovsInterface(ovnk))?.externalIds ?? {};
  assert.equal([ids['iface-id'], ids.sandbox, ids['vdpa-k8s-owner']], [`${ns}_${a.name}`, 'ovnk-sandbox', undefined], 'its row as ovn-k left it');
  assert.is(await ovsPort(b.vfs[6]!.representor), undefined, 'nothing plugged');
  assert.ok(link(null, ovnk)?.up, 'its link untouched');
  assert.is(hostView(b, [a.netns]), before);
  sh('ovs-vsctl', ['del-port', ovnk]);

  const literal = await call('ADD', 6, a, { ovn: { ifaceId: 'static-port' } });
  assert.is(literal.json?.code, 7);
  assert.match(String(literal.json?.msg), /ovn\.ifaceId: "static-port" names no pod/);
});

test('rule 5: DEL and GC never act on a link that only an OVSDB row names', async () => {
  const a = await pod('a', false);
  // A row marked as ours, for this attachment, naming a host link that is no representor.
  const [victim] = await ovn.createVeth();
  sh('ip', ['link', 'set', 'dev', victim, 'up']);
  sh('ovs-vsctl', ['add-port', 'br-int', victim, '--', 'set', 'Interface', victim, 'external_ids:vdpa-k8s-owner=vdpa-cni', `external_ids:sandbox=ctr-${a.name}`, 'external_ids:pod-if-name=net1', 'external_ids:vdpa-k8s-network=net-a']);
  const d = await call('DEL', 7, a);
  assert.is(d.code, 0, d.stderr);
  assert.ok(link(null, victim)?.up, 'DEL without state left the link alone');
  const gc = await cni(b, 'GC', { ...conf(7, a), ipam: undefined, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stderr);
  assert.is(await ovsPort(victim), undefined, 'GC removed the row marked as ours');
  assert.ok(link(null, victim)?.up, 'and never touched the link');
});

test('rule 6: a CNI_NETNS path with $(…) in it runs no command', async () => {
  const a = await pod('a');
  const marker = join(b.dir, 'pwned');
  const dir = join(b.dir, `$(touch ${marker})`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'ns');
  writeFileSync(path, '');
  sh('mount', ['--bind', `/run/netns/${a.netns}`, path]);
  try {
    const r = await cni(b, 'ADD', conf(0, a), { containerId: `ctr-${a.name}`, netns: path, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${a.name}`, path: ipam.path });
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.ok(link(a.netns, 'net1'), 'the netdev is in the pod');
    assert.not.ok(existsSync(marker), 'the injected command did not run');
    const d = await cni(b, 'DEL', conf(0, a), { containerId: `ctr-${a.name}`, netns: path, path: ipam.path });
    assert.is(d.code, 0, d.stderr);
    assert.not.ok(existsSync(marker));
    await assertHome(0);
  } finally {
    shOk('umount', [path]);
  }
});

test('rule 9: a container ID too long for a file name attaches and deletes; ipam.type "." or ".." is refused', async () => {
  const a = await pod('a');
  const longId = `c${'0123456789'.repeat(30)}`;
  const c = { containerId: longId, netns: a.netns, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${a.name}`, path: ipam.path };
  const r = await cni(b, 'ADD', conf(0, a), c);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is((await cni(b, 'DEL', conf(0, a), c)).code, 0);
  assert.equal(stateFiles(), []);
  await assertHome(0);
  for (const type of ['.', '..']) {
    const bad = await call('ADD', 0, a, { ipam: { type } });
    assert.is(bad.json?.code, 7, bad.stdout);
    assert.match(String(bad.json?.msg), /^ipam\.type: /);
  }
});

test('rule 9: a failing IPAM ADD still gets its DEL, and its stderr reaches our log', async () => {
  const a = await pod('a');
  const logFile = join(b.dir, 'ipam-fail.log');
  const r = await call('ADD', 0, a, { ipam: { type: 'test-ipam', fail: 'no addresses left' }, logFile });
  assert.is(r.code, 1, r.stdout);
  assert.ok(ipam.calls().includes(`DEL ctr-${a.name}`), 'IPAM DEL after its failed ADD');
  assert.match(readFileSync(logFile, 'utf8'), /"msg":"IPAM plugin stderr".*no addresses left/);
  assert.equal(stateFiles(), []);
  await assertHome(0);
});

test('rule 10: the VF comes back with its own MAC and MTU and the representor with its MTU; leftover temp state files are removed', async () => {
  const v = b.vfs[0]!;
  sh('ip', ['link', 'set', 'dev', v.netdev, 'mtu', '1500']);
  sh('ip', ['link', 'set', 'dev', v.representor, 'mtu', '1500']);
  const hostMac = link(null, v.netdev)!.mac;
  const a = await pod('a');
  assert.is((await call('ADD', 0, a, { mtu: 1400 })).code, 0);
  assert.is(link(a.netns, 'net1')!.mac, a.mac);
  assert.is(link(a.netns, 'net1')!.mtu, 1400);
  assert.is(link(null, v.representor)!.mtu, 1400);
  // A call killed inside the atomic state write leaves this behind.
  const dir = join(b.stateDir, 'attachments');
  writeFileSync(join(dir, `ctr-${a.name}@net1.json.4000001.tmp`), '{');
  writeFileSync(join(dir, 'ctr-gone@net1.json.4000002.tmp'), '{');
  assert.is((await call('DEL', 0, a, { mtu: 1400 })).code, 0);
  await assertHome(0, { mac: hostMac, mtu: 1500 });
  assert.is(link(null, v.representor)!.mtu, 1500, 'representor MTU restored');
  assert.equal(stateFiles(), ['ctr-gone@net1.json.4000002.tmp'], "DEL removed its own temp file");
  const gc = await cni(b, 'GC', { ...conf(0, a), ipam: undefined, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stderr);
  assert.equal(stateFiles(), [], 'GC removed the dead writer\'s temp file');
});

test('rule 11: at debug level the log shows the verb, the redacted netconf, the CNI_ARGS used and the deviceID with its source; errors carry the cniVersion', async () => {
  const a = await pod('a');
  const logFile = join(b.dir, 'debug.log');
  const extra = { logFile, logLevel: 'debug', vendor: { apiToken: 'sekrit-token', server: 'https://api' } };
  assert.is((await call('ADD', 0, a, extra)).code, 0);
  const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const first = lines.find((l) => l.msg === 'call')!;
  assert.ok(first, 'a call line');
  assert.is(first.verb, 'ADD');
  assert.is(first.deviceID, b.vfs[0]!.pci);
  assert.is(first.deviceIDSource, 'deviceID');
  assert.equal(first.cniArgs, { podNamespace: ns, podName: a.name });
  assert.equal((first.netconf as { vendor: unknown }).vendor, { apiToken: '[redacted]', server: 'https://api' });
  assert.not.match(readFileSync(logFile, 'utf8'), 'sekrit-token');
  assert.is((await call('DEL', 0, a, extra)).code, 0);
  const bad = await call('ADD', 0, a, { ...extra, cniVersion: '1.0.0', deviceID: '0000:99:00.7' });
  assert.is(bad.json?.code, 7);
  const error = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'error').pop()!;
  assert.is(error.cniVersion, '1.0.0');
});

test.after(async () => {
  await ovn.cleanup();
  b.cleanup();
});
test.run();

// ovn.mode "managed": vdpa-cni creates the pod's Logical_Switch_Port in the real OVN Northbound
// database (no outside controller), plugs the representor, waits for ovn-installed; DEL and GC
// remove only its own logical ports; a foreign one of the same name is refused, never replaced.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, hostView, link, testIpam } from '../support/cni.js';
import { ensureOvn, OvnRun, ovsInterface, ovsPort, run } from '../support/ovn.js';

await ensureOvn();
const ovn = new OvnRun();
const b = bed('m', { count: 4 });
const ipam = testIpam(b);
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
const NETWORK = 'vdpa-managed';

const macOf = (i: number) => `0a:03:00:00:00:${(16 + i).toString(16)}`;
const ipOf = (i: number) => `10.83.0.${10 + i}`;
const lspOf = (pod: string, network = NETWORK) => `vdpa-${network}_${ns}_${pod}`;

function conf(vf: number, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: NETWORK,
    type: 'vdpa-cni',
    deviceID: b.vfs[vf]!.pci,
    runtimeConfig: { mac: macOf(vf) },
    ipam: { type: 'test-ipam', address: `${ipOf(vf)}/24`, gateway: '10.83.0.1' },
    ovn: { mode: 'managed', logicalSwitch: ls, timeout: '20s' },
    ...extra,
  };
}
const args = (pod: string, uid = '') => `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod}${uid ? `;K8S_POD_UID=${uid}` : ''}`;
const call = (verb: string, vf: number, pod: string, netns: string, extra: Record<string, unknown> = {}, uid = '') =>
  cni(b, verb, conf(vf, extra), { containerId: `ctr-${pod}`, netns, args: args(pod, uid), path: ipam.path });
const stateFiles = () => (existsSync(join(b.stateDir, 'attachments')) ? readdirSync(join(b.stateDir, 'attachments')) : []);

interface LspRow {
  addresses: string[];
  port_security: string[];
  external_ids: Record<string, string>;
  options: Record<string, string>;
}

/** The Logical_Switch_Port row named `name` as ovn-nbctl reads it back, or undefined. */
async function lsp(name: string): Promise<LspRow | undefined> {
  const r = await run('ovn-nbctl', ['--format=json', '--columns=addresses,port_security,external_ids,options', 'find', 'Logical_Switch_Port', `name="${name}"`]);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { data: unknown[][] };
  const row = out.data[0];
  if (!row) return undefined;
  const set = (v: unknown): string[] => (Array.isArray(v) && v[0] === 'set' ? (v[1] as string[]) : [v as string]);
  const map = (v: unknown): Record<string, string> => Object.fromEntries((v as ['map', [string, string][]])[1]);
  return { addresses: set(row[0]), port_security: set(row[1]), external_ids: map(row[2]), options: map(row[3]) };
}

async function switchPorts(): Promise<string[]> {
  return (await run('ovn-nbctl', ['lsp-list', ls])).stdout.trim().split('\n').filter(Boolean).map((l) => l.replace(/^\S+ \((.*)\)$/, '$1')).sort();
}

test('two pods: vdpa-cni creates each logical port (addresses, port_security, owner mark), OVN installs them, they ping; DEL removes each', async () => {
  const pa = b.netns('a');
  const pb = b.netns('b');
  const ra = await call('ADD', 0, 'a', pa, {}, 'uid-a');
  assert.is(ra.code, 0, ra.stdout + ra.stderr);
  const rb = await call('ADD', 1, 'b', pb);
  assert.is(rb.code, 0, rb.stdout + rb.stderr);
  const rowA = await lsp(lspOf('a'));
  assert.equal(rowA, {
    addresses: [`${macOf(0)} ${ipOf(0)}`],
    port_security: [`${macOf(0)} ${ipOf(0)}`],
    external_ids: { 'vdpa-k8s-owner': 'vdpa-cni', sandbox: 'ctr-a', 'pod-if-name': 'net1', 'vdpa-k8s-network': NETWORK },
    options: { 'iface-id-ver': 'uid-a' },
  });
  assert.equal(await switchPorts(), [lspOf('a'), lspOf('b')].sort());
  const ids = (await ovsInterface(b.vfs[0]!.representor))!.externalIds;
  assert.equal([ids['iface-id'], ids['iface-id-ver'], ids['ovn-installed']], [lspOf('a'), 'uid-a', 'true']);
  for (const p of [pa, pb]) await run('ip', ['netns', 'exec', p, 'ethtool', '-K', 'net1', 'tx', 'off']);
  const ping = await run('ip', ['netns', 'exec', pa, 'ping', '-c', '3', '-i', '0.2', '-W', '2', ipOf(1)]);
  assert.is(ping.code, 0, ping.stdout + ping.stderr);

  assert.is((await call('DEL', 0, 'a', pa)).code, 0);
  assert.is(await lsp(lspOf('a')), undefined, "A's logical port removed");
  assert.ok(await lsp(lspOf('b')), "B's stays");
  assert.is((await call('DEL', 1, 'b', pb)).code, 0);
  assert.equal(await switchPorts(), []);
  assert.equal(stateFiles(), []);
  for (const i of [0, 1]) {
    assert.ok(link(null, b.vfs[i]!.netdev), 'netdev home');
    assert.is(await ovsPort(b.vfs[i]!.representor), undefined);
  }
});

test('a logical port of that name that vdpa-cni did not create is refused (7) and left as it was; the host is unchanged', async () => {
  const pc = b.netns('c');
  await ovn.addLogicalPort(ls, lspOf('c'), '0a:ff:00:00:00:01', ['10.83.0.250']);
  const before = hostView(b, [pc]);
  const r = await call('ADD', 2, 'c', pc);
  assert.is(r.json?.code, 7, r.stdout + r.stderr);
  assert.match(String(r.json?.msg), `OVN Logical_Switch_Port ${lspOf('c')} was not created by vdpa-cni`);
  assert.equal((await lsp(lspOf('c')))?.addresses, ['0a:ff:00:00:00:01 10.83.0.250'], 'the foreign port is unchanged');
  assert.is(hostView(b, [pc]), before);
  assert.ok(ipam.calls().includes('DEL ctr-c'), 'the lease was released');
  await ovn.removeLogicalPort(lspOf('c'));
});

test('a missing logical switch is a clear error (7) and nothing is left behind', async () => {
  const pd = b.netns('d');
  const before = hostView(b, [pd]);
  const r = await call('ADD', 2, 'd', pd, { ovn: { mode: 'managed', logicalSwitch: `${ovn.prefix}-nosuch` } });
  assert.is(r.json?.code, 7, r.stdout);
  assert.match(String(r.json?.msg), /^ovn\.logicalSwitch: OVN logical switch .*-nosuch does not exist/);
  assert.is(hostView(b, [pd]), before);
});

test("GC removes this network's logical ports of attachments it no longer lists, and no other network's", async () => {
  const pe = b.netns('e');
  const pf = b.netns('f');
  assert.is((await call('ADD', 2, 'e', pe)).code, 0);
  assert.is((await call('ADD', 3, 'f', pf, { name: 'vdpa-other' })).code, 0);
  const gc = await cni(b, 'GC', { ...conf(2), ipam: undefined, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stdout + gc.stderr);
  assert.is(await lsp(lspOf('e')), undefined, "GC removed e's logical port");
  assert.ok(link(null, b.vfs[2]!.netdev), "and returned e's netdev");
  assert.ok(await lsp(lspOf('f', 'vdpa-other')), "the other network's port stays");
  assert.ok(link(pf, 'net1'), "and its pod keeps its netdev");
  assert.is((await call('DEL', 3, 'f', pf, { name: 'vdpa-other' })).code, 0);
  assert.is(await lsp(lspOf('f', 'vdpa-other')), undefined);
});

test.after(async () => {
  await ovn.cleanup();
  b.cleanup();
});
test.run();

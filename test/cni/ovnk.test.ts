// ovn.mode "ovn-kubernetes" against the Kubernetes API stand-in (test/support/kube-api.ts) and
// the real OVN. This suite plays ovnkube-controller: it writes the pod's k8s.ovn.org/pod-networks
// annotation (sometimes after ADD has started) and creates the Logical_Switch_Port with ovn-k's
// name, addresses and options:iface-id-ver in the real NB, as ovnkube-controller does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bed, cni, hostView, link, routes, addresses, sh, type Bed } from '../support/cni.js';
import { KubeApiStandIn } from '../support/kube-api.js';
import { ensureOvn, OvnRun, ovsInterface, ovsPort, run } from '../support/ovn.js';

await ensureOvn();
const ovn = new OvnRun();
const b: Bed = bed('k', { count: 5 });
const api = new KubeApiStandIn();
await api.start();
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
const kubeconfig = api.kubeconfig('token.yaml');
const POD_NETWORKS = 'k8s.ovn.org/pod-networks';

let seq = 0;
interface Pod {
  readonly name: string;
  readonly netns: string;
  readonly uid: string;
  readonly mac: string;
  readonly ip: string;
}
function pod(tag: string): Pod {
  const k = ++seq;
  const name = `${tag}${k}`;
  return { name, netns: b.netns(name), uid: api.createPod(ns, name), mac: `0a:58:0a:54:00:${(16 + k).toString(16)}`, ip: `10.84.0.${10 + k}` };
}

/** ovnkube-controller's two writes for a pod on a network: the annotation and the logical port. */
async function ovnkubeController(p: Pod, network = 'default', extra: Record<string, unknown> = {}): Promise<string> {
  const entry = { ip_addresses: [`${p.ip}/24`], mac_address: p.mac, gateway_ips: ['10.84.0.1'], routes: [{ dest: '10.96.0.0/16', nextHop: '10.84.0.1' }], ...extra };
  api.annotate(ns, p.name, POD_NETWORKS, JSON.stringify({ [network]: entry }));
  const lsp = network === 'default' ? `${ns}_${p.name}` : `${network.replaceAll('-', '.').replaceAll('/', '.')}_${ns}_${p.name}`;
  await ovn.addLogicalPort(ls, lsp, p.mac, [p.ip]);
  await run('ovn-nbctl', ['lsp-set-port-security', lsp, `${p.mac} ${p.ip}`, '--', 'set', 'Logical_Switch_Port', lsp, `options:iface-id-ver=${p.uid}`, 'external_ids:pod=true', `external_ids:namespace=${ns}`]);
  return lsp;
}

function conf(vf: number, extra: Record<string, unknown> = {}, ovnExtra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0',
    name: 'ovn-vdpa',
    type: 'vdpa-cni',
    deviceID: b.vfs[vf]!.pci,
    kubeconfig,
    ovn: { mode: 'ovn-kubernetes', timeout: '20s', annotationTimeout: '10s', ...ovnExtra },
    ...extra,
  };
}
const call = (verb: string, vf: number, p: Pod, extra: Record<string, unknown> = {}, ovnExtra: Record<string, unknown> = {}) =>
  cni(b, verb, conf(vf, extra, ovnExtra), {
    containerId: `ctr-${p.name}`,
    netns: p.netns,
    ifname: 'eth1',
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${p.name};K8S_POD_UID=${p.uid}`,
  });

test('default network: exactly the annotation\'s addresses, MAC, routes and a default route; ovn-k\'s iface-id and iface-id-ver; two pods ping through OVN', async () => {
  const a = pod('a');
  const c = pod('c');
  const lspA = await ovnkubeController(a);
  await ovnkubeController(c);
  const ra = await call('ADD', 0, a);
  assert.is(ra.code, 0, ra.stdout + ra.stderr);
  const rc = await call('ADD', 1, c);
  assert.is(rc.code, 0, rc.stdout + rc.stderr);
  const dev = link(a.netns, 'eth1')!;
  assert.is(dev.mac, a.mac);
  assert.equal(addresses(a.netns, 'eth1'), [`${a.ip}/24`]);
  assert.equal(routes(a.netns, 'eth1').filter((r) => !r.includes('/24') && !r.startsWith('fe80')).sort(), ['10.96.0.0/16 via 10.84.0.1', 'default via 10.84.0.1'].sort());
  const ids = (await ovsInterface(b.vfs[0]!.representor))!.externalIds;
  assert.equal(
    [ids['iface-id'], ids['iface-id-ver'], ids.attached_mac, ids.ip_addresses, ids['ovn-installed'], ids['k8s.ovn.org/nad'], ids['k8s.ovn.org/network']],
    [lspA, a.uid, a.mac, `${a.ip}/24`, 'true', undefined, undefined],
  );
  for (const p of [a, c]) await run('ip', ['netns', 'exec', p.netns, 'ethtool', '-K', 'eth1', 'tx', 'off']);
  const ping = await run('ip', ['netns', 'exec', a.netns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', c.ip]);
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  for (const [vf, p] of [[0, a], [1, c]] as const) {
    assert.is((await call('DEL', vf, p)).code, 0);
    assert.ok(link(null, b.vfs[vf]!.netdev), 'netdev home');
    assert.is(await ovsPort(b.vfs[vf]!.representor), undefined);
  }
  const lsps = (await run('ovn-nbctl', ['lsp-list', ls])).stdout;
  assert.match(lsps, lspA, 'the logical port is ovnkube-controller\'s: vdpa-cni leaves it');
});

test("secondary ovn-k network: its iface-id prefix and k8s.ovn.org/nad and /network; no default route; ovn-k's own eth0 port untouched", async () => {
  const p = pod('s');
  api.createNad(ns, 'l2-net', { cniVersion: '0.3.1', name: 'l2net', type: 'ovn-k8s-cni-overlay', topology: 'layer2', netAttachDefName: `${ns}/l2-net` });
  const key = `${ns}/l2-net`;
  const lsp = await ovnkubeController(p, key, { gateway_ips: undefined, routes: [] });
  // ovn-k's CNI plugged the pod's primary interface into the same br-int.
  const [eth0] = await ovn.createVeth();
  sh('ovs-vsctl', ['add-port', 'br-int', eth0, '--', 'set', 'Interface', eth0, `external_ids:iface-id=${ns}_${p.name}`, `external_ids:sandbox=ctr-${p.name}`, `external_ids:iface-id-ver=${p.uid}`]);
  sh('ip', ['link', 'set', 'dev', eth0, 'up']);
  const before = JSON.stringify((await ovsInterface(eth0))!.externalIds);
  const r = await call('ADD', 2, p, {}, { network: key });
  assert.is(r.code, 0, r.stdout + r.stderr);
  const ids = (await ovsInterface(b.vfs[2]!.representor))!.externalIds;
  assert.equal([ids['iface-id'], ids['k8s.ovn.org/nad'], ids['k8s.ovn.org/network'], ids['ovn-installed']], [lsp, key, 'l2net', 'true']);
  assert.ok(lsp.startsWith(`${ns.replaceAll('-', '.')}.l2.net_`), lsp);
  assert.equal(routes(p.netns, 'eth1').filter((x) => x.startsWith('default')), [], 'no default route on a secondary network');
  assert.is((await call('DEL', 2, p, {}, { network: key })).code, 0);
  assert.is(JSON.stringify((await ovsInterface(eth0))!.externalIds), before, "ovn-k's port row unchanged");
  assert.ok(link(null, eth0)?.up, 'and its link untouched');
  sh('ovs-vsctl', ['del-port', eth0]);
});

test('the annotation comes after ADD has started: ADD waits for it, as ovn-k does', async () => {
  const p = pod('l');
  const late = new Promise<void>((resolve) => setTimeout(() => void ovnkubeController(p).then(() => resolve()), 700));
  const started = Date.now();
  const r = await call('ADD', 3, p);
  await late;
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.ok(Date.now() - started >= 700, 'it waited');
  assert.match(r.stderr, /ovnkube-controller annotated the pod.*"waitedMs":\d+/);
  assert.equal(addresses(p.netns, 'eth1'), [`${p.ip}/24`]);
  assert.is((await call('DEL', 3, p)).code, 0);
});

const failures: [string, () => Pod, Record<string, unknown>, Record<string, unknown>, number, RegExp][] = [
  ['the annotation never comes', () => pod('n'), {}, { annotationTimeout: '1s' }, 11, /timed out after 1000 ms waiting for pod .*'s k8s\.ovn\.org\/pod-networks annotation entry "default"/],
  ['a malformed annotation', () => {
    const p = pod('m');
    api.annotate(ns, p.name, POD_NETWORKS, '{"default":{"ip_addresses":["10.84.0.99"],"mac_address":"0a:58:0a:54:00:99"}}');
    return p;
  }, {}, {}, 6, /k8s\.ovn\.org\/pod-networks annotation: default\.ip_addresses\[0\] "10\.84\.0\.99" is not a CIDR/],
  ['the API server is unreachable', () => pod('u'), { kubeconfig: api.kubeconfig('dead.yaml', { server: 'https://127.0.0.1:1' }) }, {}, 11, /https:\/\/127\.0\.0\.1:1 is unreachable \(ECONNREFUSED/],
  ['an expired token (401)', () => pod('t'), { kubeconfig: api.kubeconfig('expired.yaml', { token: 'expired-token' }) }, {}, 7, /401 Unauthorized \(Unauthorized\): the credentials of kubeconfig .*expired\.yaml were refused/],
  ['the pod does not exist (404)', () => ({ ...pod('g'), name: 'no-such-pod' }), {}, {}, 11, /pod .*\/no-such-pod: GET .*: 404 \(pods "no-such-pod" not found\)/],
  ['a wrong CA', () => pod('w'), { kubeconfig: api.kubeconfig('wrong-ca.yaml', { caFile: api.otherCa }) }, {}, 7, /TLS verification failed/],
  ['no kubeconfig and no service account', () => pod('x'), { kubeconfig: undefined }, {}, 7, /no "kubeconfig" in the network config and no in-cluster service account/],
];
for (const [what, make, extra, ovnExtra, code, msg] of failures) {
  test(`${what}: code ${code} naming the cause, host unchanged`, async () => {
    const p = make();
    const before = hostView(b, [p.netns]);
    const r = await call('ADD', 4, p, extra, ovnExtra);
    assert.is(r.json?.code, code, r.stdout + r.stderr);
    assert.match(String(r.json?.msg), msg);
    assert.is(hostView(b, [p.netns]), before);
  });
}

test('a client certificate authenticates as well as a token', async () => {
  const p = pod('cc');
  await ovnkubeController(p);
  const r = await call('ADD', 4, p, { kubeconfig: api.kubeconfig('cert.yaml', { clientCert: true }) });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is((await call('DEL', 4, p)).code, 0);
  assert.ok(api.log.some((l) => l.startsWith('200 GET /api/v1/namespaces/')));
});

test.after(async () => {
  await api.stop();
  await ovn.cleanup();
  b.cleanup();
});
test.run();

// vdpa-cni with real OVS + OVN: the representor plugged into br-int in one transaction, OVN's
// ovn-installed awaited, pods pinging each other through OVN; CHECK, STATUS, GC; OVS down;
// vhost; kill -9 during the OVS steps; a foreign port refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { addresses, bed, cni, hostView, link, links, sh, startCni, testIpam } from '../support/cni.js';
import { ensureOvn, OvnRun, ovsInterface, ovsPort, run } from '../support/ovn.js';

await ensureOvn();
const ovn = new OvnRun();
const b = bed('o', { count: 6, driver: (i) => (i === 5 ? 'vhost' : 'virtio') });
const ipam = testIpam(b);
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
const DEAD_OVSDB = `unix:${join(b.dir, 'no-ovsdb.sock')}`;

/** Every pod gets its own MAC and IP (OVN refuses duplicate addresses on a switch). */
const pods = new Map<string, number>();
const seq = (pod: string) => {
  if (!pods.has(pod)) pods.set(pod, pods.size + 1);
  return pods.get(pod)!;
};
const macOf = (pod: string) => `0a:00:00:00:00:${seq(pod).toString(16).padStart(2, '0')}`;
const ipOf = (pod: string) => `10.81.0.${10 + seq(pod)}`;

function conf(i: number, pod: string, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'ovntest',
    type: 'vdpa-cni',
    deviceID: b.vfs[i]!.pci,
    mtu: 1400,
    runtimeConfig: { mac: macOf(pod) },
    ipam: { type: 'test-ipam', address: `${ipOf(pod)}/24`, gateway: '10.81.0.1' },
    // The LSP an outside controller (here the test) creates is named as ovn-kubernetes would.
    ovn: { ifaceId: '{namespace}_{pod}', timeout: '20s' },
    ...extra,
  };
}
const args = (pod: string, uid = '') => `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod}${uid ? `;K8S_POD_UID=${uid}` : ''}`;

async function lsp(pod: string): Promise<void> {
  await ovn.addLogicalPort(ls, `${ns}_${pod}`, macOf(pod), [ipOf(pod)]);
}

async function add(i: number, pod: string, netns: string, extra: Record<string, unknown> = {}, uid = '') {
  return cni(b, 'ADD', conf(i, pod, extra), { containerId: `ctr-${pod}`, netns, args: args(pod, uid), path: ipam.path });
}
async function del(i: number, pod: string, netns: string, extra: Record<string, unknown> = {}) {
  return cni(b, 'DEL', conf(i, pod, extra), { containerId: `ctr-${pod}`, netns, args: args(pod), path: ipam.path });
}
async function check(i: number, pod: string, netns: string, prevResult: unknown) {
  return cni(b, 'CHECK', { ...conf(i, pod), prevResult }, { containerId: `ctr-${pod}`, netns, args: args(pod), path: ipam.path });
}
const stateFiles = () => (existsSync(join(b.stateDir, 'attachments')) ? readdirSync(join(b.stateDir, 'attachments')) : []);

/**
 * Right after DEL: it returns only once ovs-vswitchd has applied the port removal, so vswitchd
 * has closed the representor (its PROMISC is gone) and restored its flags; the down came after.
 */
async function assertUnplugged(i: number): Promise<void> {
  const vf = b.vfs[i]!;
  assert.is(await ovsPort(vf.representor), undefined, `port ${vf.representor} removed`);
  const [rep] = JSON.parse(sh('ip', ['-j', 'link', 'show', 'dev', vf.representor])) as { flags: string[] }[];
  assert.not.ok(rep!.flags.includes('PROMISC'), 'ovs-vswitchd closed the representor');
  assert.not.ok(rep!.flags.includes('UP'), 'representor down');
}

test('two pods: ports plugged with every external_id, ovn-installed, ping through OVN, DEL undoes all', async () => {
  await lsp('a');
  await lsp('b');
  const pa = b.netns('a');
  const pb = b.netns('b');
  const ra = await add(0, 'a', pa, {}, 'uid-a');
  assert.is(ra.code, 0, ra.stdout + ra.stderr);
  const rb = await add(1, 'b', pb);
  assert.is(rb.code, 0, rb.stdout + rb.stderr);

  const result = ra.json as { interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[] };
  const vf = b.vfs[0]!;
  assert.equal(result.interfaces[0], { name: vf.representor, mac: link(null, vf.representor)!.mac, mtu: 1400 });
  assert.equal(result.interfaces[1], { name: 'net1', mac: macOf('a'), mtu: 1400, sandbox: `/run/netns/${pa}`, pciID: vf.pci });
  assert.equal(result.ips, [{ address: `${ipOf('a')}/24`, gateway: '10.81.0.1', interface: 1 }]);

  const iface = (await ovsInterface(vf.representor))!;
  assert.equal(
    Object.fromEntries(
      ['attached_mac', 'iface-id', 'iface-id-ver', 'sandbox', 'pod-if-name', 'ip_addresses', 'vf-netdev-name', 'vdpa-k8s-owner', 'ovn-installed'].map(
        (k) => [k, iface.externalIds[k]],
      ),
    ),
    {
      attached_mac: macOf('a'),
      'iface-id': `${ns}_a`,
      'iface-id-ver': 'uid-a',
      sandbox: 'ctr-a',
      'pod-if-name': 'net1',
      ip_addresses: `${ipOf('a')}/24`,
      'vf-netdev-name': vf.netdev,
      'vdpa-k8s-owner': 'vdpa-cni',
      'ovn-installed': 'true',
    },
  );
  assert.is((await ovsInterface(b.vfs[1]!.representor))!.externalIds['iface-id-ver'], undefined, 'no UID, no iface-id-ver');
  const port = (await ovsPort(vf.representor))!;
  assert.is(port.bridge, 'br-int');
  assert.is(port.otherConfig.transient, 'true');
  const rep = link(null, vf.representor)!;
  assert.ok(rep.up);
  assert.is(rep.mtu, 1400);
  assert.equal(addresses(pa, 'net1'), [`${ipOf('a')}/24`]);

  // veth on OVS's userspace datapath: let the pod compute checksums itself.
  for (const p of [pa, pb]) await run('ip', ['netns', 'exec', p, 'ethtool', '-K', 'net1', 'tx', 'off']);
  const ping = await run('ip', ['netns', 'exec', pa, 'ping', '-c', '3', '-i', '0.2', '-W', '2', ipOf('b')]);
  assert.is(ping.code, 0, ping.stdout + ping.stderr);

  const checked = await check(0, 'a', pa, ra.json);
  assert.is(checked.code, 0, checked.stdout + checked.stderr);

  for (const [i, p, n] of [[0, 'a', pa], [1, 'b', pb]] as const) {
    const d = await del(i, p, n);
    assert.is(d.code, 0, d.stderr);
    await assertUnplugged(i);
    assert.ok(link(null, b.vfs[i]!.netdev), 'netdev home');
  }
  assert.equal(stateFiles(), []);
});

test('CHECK names the first mismatch', async () => {
  await lsp('c');
  const pc = b.netns('c');
  const r = await add(2, 'c', pc);
  assert.is(r.code, 0, r.stderr);
  const expectFail = async (re: RegExp) => {
    const c = await check(2, 'c', pc, r.json);
    assert.is.not(c.code, 0);
    assert.match(String(c.json?.msg), re);
  };
  sh('ip', ['-n', pc, 'link', 'set', 'net1', 'mtu', '1300']);
  await expectFail(/net1 has MTU 1300, expected 1400/);
  sh('ip', ['-n', pc, 'link', 'set', 'net1', 'mtu', '1400']);
  sh('ip', ['-n', pc, 'addr', 'del', `${ipOf('c')}/24`, 'dev', 'net1']);
  await expectFail(new RegExp(`net1 lacks address ${ipOf('c')}/24`));
  sh('ip', ['-n', pc, 'addr', 'add', `${ipOf('c')}/24`, 'dev', 'net1']);
  sh('ovs-vsctl', ['set', 'Interface', b.vfs[2]!.representor, 'external_ids:iface-id=someone-else']);
  await expectFail(/has iface-id someone-else, expected .*_c/);
  sh('ovs-vsctl', ['set', 'Interface', b.vfs[2]!.representor, `external_ids:iface-id=${ns}_c`]);
  const noPod = await check(2, 'c', pc, { ...(r.json as object), interfaces: [], ips: [] });
  assert.match(String(noPod.json?.msg), /prevResult has no interface net1/);
  assert.is((await del(2, 'c', pc)).code, 0);
});

test('OVS down: DEL returns the netdev now and leaves the port; GC collects it later', async () => {
  await lsp('d');
  const pd = b.netns('d');
  assert.is((await add(3, 'd', pd)).code, 0);
  const d = await del(3, 'd', pd, { ovsdb: DEAD_OVSDB });
  assert.is(d.code, 0, d.stderr);
  assert.match(d.stderr, /OVSDB unreachable; leaving the port for GC/);
  assert.ok(link(null, b.vfs[3]!.netdev), 'netdev home');
  assert.equal(stateFiles(), []);
  assert.ok(await ovsPort(b.vfs[3]!.representor), 'port left behind');

  const status = await cni(b, 'STATUS', { ...conf(3, 'd'), ipam: undefined, ovsdb: DEAD_OVSDB }, { containerId: '' });
  assert.is(status.code, 1);
  assert.is(status.json?.code, 50);
  assert.match(String(status.json?.msg), /OVSDB at .* is unreachable/);

  const gc = await cni(b, 'GC', { ...conf(3, 'd'), ipam: undefined, 'cni.dev/valid-attachments': [] }, { containerId: '' });
  assert.is(gc.code, 0, gc.stderr);
  await assertUnplugged(3);
});

test("OVS down at DEL, then the VF's next pod: its ADD removes the leftover port and plugs its own", async () => {
  await lsp('d1');
  await lsp('d2');
  const p1 = b.netns('d1');
  const p2 = b.netns('d2');
  assert.is((await add(3, 'd1', p1)).code, 0);
  assert.is((await del(3, 'd1', p1, { ovsdb: DEAD_OVSDB })).code, 0);
  assert.is((await ovsInterface(b.vfs[3]!.representor))?.externalIds.sandbox, 'ctr-d1', 'leftover port');
  const r = await add(3, 'd2', p2);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /replacing a port of an attachment that is gone.*no attachment state records it/);
  assert.is((await ovsInterface(b.vfs[3]!.representor))?.externalIds.sandbox, 'ctr-d2');
  assert.is((await del(3, 'd2', p2)).code, 0);
  await assertUnplugged(3);
});

test('STATUS: ready with OVS up (logs hw-offload), code 50 for a missing bridge', async () => {
  const ok = await cni(b, 'STATUS', { ...conf(0, 'a'), ipam: undefined }, { containerId: '' });
  assert.is(ok.code, 0, ok.stdout + ok.stderr);
  assert.is(ok.stdout, '');
  assert.match(ok.stderr, /"hwOffload":(true|false)/);
  const nobr = await cni(b, 'STATUS', { ...conf(0, 'a'), ipam: undefined, bridge: `${ovn.prefix}nobr` }, { containerId: '' });
  assert.is(nobr.json?.code, 50);
  assert.match(String(nobr.json?.msg), /bridge .*nobr does not exist/);
});

test('GC removes what valid-attachments no longer lists, keeps what it lists', async () => {
  await lsp('e');
  await lsp('f');
  const pe = b.netns('e');
  const pf = b.netns('f');
  assert.is((await add(0, 'e', pe)).code, 0);
  assert.is((await add(1, 'f', pf)).code, 0);
  const gc = await cni(
    b,
    'GC',
    { ...conf(0, 'e'), ipam: undefined, 'cni.dev/valid-attachments': [{ containerID: 'ctr-e', ifname: 'net1' }] },
    { containerId: '' },
  );
  assert.is(gc.code, 0, gc.stderr);
  await assertUnplugged(1);
  assert.ok(link(null, b.vfs[1]!.netdev), 'f netdev home');
  assert.ok(await ovsPort(b.vfs[0]!.representor), 'e still plugged');
  assert.ok(link(pe, 'net1'), 'e still in its pod');
  assert.equal(stateFiles(), ['ctr-e@net1.json']);
  assert.is((await del(0, 'e', pe)).code, 0);
  assert.is((await del(1, 'f', pf)).code, 0, 'DEL after GC still succeeds');
});

test("GC racing an ADD on the VF of a stale port: it waits for the VF's lock, then leaves the port the new pod owns", async () => {
  await lsp('r1');
  const p1 = b.netns('r1');
  const p2 = b.netns('r2');
  const vf = b.vfs[3]!;
  assert.is((await add(3, 'r1', p1)).code, 0);
  assert.is((await del(3, 'r1', p1, { ovsdb: DEAD_OVSDB })).code, 0, 'DEL with OVS down leaves the port of ctr-r1');
  const adding = startCni(b, 'ADD', conf(3, 'r2'), {
    containerId: 'ctr-r2',
    netns: p2,
    args: args('r2'),
    path: ipam.path,
    env: { VDPA_CNI_TEST_PAUSE: 'before:port' },
  });
  await adding.paused;
  const gc = startCni(b, 'GC', { ...conf(3, 'r2'), ipam: undefined, 'cni.dev/valid-attachments': [{ containerID: 'ctr-r2', ifname: 'net1' }] }, {
    containerId: '',
  });
  let gcLog = '';
  const gcExit = new Promise<number | null>((r) => gc.child.once('close', r));
  const gcWaits = new Promise<void>((r) =>
    gc.child.stderr!.on('data', (d: string) => {
      gcLog += d;
      if (gcLog.includes('VF is busy; waiting for its lock')) r();
    }),
  );
  try {
    await Promise.race([gcWaits, gcExit.then(() => assert.unreachable(`GC did not wait for the lock ADD holds:\n${gcLog}`))]);
    // What the paused ADD would do next: plug the representor for its pod and bring it up.
    sh('ovs-vsctl', ['set', 'Interface', vf.representor, 'external_ids:sandbox=ctr-r2', 'external_ids:pod-if-name=net1', `external_ids:iface-id=${ns}_r2`]);
    sh('ip', ['link', 'set', 'dev', vf.representor, 'up']);
  } finally {
    adding.child.kill('SIGKILL'); // releases the VF's lock
  }
  assert.is(await gcExit, 0, gcLog);
  assert.match(gcLog, /stale OVS port taken over since it was listed; left alone.*now serves ctr-r2\/net1/);
  assert.is((await ovsInterface(vf.representor))?.externalIds.sandbox, 'ctr-r2', "the new pod's port is still there");
  assert.ok(link(null, vf.representor)!.up, "the new pod's representor is still up");
  assert.is((await del(3, 'r2', p2)).code, 0);
  await assertUnplugged(3);
  assert.ok(link(null, vf.netdev), 'netdev home');
});

test('state missing: DEL finds the port by sandbox/pod-if-name', async () => {
  await lsp('g');
  const pg = b.netns('g');
  assert.is((await add(4, 'g', pg)).code, 0);
  rmSync(join(b.stateDir, 'attachments'), { recursive: true });
  const d = await del(4, 'g', pg);
  assert.is(d.code, 0, d.stderr);
  await assertUnplugged(4);
  assert.ok(link(null, b.vfs[4]!.netdev));
});

test('vhost: no netdev moves, the representor is plugged; the result lists no pod interface that does not exist', async () => {
  await lsp('h');
  const ph = b.netns('h');
  const r = await add(5, 'h', ph);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const result = r.json as { interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[] };
  assert.equal(result.interfaces.map((i) => [i.name, i.sandbox]), [[b.vfs[5]!.representor, undefined]], 'only the host-side representor');
  assert.ok(result.ips.length > 0, 'the addresses are still there, for the VM');
  assert.ok(result.ips.every((a) => a.interface === undefined), 'and name no interface');
  assert.equal(links(ph).map((l) => l.name), ['lo']);
  assert.is((await ovsInterface(b.vfs[5]!.representor))!.externalIds['ovn-installed'], 'true');
  const checked = await check(5, 'h', ph, r.json);
  assert.is(checked.code, 0, checked.stdout);
  assert.is((await del(5, 'h', ph)).code, 0);
  await assertUnplugged(5);
});

test('ovn-installed never comes (no Logical_Switch_Port): ADD times out and rolls back everything', async () => {
  const pn = b.netns('n');
  const before = hostView(b, [pn]);
  const r = await add(2, 'nolsp', pn, { ovn: { timeout: '1s' } });
  assert.is(r.json?.code, 11, r.stdout + r.stderr);
  assert.match(String(r.json?.msg), /timed out waiting for OVN/);
  assert.is(await ovsPort(b.vfs[2]!.representor), undefined);
  assert.is(hostView(b, [pn]), before);
  assert.ok(ipam.calls().includes('DEL ctr-nolsp'), 'IPAM released');
});

test('a port that is not ours on the representor is refused, host unchanged', async () => {
  const vf = b.vfs[4]!;
  sh('ovs-vsctl', ['add-port', 'br-int', vf.representor, '--', 'set', 'Interface', vf.representor, 'external_ids:iface-id=not-ours']);
  try {
    const pz = b.netns('z');
    const before = hostView(b, [pz]);
    const r = await add(4, 'z', pz);
    assert.is(r.json?.code, 7, r.stdout);
    assert.match(String(r.json?.msg), /was not created by vdpa-cni \(iface-id=not-ours\)/);
    assert.is(hostView(b, [pz]), before);
    assert.is((await ovsInterface(vf.representor))!.externalIds['iface-id'], 'not-ours');
  } finally {
    sh('ovs-vsctl', ['--if-exists', 'del-port', vf.representor]);
  }
});

for (const point of ['before:port', 'after:port', 'before:representor', 'after:representor']) {
  test(`kill -9 at ${point}, then DEL: no port, netdev home`, async () => {
    const pod = `k${point.replace(/\W/g, '')}`.slice(0, 12);
    await lsp(pod);
    const pk = b.netns(pod);
    const { child, paused } = startCni(b, 'ADD', conf(3, pod), {
      containerId: `ctr-${pod}`,
      netns: pk,
      args: args(pod),
      path: ipam.path,
      env: { VDPA_CNI_TEST_PAUSE: point },
    });
    await paused;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const d = await del(3, pod, pk);
    assert.is(d.code, 0, d.stderr);
    await assertUnplugged(3);
    assert.ok(link(null, b.vfs[3]!.netdev), 'netdev home');
    assert.equal(stateFiles(), []);
  });
}

test.after(async () => {
  await ovn.cleanup();
  b.cleanup();
});
test.run();

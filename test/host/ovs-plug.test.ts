// plugPort / unplugPort / findOwnedPorts / ovsStatus against the real OVS,
// with the resulting rows read back through ovs-vsctl.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OvsdbClient } from '../../host/ovsdb.js';
import { BridgeMissingError, plugPort, PortConflictError, unplugPort, type PlugPortSpec } from '../../host/ovs-plug.js';
import { findOwnedPorts, ovsStatus, OWNER_KEY, OWNER_VALUE } from '../../host/ovs-ports.js';
import { waitApplied } from '../../host/ovs-watch.js';
import { BRIDGE, ovnSuite, OVSDB_SOCK, ovsInterface, ovsPort, run } from '../support/ovn.js';

const suite = ovnSuite(test);
const { ovn } = suite;

/** A veth whose host end stands in for a representor, and a spec for one attachment on it. */
async function attachment(over: Partial<PlugPortSpec> = {}): Promise<PlugPortSpec> {
  const [rep] = await ovn.createVeth();
  return {
    bridge: BRIDGE,
    port: rep,
    ifaceId: `${ovn.prefix}-ns_${rep}`,
    sandbox: `${ovn.prefix}sandbox-${rep}`,
    podIfName: 'eth0',
    network: 'net-a',
    ...over,
  };
}

async function get(table: string, name: string, column: string): Promise<string> {
  return (await run('ovs-vsctl', ['get', table, name, column])).stdout.trim();
}

async function portsNamed(name: string): Promise<number> {
  const out = (await run('ovs-vsctl', ['--bare', '--columns=_uuid', 'find', 'Port', `name=${name}`])).stdout;
  return out.split('\n').filter(Boolean).length;
}

test('plugPort writes exactly the Interface and Port rows ovn-kubernetes writes, plus our owner mark', async () => {
  const spec = await attachment({
    podUid: '5d4b7f0e-0000-4000-8000-000000000001',
    mac: '0a:58:0a:f4:00:05',
    ipAddresses: ['10.244.0.5/24', 'fd00:10:244::5/64'],
    vfNetdevName: 'enp101s0f0v2',
    externalIds: { 'k8s.ovn.org/network': 'default' },
    otherConfig: { 'extra-key': 'x' },
  });
  const r = await plugPort(suite.client, spec);
  assert.ok(r.created);
  assert.equal(r.replaced, []);
  const iface = await ovsInterface(spec.port);
  assert.equal(iface?.externalIds, {
    attached_mac: '0a:58:0a:f4:00:05',
    'iface-id': spec.ifaceId,
    'iface-id-ver': '5d4b7f0e-0000-4000-8000-000000000001',
    sandbox: spec.sandbox,
    'pod-if-name': 'eth0',
    ip_addresses: '10.244.0.5/24,fd00:10:244::5/64',
    'vf-netdev-name': 'enp101s0f0v2',
    [OWNER_KEY]: OWNER_VALUE,
    'vdpa-k8s-network': 'net-a',
    'k8s.ovn.org/network': 'default',
  });
  assert.is(iface?.type, '', 'a system interface (the representor netdev itself)');
  assert.equal(await ovsPort(spec.port), { bridge: BRIDGE, otherConfig: { transient: 'true', 'extra-key': 'x' }, interfaces: [spec.port] });
  assert.is(await get('Interface', spec.port, '_uuid'), r.interfaceUuid);
  assert.is(await get('Port', spec.port, '_uuid'), r.portUuid);
  // vswitchd really opened the netdev: it got an OpenFlow port number.
  await run('ovs-vsctl', ['--timeout=5', 'wait-until', 'Interface', spec.port, 'ofport>0']);
  assert.ok(Number(await get('Interface', spec.port, 'ofport')) > 0);
});

test('optional fields are left out: no pod UID means no iface-id-ver, no MAC/IPs/VF name means no keys', async () => {
  const spec = await attachment();
  await plugPort(suite.client, spec);
  assert.equal((await ovsInterface(spec.port))?.externalIds, {
    'iface-id': spec.ifaceId,
    sandbox: spec.sandbox,
    'pod-if-name': 'eth0',
    [OWNER_KEY]: OWNER_VALUE,
    'vdpa-k8s-network': 'net-a',
  });
});

test('plugging the same attachment again updates it in place (may-exist) and keeps keys others set', async () => {
  const spec = await attachment({ podUid: 'uid-1', ipAddresses: ['10.0.0.1/24'], mac: '02:00:00:00:00:01' });
  const first = await plugPort(suite.client, spec);
  await run('ovs-vsctl', ['set', 'Interface', spec.port, 'external_ids:ovn-installed=true', 'external_ids:ovn-installed-ts=1']);
  const again = await plugPort(suite.client, { ...spec, podUid: null, ipAddresses: ['10.0.0.2/24'] });
  assert.not.ok(again.created);
  assert.is(again.portUuid, first.portUuid);
  assert.is(again.interfaceUuid, first.interfaceUuid);
  assert.is(await portsNamed(spec.port), 1);
  assert.equal((await ovsInterface(spec.port))?.externalIds, {
    attached_mac: '02:00:00:00:00:01',
    'iface-id': spec.ifaceId,
    sandbox: spec.sandbox,
    'pod-if-name': 'eth0',
    ip_addresses: '10.0.0.2/24',
    [OWNER_KEY]: OWNER_VALUE,
    'vdpa-k8s-network': 'net-a',
    'ovn-installed': 'true',
    'ovn-installed-ts': '1',
  });
  assert.equal((await ovsPort(spec.port))?.otherConfig, { transient: 'true' });
});

test('a port not created by vdpa-cni on the representor (added by hand) is refused and left exactly as it was', async () => {
  const spec = await attachment();
  await run('ovs-vsctl', ['add-port', BRIDGE, spec.port, '--', 'set', 'Interface', spec.port, 'external_ids:owner=admin']);
  const err = (await plugPort(suite.client, { ...spec, replaceable: async () => true }).catch((e: unknown) => e)) as PortConflictError;
  assert.instance(err, PortConflictError);
  assert.match(err.message, `OVS interface ${spec.port} was not created by vdpa-cni (owner=admin); refusing to plug`);
  assert.equal(err.holders.map((h) => [h.name, h.ours]), [[spec.port, false]]);
  assert.equal((await ovsInterface(spec.port))?.externalIds, { owner: 'admin' });
  assert.is((await ovsPort(spec.port))?.bridge, BRIDGE);
});

test('the same iface-id under another name: a foreign port (another CNI) is refused; a port of ours is replaced only when its attachment is gone', async () => {
  // ovn-kubernetes' own port for the pod, with the iface-id our template gives.
  const [foreign] = await ovn.createVeth();
  const ifaceId = `${ovn.prefix}-ns_pod`;
  await run('ovs-vsctl', ['add-port', BRIDGE, foreign, '--', 'set', 'Interface', foreign, `external_ids:iface-id=${ifaceId}`, 'external_ids:sandbox=ovnk']);
  const fresh = await attachment({ ifaceId });
  const err = (await plugPort(suite.client, { ...fresh, replaceable: async () => true }).catch((e: unknown) => e)) as PortConflictError;
  assert.instance(err, PortConflictError);
  assert.equal(err.holders.map((h) => h.name), [foreign]);
  assert.is(await ovsPort(fresh.port), undefined, 'nothing plugged');
  assert.equal((await ovsInterface(foreign))?.externalIds, { 'iface-id': ifaceId, sandbox: 'ovnk' }, 'foreign row unchanged');
  await run('ovs-vsctl', ['del-port', foreign]);

  const old = await attachment({ ifaceId });
  await plugPort(suite.client, old);
  const asked: string[] = [];
  const alive = (await plugPort(suite.client, { ...fresh, replaceable: async (h) => (asked.push(h.name), false) }).catch((e: unknown) => e)) as PortConflictError;
  assert.instance(alive, PortConflictError);
  assert.equal(asked, [old.port]);
  assert.equal(alive.holders.map((h) => [h.name, h.ours, h.sandbox]), [[old.port, true, old.sandbox]]);
  assert.is((await ovsPort(old.port))?.bridge, BRIDGE, 'a live attachment keeps its port');

  const r = await plugPort(suite.client, { ...fresh, replaceable: async (h) => h.sandbox === old.sandbox });
  assert.ok(r.created);
  assert.equal(r.replaced, [old.port]);
  assert.is(await ovsInterface(old.port), undefined, 'the gone Interface row went with its Port');
  const holders = (await run('ovs-vsctl', ['--bare', '--columns=name', 'find', 'Interface', `external_ids:iface-id=${ifaceId}`])).stdout;
  assert.equal(holders.split('\n').filter(Boolean), [fresh.port]);
});

test('a representor serving another attachment is refused by name and left untouched', async () => {
  const a = await attachment({ podUid: 'uid-a' });
  await plugPort(suite.client, a);
  const before = await ovsInterface(a.port);
  const cases: [string, Partial<PlugPortSpec>, RegExp][] = [
    ['another pod (iface-id)', { ifaceId: `${ovn.prefix}-ns_other`, sandbox: 'sandbox-b' }, new RegExp(`iface-id=${a.ifaceId}, sandbox=${a.sandbox}`)],
    ['same pod name, another sandbox', { sandbox: 'sandbox-b' }, new RegExp(`sandbox=${a.sandbox}`)],
    ['same sandbox, another interface', { podIfName: 'net1' }, /pod-if-name=eth0/],
  ];
  for (const [what, over, why] of cases) {
    const err = (await plugPort(suite.client, { ...a, ...over }).catch((e: unknown) => e)) as Error;
    assert.instance(err, PortConflictError, what);
    assert.match(err.message, `OVS interface ${a.port} already serves another attachment`, what);
    assert.match(err.message, why, what);
    assert.equal(await ovsInterface(a.port), before, `${what}: row unchanged`);
  }
});

test('a port on another bridge is refused; a missing bridge fails with BridgeMissingError and writes nothing', async () => {
  const other = await ovn.createBridge();
  const spec = await attachment();
  // A port of this very attachment, but on another bridge.
  const ours = [`external_ids:${OWNER_KEY}=${OWNER_VALUE}`, `external_ids:sandbox=${spec.sandbox}`, `external_ids:pod-if-name=${spec.podIfName}`];
  await run('ovs-vsctl', ['add-port', other, spec.port, '--', 'set', 'Interface', spec.port, ...ours]);
  const err = (await plugPort(suite.client, spec).catch((e: unknown) => e)) as Error;
  assert.instance(err, PortConflictError);
  assert.match(err.message, `OVS interface ${spec.port} is already a port of bridge ${other}, not ${BRIDGE}`);

  const lone = await attachment({ bridge: `${ovn.prefix}nobr` });
  const missing = (await plugPort(suite.client, lone).catch((e: unknown) => e)) as Error;
  assert.instance(missing, BridgeMissingError);
  assert.is(missing.message, `OVS bridge ${ovn.prefix}nobr does not exist`);
  assert.is(await ovsInterface(lone.port), undefined);
});

test('externalIds may not override a key plugPort manages', async () => {
  const spec = await attachment({ externalIds: { 'iface-id': 'sneaky' } });
  const err = (await plugPort(suite.client, spec).catch((e: unknown) => e)) as Error;
  assert.match(err.message, 'externalIds.iface-id: set by plugPort itself');
  assert.is(await ovsInterface(spec.port), undefined);
});

test('concurrent plugs: distinct ports all land; two plugs racing for one iface-id: one wins, the other is refused', async () => {
  const specs = await Promise.all(Array.from({ length: 8 }, () => attachment()));
  const clients = await Promise.all(specs.map(() => OvsdbClient.connect(OVSDB_SOCK)));
  try {
    await Promise.all(specs.map((s, i) => plugPort(clients[i]!, s)));
    for (const s of specs) assert.is((await ovsPort(s.port))?.bridge, BRIDGE);

    const shared = `${ovn.prefix}-ns_shared`;
    const racers = await Promise.all([attachment({ ifaceId: shared }), attachment({ ifaceId: shared })]);
    const outcomes = await Promise.allSettled(racers.map((s, i) => plugPort(clients[i]!, s)));
    assert.equal(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected'], 'the loser is refused, the winner keeps its port');
    const holders = (await run('ovs-vsctl', ['--bare', '--columns=name', 'find', 'Interface', `external_ids:iface-id=${shared}`])).stdout;
    assert.is(holders.split('\n').filter(Boolean).length, 1, holders);
  } finally {
    for (const c of clients) c.close();
  }
});

test('unplugPort removes the port; again it reports absent; with an owner it spares the next pod', async () => {
  const spec = await attachment();
  await plugPort(suite.client, spec);
  const owner = { sandbox: spec.sandbox, podIfName: spec.podIfName };
  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port, owner }), { status: 'removed' });
  assert.is(await ovsPort(spec.port), undefined);
  assert.is(await ovsInterface(spec.port), undefined);
  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port, owner }), { status: 'absent' });

  // The VF went to pod B before pod A's DEL ran: A's DEL must not take B's port away.
  const b = { ...spec, ifaceId: `${ovn.prefix}-ns_b`, sandbox: 'sandbox-b' };
  await plugPort(suite.client, b);
  const r = await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port, owner });
  assert.is(r.status, 'foreign');
  assert.is(r.status === 'foreign' ? r.externalIds.sandbox : '', 'sandbox-b');
  assert.is((await ovsPort(spec.port))?.bridge, BRIDGE);
  assert.equal(await unplugPort(suite.client, { bridge: `${ovn.prefix}nobr`, port: spec.port }), { status: 'absent' }, 'not on that bridge');
  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port }), { status: 'removed' }, 'no owner: unconditional');
});

async function cfg(column: 'next_cfg' | 'cur_cfg'): Promise<number> {
  return Number(await get('Open_vSwitch', '.', column));
}
const flagsOf = async (name: string): Promise<string> => /<([^>]*)>/.exec((await run('ip', ['-o', 'link', 'show', name])).stdout)?.[1] ?? '';

test('unplugPort with applyTimeoutMs returns once ovs-vswitchd has applied the removal and closed the netdev', async () => {
  const spec = await attachment();
  await plugPort(suite.client, spec);
  await run('ovs-vsctl', ['--timeout=5', 'wait-until', 'Interface', spec.port, 'ofport>0']);
  assert.match(await flagsOf(spec.port), /\bPROMISC\b/, 'vswitchd opened the netdev');
  const before = await cfg('next_cfg');

  const r = await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port, applyTimeoutMs: 5000 });
  assert.equal(r, { status: 'removed', applied: true });
  // Read right away: the removal bumped next_cfg, and vswitchd has caught up with it.
  assert.ok((await cfg('cur_cfg')) > before, 'cur_cfg reached the bumped next_cfg');
  assert.not.match(await flagsOf(spec.port), /\bPROMISC\b/, 'vswitchd closed the netdev and restored its flags');
  assert.is(await ovsPort(spec.port), undefined);
  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port, applyTimeoutMs: 5000 }), { status: 'absent' });
});

test('waitApplied: true at once for a configuration already applied, false when ovs-vswitchd never gets there', async () => {
  const cur = await cfg('cur_cfg');
  assert.is(await waitApplied(suite.client, cur, 5000), true);
  assert.is(await waitApplied(suite.client, cur + 1_000_000, 300), false);
  assert.equal(await suite.client.echo('still usable'), ['still usable']);
});

test('findOwnedPorts finds our ports by sandbox, by sandbox + pod-if-name, or all; unplugPort removes them', async () => {
  const sandbox = `${ovn.prefix}-pod1`;
  const eth0 = await attachment({ sandbox, podIfName: 'eth0' });
  const net1 = await attachment({ sandbox, podIfName: 'net1' });
  const elsewhere = await attachment();
  for (const s of [eth0, net1, elsewhere]) await plugPort(suite.client, s);
  // Same sandbox id, but not ours: no owner mark.
  const [unmarked] = await ovn.createVeth();
  await run('ovs-vsctl', ['add-port', BRIDGE, unmarked, '--', 'set', 'Interface', unmarked, `external_ids:sandbox=${sandbox}`]);
  await run('ovs-vsctl', ['set', 'Interface', eth0.port, 'external_ids:ovn-installed=true']);

  const bySandbox = await findOwnedPorts(suite.client, { sandbox });
  assert.equal(bySandbox.map((p) => p.name), [eth0.port, net1.port].sort());
  const one = await findOwnedPorts(suite.client, { sandbox, podIfName: 'net1' });
  assert.equal(one.map((p) => [p.name, p.bridge, p.ifaceId, p.sandbox, p.podIfName, p.ovnInstalled]), [
    [net1.port, BRIDGE, net1.ifaceId, sandbox, 'net1', false],
  ]);
  assert.ok(bySandbox.find((p) => p.name === eth0.port)?.ovnInstalled);
  const all = (await findOwnedPorts(suite.client)).filter((p) => p.name.startsWith(ovn.prefix)).map((p) => p.name);
  assert.ok([eth0.port, net1.port, elsewhere.port].every((n) => all.includes(n)));
  assert.not.ok(all.includes(unmarked));
  assert.equal(await findOwnedPorts(suite.client, { sandbox: `${ovn.prefix}-nobody` }), []);

  for (const port of [eth0.port, net1.port]) assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port }), { status: 'removed' });
  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: `${ovn.prefix}gone` }), { status: 'absent' });
  assert.equal(await findOwnedPorts(suite.client, { sandbox }), []);
  assert.is((await ovsPort(elsewhere.port))?.bridge, BRIDGE, 'other ports stay');
});

test('ovsStatus reports the bridge and hw-offload; the setting is restored afterwards', async () => {
  const previous = (await run('ovs-vsctl', ['--if-exists', 'get', 'Open_vSwitch', '.', 'other_config:hw-offload'])).stdout.trim();
  try {
    await run('ovs-vsctl', ['remove', 'Open_vSwitch', '.', 'other_config', 'hw-offload']);
    const off = await ovsStatus(suite.client, BRIDGE);
    assert.equal([off.bridgeExists, off.hwOffload], [true, false]);
    assert.match(off.ovsVersion ?? '', /^\d+\.\d+/);
    await run('ovs-vsctl', ['set', 'Open_vSwitch', '.', 'other_config:hw-offload=true', 'other_config:tc-policy=skip_sw']);
    const on = await ovsStatus(suite.client, BRIDGE);
    assert.equal([on.hwOffload, on.tcPolicy], [true, 'skip_sw']);
    assert.is((await ovsStatus(suite.client, `${ovn.prefix}nobr`)).bridgeExists, false);
  } finally {
    await run('ovs-vsctl', ['remove', 'Open_vSwitch', '.', 'other_config', 'hw-offload', 'tc-policy']);
    if (previous) await run('ovs-vsctl', ['set', 'Open_vSwitch', '.', `other_config:hw-offload=${previous}`]);
  }
});

test.run();

// waitInstalled against the real ovn-controller, and two netns "pods" whose veth peers are
// plugged with plugPort pinging each other through OVN.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OvsdbClient } from '../../host/ovsdb.js';
import { plugPort, unplugPort, type PlugPortSpec } from '../../host/ovs-plug.js';
import { waitInstalled } from '../../host/ovs-watch.js';
import { BRIDGE, ovnSuite, OVSDB_SOCK, ovsInterface, ping, type Pod, run } from '../support/ovn.js';

const suite = ovnSuite(test);
const { ovn } = suite;
let ls: string;
test.before(async () => {
  ls = await ovn.createLogicalSwitch();
});

let host = 10;
/** A pod with a unique MAC/IP on 10.77.0.0/16 and the plug spec for its representor. */
async function pod(ifaceId = ovn.name('lsp')): Promise<{ pod: Pod; spec: PlugPortSpec; ip: string }> {
  const n = ++host;
  const ip = `10.77.0.${n}`;
  const mac = `0a:58:0a:4d:00:${n.toString(16).padStart(2, '0')}`;
  const p = await ovn.createPod({ mac, cidr: `${ip}/16` });
  const spec: PlugPortSpec = {
    bridge: BRIDGE,
    port: p.rep,
    ifaceId,
    sandbox: `${ovn.prefix}-sb${n}`,
    podIfName: p.ifname,
    network: 'net-a',
    mac,
    ipAddresses: [`${ip}/16`],
  };
  return { pod: p, spec, ip };
}

async function portBindingChassis(lsp: string): Promise<string> {
  return (await run('ovn-sbctl', ['--bare', '--columns=chassis', 'find', 'Port_Binding', `logical_port=${lsp}`])).stdout.trim();
}

test('waitInstalled resolves once ovn-controller binds the port of a matching Logical_Switch_Port', async () => {
  const { spec, ip } = await pod();
  await ovn.addLogicalPort(ls, spec.ifaceId, spec.mac!, [ip]);
  await plugPort(suite.client, spec);
  await waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 20_000 });
  const ids = (await ovsInterface(spec.port))?.externalIds;
  assert.is(ids?.['ovn-installed'], 'true');
  assert.ok(ids?.['ovn-installed-ts']);
  assert.ok(await portBindingChassis(spec.ifaceId), 'the Port_Binding is claimed by this chassis');
});

test('waitInstalled sees the binding as it happens: the LSP appears only after waiting started', async () => {
  const { spec, ip } = await pod();
  await plugPort(suite.client, spec);
  let settled = false;
  const waiting = waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 20_000 }).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok(settled, 'still waiting while no LSP exists');
  assert.not.ok((await ovsInterface(spec.port))?.externalIds['ovn-installed'], 'not installed before the LSP exists');
  await ovn.addLogicalPort(ls, spec.ifaceId, spec.mac!, [ip]);
  await waiting;
  assert.is((await ovsInterface(spec.port))?.externalIds['ovn-installed'], 'true', 'resolved because OVN installed the port');
});

test('waitInstalled times out cleanly when no LSP matches, and the client stays usable', async () => {
  const { spec } = await pod();
  await plugPort(suite.client, spec);
  const t0 = Date.now();
  const err = (await waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 800 }).catch((e: unknown) => e)) as Error;
  const took = Date.now() - t0;
  assert.is(err.message, `timed out waiting for OVN to install flows for ${spec.port} (iface-id ${spec.ifaceId})`);
  assert.ok(took >= 790 && took < 5000, `took ${took} ms`);
  assert.equal(await suite.client.echo('still', 'here'), ['still', 'here']);
});

test('waitInstalled: OVS errors on the interface are named in the timeout message', async () => {
  const spec: PlugPortSpec = { bridge: BRIDGE, port: ovn.name('gone'), ifaceId: ovn.name('lsp'), sandbox: 's', podIfName: 'eth0', network: 'net-a' };
  await plugPort(suite.client, spec);
  const err = (await waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 1500 }).catch((e: unknown) => e)) as Error;
  assert.match(err.message, `timed out waiting for OVN to install flows for ${spec.port} (iface-id ${spec.ifaceId}); OVS reports: `);
  assert.match(err.message, /No such device/);
  await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port });
});

test('waitInstalled aborts when the iface-id changes, the row goes, the signal fires, or there is no such interface', async () => {
  const { spec } = await pod();
  await plugPort(suite.client, spec);
  const changed = waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 10_000 }).catch((e: Error) => e.message);
  await run('ovs-vsctl', ['set', 'Interface', spec.port, `external_ids:iface-id=${ovn.prefix}-other`]);
  assert.is(await changed, `iface-id of ${spec.port} changed to ${ovn.prefix}-other while waiting for OVN to install ${spec.ifaceId}`);

  await run('ovs-vsctl', ['set', 'Interface', spec.port, `external_ids:iface-id=${spec.ifaceId}`]);
  const removed = waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 10_000 }).catch((e: Error) => e.message);
  await unplugPort(suite.client, { bridge: BRIDGE, port: spec.port });
  assert.is(await removed, `OVS interface ${spec.port} was removed while waiting for OVN`);

  await plugPort(suite.client, spec);
  const ac = new AbortController();
  const aborted = waitInstalled(suite.client, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 10_000, signal: ac.signal }).catch((e: Error) => e.message);
  ac.abort(new Error('CNI DEL arrived'));
  assert.is(await aborted, 'CNI DEL arrived');

  const none = await waitInstalled(suite.client, { iface: ovn.name('none'), ifaceId: 'x', timeoutMs: 10_000 }).catch((e: Error) => e.message);
  assert.match(String(none), /^no OVS interface named o\w+ to wait on$/);
});

test('waitInstalled fails fast when the OVSDB connection drops', async () => {
  const { spec } = await pod();
  await plugPort(suite.client, spec);
  const own = await OvsdbClient.connect(OVSDB_SOCK);
  const waiting = waitInstalled(own, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 10_000 }).catch((e: Error) => e.message);
  await new Promise((r) => setTimeout(r, 50));
  own.close();
  assert.match(String(await waiting), `lost OVSDB connection while waiting for OVN to install flows for ${spec.port}`);
});

test('two pods plugged with plugPort ping each other through OVN; unplugging one cuts it off', async () => {
  const a = await pod();
  const b = await pod();
  for (const x of [a, b]) {
    await ovn.addLogicalPort(ls, x.spec.ifaceId, x.spec.mac!, [x.ip]);
    await plugPort(suite.client, x.spec);
  }
  await Promise.all([a, b].map((x) => waitInstalled(suite.client, { iface: x.spec.port, ifaceId: x.spec.ifaceId, timeoutMs: 20_000 })));
  const ab = await ping(a.pod, b.ip);
  assert.ok(ab.ok, ab.output);
  assert.match(ab.output, /3 packets transmitted, 3 received, 0% packet loss/);
  const ba = await ping(b.pod, a.ip);
  assert.ok(ba.ok, ba.output);

  assert.equal(await unplugPort(suite.client, { bridge: BRIDGE, port: b.spec.port }), { status: 'removed' });
  const cut = await ping(a.pod, b.ip, 2);
  assert.not.ok(cut.ok, 'no path once the port is gone: traffic really went through br-int');
});

test.run();

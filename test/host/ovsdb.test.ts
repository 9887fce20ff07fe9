// The OVSDB client against the real ovsdb-server (transact, errors, monitors, awkward strings),
// plus a scripted peer on a TCP socket for what the real server won't do on demand
// (send echo, split messages at odd places, never answer).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server, type Socket } from 'node:net';
import {
  applyMapDiff,
  JsonStreamSplitter,
  OvsdbClient,
  OvsdbError,
  namedUuid,
  ovsMap,
  ovsSet,
  parseRemote,
  stringMap,
  uuidOf,
  type RowUpdate,
  type RowUpdate2,
  type TableUpdates,
} from '../../host/ovsdb.js';
import { BRIDGE, ovnSuite, ovsInterface, run } from '../support/ovn.js';

const suite = ovnSuite(test);
const { ovn } = suite;

/** One internal port (no netdev needed for OVSDB-level checks) with the given external_ids. */
async function addPort(name: string, externalIds: Record<string, string>): Promise<string> {
  const [iface] = await suite.client.transact('Open_vSwitch', [
    { op: 'insert', table: 'Interface', row: { name, type: 'internal', external_ids: ovsMap(externalIds) }, 'uuid-name': 'i' },
    { op: 'insert', table: 'Port', row: { name, interfaces: namedUuid('i') }, 'uuid-name': 'p' },
    { op: 'mutate', table: 'Bridge', where: [['name', '==', BRIDGE]], mutations: [['ports', 'insert', ovsSet([namedUuid('p')])]] },
  ]);
  return iface.uuid;
}

// ---- framing ----

const AWKWARD = 'a{b}c[d]e"f\\g}}]]{{ ü 🙂 \u0001 end\\';

test('splitter: concatenated values, braces and quotes inside strings, whitespace between', () => {
  const values = [{ id: 1, result: [{ s: AWKWARD }] }, [1, { x: '}' }], { method: 'echo', params: ['"]}'], id: 'echo' }];
  const wire = Buffer.from(values.map((v) => JSON.stringify(v)).join(' \n\t'));
  assert.equal(new JsonStreamSplitter().push(wire).map((t) => JSON.parse(t)), values);
});

test('splitter: the same stream cut at every byte (multi-byte UTF-8 split too) yields the same values', () => {
  const values = [{ a: AWKWARD }, { b: ['🙂', '\\"', '{'] }, { c: 'ü'.repeat(50) }];
  const wire = Buffer.from(values.map((v) => JSON.stringify(v)).join(''));
  for (let cut = 1; cut < wire.length; cut++) {
    const s = new JsonStreamSplitter();
    const got = [...s.push(wire.subarray(0, cut)), ...s.push(wire.subarray(cut))].map((t) => JSON.parse(t));
    assert.equal(got, values, `cut at ${cut}`);
  }
  const s = new JsonStreamSplitter();
  const byteByByte = [...wire].flatMap((b) => s.push(Buffer.from([b]))).map((t) => JSON.parse(t));
  assert.equal(byteByByte, values);
});

test('splitter: garbage between messages is a protocol error', () => {
  assert.throws(() => new JsonStreamSplitter().push(Buffer.from('{"a":1} x')), /unexpected byte 0x78/);
});

test('remotes: unix and tcp (v4, v6) parse; anything else is refused by name', () => {
  assert.equal(parseRemote('unix:/var/run/openvswitch/db.sock'), { path: '/var/run/openvswitch/db.sock' });
  assert.equal(parseRemote('tcp:127.0.0.1:6640'), { host: '127.0.0.1', port: 6640 });
  assert.equal(parseRemote('tcp:[::1]:6640'), { host: '::1', port: 6640 });
  assert.throws(() => parseRemote('ssl:1.2.3.4:6640'), /unsupported OVSDB remote "ssl:1.2.3.4:6640"/);
  assert.throws(() => parseRemote('/var/run/openvswitch/db.sock'), /unsupported OVSDB remote/);
});

// ---- the real server ----

test('list_dbs and echo against ovsdb-server', async () => {
  assert.ok((await suite.client.listDbs()).includes('Open_vSwitch'));
  assert.equal(await suite.client.echo('x', { y: ['}'] }), ['x', { y: ['}'] }]);
});

test('transact: typed results for insert, select, mutate, wait', async () => {
  const name = ovn.name('t');
  const ifaceUuid = await addPort(name, { k: 'v' });
  const [sel, mut, wait] = await suite.client.transact('Open_vSwitch', [
    { op: 'select', table: 'Interface', where: [['name', '==', name]], columns: ['_uuid', 'external_ids'] },
    { op: 'mutate', table: 'Interface', where: [['name', '==', name]], mutations: [['external_ids', 'insert', ovsMap({ k2: 'v2' })]] },
    { op: 'wait', table: 'Interface', where: [['name', '==', name]], columns: ['name'], until: '==', rows: [{ name }], timeout: 0 },
  ]);
  assert.is(sel.rows.length, 1);
  assert.is(uuidOf(sel.rows[0]!._uuid), ifaceUuid);
  assert.equal(stringMap(sel.rows[0]!.external_ids), { k: 'v' });
  assert.is(mut.count, 1);
  assert.equal(wait, {});
  assert.equal((await ovsInterface(name))?.externalIds, { k: 'v', k2: 'v2' });
});

test('transact: a refused operation names its position, the operation and the reason; nothing is applied', async () => {
  const name = ovn.name('t');
  await addPort(name, {});
  const err = await suite.client
    .transact('Open_vSwitch', [
      { op: 'mutate', table: 'Interface', where: [['name', '==', name]], mutations: [['external_ids', 'insert', ovsMap({ a: '1' })]] },
      { op: 'wait', table: 'Interface', where: [['name', '==', name]], columns: ['name'], until: '!=', rows: [{ name }], timeout: 0 },
    ])
    .catch((e: unknown) => e);
  assert.instance(err, OvsdbError);
  const e = err as OvsdbError;
  assert.is(e.opIndex, 1);
  assert.is(e.error, 'timed out');
  assert.match(e.message, `failed at operation 2 of 2 (wait Interface where name == "${name}"): timed out`);
  assert.equal((await ovsInterface(name))?.externalIds, {}, 'the mutate before the failed wait was rolled back');

  const bad = (await suite.client
    .transact('Open_vSwitch', [{ op: 'select', table: 'NoSuchTable', where: [] }])
    .catch((x: unknown) => x)) as OvsdbError;
  assert.instance(bad, OvsdbError);
  assert.match(bad.message, /operation 1 of 1 \(select NoSuchTable\): syntax error: .*No table named NoSuchTable/);
});

test('transact: a failed commit (duplicate Interface name) is reported as the commit, with the server details', async () => {
  const name = ovn.name('t');
  await addPort(name, {});
  const err = (await addPort(name, {}).catch((e: unknown) => e)) as OvsdbError;
  assert.instance(err, OvsdbError);
  assert.is(err.opIndex, undefined);
  assert.is(err.error, 'constraint violation');
  assert.match(err.message, /failed to commit: constraint violation: .*identical values \(.*\) for index on column "name"/);
});

test('transact: awkward strings and a value far larger than one socket read round-trip exactly', async () => {
  const name = ovn.name('t');
  const big = `${AWKWARD}${'x{"}'.repeat(100_000)}`;
  await addPort(name, { awkward: AWKWARD, 'k"}{': 'v]', big });
  const [sel] = await suite.client.transact('Open_vSwitch', [
    { op: 'select', table: 'Interface', where: [['external_ids', 'includes', ovsMap({ awkward: AWKWARD })]], columns: ['name', 'external_ids'] },
  ]);
  assert.is(sel.rows.length, 1);
  assert.equal(stringMap(sel.rows[0]!.external_ids), { awkward: AWKWARD, 'k"}{': 'v]', big });
  const seen = await ovsInterface(name);
  assert.is(seen?.externalIds.awkward, AWKWARD, 'ovs-vsctl reads the same bytes we wrote');
  assert.is(seen?.externalIds.big?.length, big.length);
});

test('monitor: initial rows, then insert / modify / delete updates in order', async () => {
  const name = ovn.name('t');
  const updates: TableUpdates<RowUpdate>[] = [];
  const m = await suite.client.monitor('Open_vSwitch', { Interface: { columns: ['name', 'external_ids'] } }, (u) => updates.push(u));
  assert.ok(Object.values(updates[0]?.Interface ?? {}).some((u) => u.new?.name === 'br-int'), 'initial contents come first');
  const id = await addPort(name, { step: '1' });
  await suite.client.transact('Open_vSwitch', [
    { op: 'mutate', table: 'Interface', where: [['name', '==', name]], mutations: [['external_ids', 'insert', ovsMap({ step2: 'y' })]] },
  ]);
  await run('ovs-vsctl', ['del-port', name]);
  await waitUntil(() => updates.filter((u) => u.Interface?.[id]).length >= 3);
  const mine = updates.map((u) => u.Interface?.[id]).filter((u) => u !== undefined);
  assert.equal(stringMap(mine[0]!.new!.external_ids), { step: '1' });
  assert.is(mine[0]!.old, undefined);
  assert.equal(stringMap(mine[1]!.new!.external_ids), { step: '1', step2: 'y' });
  assert.equal(stringMap(mine[1]!.old!.external_ids), { step: '1' });
  assert.is(mine[2]!.new, undefined);
  await m.cancel();
});

test('monitor_cond: only the matching row, update2 diffs rebuild the map, nothing after cancel', async () => {
  const name = ovn.name('t');
  const other = ovn.name('t');
  const seen: TableUpdates<RowUpdate2>[] = [];
  const m = await suite.client.monitorCond(
    'Open_vSwitch',
    { Interface: { where: [['name', '==', name]], columns: ['name', 'external_ids'] } },
    (u) => seen.push(u),
  );
  assert.equal(seen, [{}], 'initial contents: no such row yet');
  await addPort(other, {});
  const id = await addPort(name, { a: '1', b: '2' });
  await run('ovs-vsctl', ['set', 'Interface', name, 'external_ids:a=9', 'external_ids:c=3']);
  await run('ovs-vsctl', ['remove', 'Interface', name, 'external_ids', 'b']);
  await waitUntil(() => seen.length >= 4);
  let ids: Record<string, string> = {};
  for (const u of seen.slice(1)) {
    assert.equal(Object.keys(u.Interface ?? {}), [id], 'only the watched row is reported');
    const r = u.Interface![id]!;
    if (r.kind === 'insert') ids = stringMap(r.row.external_ids);
    else if (r.kind === 'modify') ids = applyMapDiff(ids, r.diff.external_ids);
  }
  assert.equal(ids, { a: '9', c: '3' });
  assert.equal(ids, (await ovsInterface(name))?.externalIds);
  await m.cancel();
  const before = seen.length;
  await run('ovs-vsctl', ['set', 'Interface', name, 'external_ids:d=4']);
  await suite.client.echo();
  assert.is(seen.length, before, 'no notifications after monitor_cancel');
});

test('connect: a missing socket fails with the remote named', async () => {
  const err = (await OvsdbClient.connect('unix:/nonexistent/db.sock').catch((e: unknown) => e)) as Error;
  assert.match(err.message, 'cannot connect to OVSDB at unix:/nonexistent/db.sock: connect ENOENT');
});

// ---- a scripted peer ----

async function peer(script: (sock: Socket) => void): Promise<{ server: Server; remote: string }> {
  const server = createServer(script);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no tcp address');
  return { server, remote: `tcp:127.0.0.1:${addr.port}` };
}

test('tcp: answers the server echo with the same id and params; responses split mid-string are reassembled', async () => {
  let echoReply: unknown;
  const { server, remote } = await peer((sock) => {
    const s = new JsonStreamSplitter();
    sock.write('{"method":"echo","params":["ka}"],"id":"echo"}');
    sock.on('data', (d: Buffer) => {
      for (const t of s.push(d)) {
        const msg = JSON.parse(t) as { id: unknown; method?: string; result?: unknown };
        if (msg.id === 'echo') echoReply = msg;
        else if (msg.method === 'list_dbs') {
          const reply = Buffer.from(JSON.stringify({ id: msg.id, result: ['Open_vSwitch', AWKWARD], error: null }));
          sock.write(reply.subarray(0, 17));
          setTimeout(() => sock.write(reply.subarray(17)), 20);
        }
      }
    });
  });
  const c = await OvsdbClient.connect(remote);
  try {
    assert.equal(await c.listDbs(), ['Open_vSwitch', AWKWARD]);
    assert.equal(echoReply, { id: 'echo', result: ['ka}'], error: null });
  } finally {
    c.close();
    server.close();
  }
});

test('tcp: a request the server never answers times out; closing fails pending requests and tells listeners', async () => {
  const { server, remote } = await peer(() => undefined);
  const c = await OvsdbClient.connect(remote, { requestTimeoutMs: 150 });
  try {
    const t0 = Date.now();
    const err = (await c.echo().catch((e: unknown) => e)) as Error;
    assert.match(err.message, `OVSDB echo on ${remote} timed out after 150 ms`);
    assert.ok(Date.now() - t0 >= 140);
    const closed: string[] = [];
    c.onClose((e) => closed.push(e.message));
    const pending = c.transact('Open_vSwitch', [{ op: 'comment', comment: 'x' }], { timeoutMs: 5000 }).then(() => 'answered', (e: Error) => e.message);
    c.close();
    assert.match(await pending, 'closed by the client');
    assert.equal(closed, [`OVSDB connection to ${remote} closed by the client`]);
    assert.ok(c.closed);
  } finally {
    server.close();
  }
});

test('tcp: the server dropping the connection rejects pending requests', async () => {
  const { server, remote } = await peer((sock) => sock.on('data', () => sock.destroy()));
  const c = await OvsdbClient.connect(remote);
  try {
    const err = (await c.echo().catch((e: unknown) => e)) as Error;
    assert.match(err.message, `OVSDB connection to ${remote} closed`);
  } finally {
    server.close();
  }
});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test.run();

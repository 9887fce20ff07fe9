/**
 * Logical_Switch_Ports of ours in the OVN Northbound database (ovn.mode "managed"), over the same
 * OVSDB client as the Open_vSwitch database. A port of ours carries the owner mark and the
 * attachment (sandbox, pod-if-name, network) in its external_ids; a port without the mark is
 * never changed or removed. Writes are guarded like the OVS plug (host/ovs-plug.ts): read, then
 * one transaction that starts with `wait` on what was read.
 */
import {
  namedUuid,
  OvsdbError,
  ovsMap,
  ovsSet,
  stringMap,
  stringOf,
  uuid,
  uuidOf,
  type Operation,
  type OvsdbClient,
  type Row,
  type WaitOp,
} from './ovsdb.js';
import { eq, NETWORK_KEY, OWNER_KEY, OWNER_VALUE, select } from './ovs-ports.js';

const NB = 'OVN_Northbound';
const GUARD_RETRIES = 5;

export interface LspSpec {
  readonly logicalSwitch: string;
  readonly name: string;
  /** `"<mac> <ip> <ip>"`, or `"unknown"` when the MAC is not known (vhost without a MAC). */
  readonly addresses: string;
  /** The same entry when the MAC is known: only that MAC and those addresses may leave the port. */
  readonly portSecurity: string | null;
  readonly sandbox: string;
  readonly podIfName: string;
  readonly network: string;
  /** The pod UID: ovn-controller then binds the port only to an Interface with the same iface-id-ver. */
  readonly ifaceIdVer: string | null;
}

export interface OwnedLsp {
  readonly name: string;
  readonly sandbox: string | undefined;
  readonly podIfName: string | undefined;
  readonly network: string | undefined;
}

/** A port of that name exists and is not this attachment's. */
export class LspConflictError extends Error {
  override name = 'LspConflictError';
  constructor(
    message: string,
    /** Ours (owner mark), for another attachment. */
    readonly ours: boolean,
    readonly holder: OwnedLsp,
  ) {
    super(message);
  }
}

export class LogicalSwitchMissingError extends Error {
  override name = 'LogicalSwitchMissingError';
  constructor(readonly logicalSwitch: string) {
    super(`OVN logical switch ${logicalSwitch} does not exist in the Northbound database`);
  }
}

const ownedOf = (r: Row): OwnedLsp => {
  const ids = stringMap(r.external_ids);
  return { name: stringOf(r.name) ?? '', sandbox: ids.sandbox, podIfName: ids['pod-if-name'], network: ids[NETWORK_KEY] };
};
const isOurs = (r: Row): boolean => stringMap(r.external_ids)[OWNER_KEY] === OWNER_VALUE;
const isGuardTrip = (err: unknown, guards: number): boolean =>
  err instanceof OvsdbError && err.error === 'timed out' && err.opIndex !== undefined && err.opIndex < guards;

/** Detaches a port from every switch that holds it; OVSDB garbage-collects the unreferenced row. */
const detach = (lspUuid: string): Operation => ({
  op: 'mutate',
  table: 'Logical_Switch',
  where: [['ports', 'includes', uuid(lspUuid)]],
  mutations: [['ports', 'delete', ovsSet([uuid(lspUuid)])]],
});

/**
 * Creates the port on its switch, or updates it when it is already this attachment's. A port of
 * that name that is ours but serves another attachment is replaced only when `replaceable` says
 * that attachment is gone; any other is refused (LspConflictError, nothing changed).
 */
export async function createLsp(client: OvsdbClient, spec: LspSpec, replaceable: (holder: OwnedLsp) => Promise<boolean>): Promise<{ created: boolean }> {
  const externalIds = { [OWNER_KEY]: OWNER_VALUE, sandbox: spec.sandbox, 'pod-if-name': spec.podIfName, [NETWORK_KEY]: spec.network };
  const options: Record<string, string> = spec.ifaceIdVer ? { 'iface-id-ver': spec.ifaceIdVer } : {};
  const row: Row = {
    name: spec.name,
    addresses: ovsSet([spec.addresses]),
    port_security: ovsSet(spec.portSecurity ? [spec.portSecurity] : []),
    external_ids: ovsMap(externalIds),
    options: ovsMap(options),
  };
  for (let attempt = 1; ; attempt++) {
    const [sw, existing] = await client.transact(NB, [
      select('Logical_Switch', [eq('name', spec.logicalSwitch)], ['_uuid']),
      select('Logical_Switch_Port', [eq('name', spec.name)], ['_uuid', 'name', 'external_ids']),
    ]);
    if (!sw.rows.length) throw new LogicalSwitchMissingError(spec.logicalSwitch);
    const guards: WaitOp[] = [
      { op: 'wait', table: 'Logical_Switch', where: [eq('name', spec.logicalSwitch)], columns: ['name'], until: '==', rows: [{ name: spec.logicalSwitch }], timeout: 0 },
      {
        op: 'wait', table: 'Logical_Switch_Port', where: [eq('name', spec.name)], columns: ['_uuid', 'external_ids'], until: '==',
        rows: existing.rows.map((r) => ({ _uuid: r._uuid!, external_ids: r.external_ids ?? ovsMap({}) })), timeout: 0,
      },
    ];
    const writes: Operation[] = [];
    let update: string | null = null;
    for (const r of existing.rows) {
      const holder = ownedOf(r);
      const same = isOurs(r) && holder.sandbox === spec.sandbox && holder.podIfName === spec.podIfName;
      if (same && update === null) {
        update = uuidOf(r._uuid);
        continue;
      }
      if (!isOurs(r) || !(await replaceable(holder))) {
        const whose = isOurs(r) ? `already serves another attachment (sandbox=${holder.sandbox}, pod-if-name=${holder.podIfName})` : 'was not created by vdpa-cni';
        throw new LspConflictError(`OVN Logical_Switch_Port ${spec.name} ${whose}; refusing to create it for sandbox=${spec.sandbox}, pod-if-name=${spec.podIfName}`, isOurs(r), holder);
      }
      writes.push(detach(uuidOf(r._uuid)));
    }
    if (update) {
      writes.push({ op: 'update', table: 'Logical_Switch_Port', where: [eq('_uuid', uuid(update))], row });
    } else {
      writes.push(
        { op: 'insert', table: 'Logical_Switch_Port', row, 'uuid-name': 'lsp' },
        { op: 'mutate', table: 'Logical_Switch', where: [eq('name', spec.logicalSwitch)], mutations: [['ports', 'insert', ovsSet([namedUuid('lsp')])]] },
      );
    }
    try {
      await client.transact(NB, [...guards, ...writes]);
      return { created: update === null };
    } catch (err) {
      if (err instanceof OvsdbError && err.opIndex === 0 && err.error === 'timed out') throw new LogicalSwitchMissingError(spec.logicalSwitch);
      if (isGuardTrip(err, guards.length) && attempt < GUARD_RETRIES) continue;
      throw err;
    }
  }
}

/** Removes the port only while it is ours and serves this attachment; 'absent' or 'foreign' otherwise. */
export async function deleteLsp(client: OvsdbClient, name: string, owner: { readonly sandbox: string; readonly podIfName: string }): Promise<'removed' | 'absent' | 'foreign'> {
  for (let attempt = 1; ; attempt++) {
    const [found] = await client.transact(NB, [select('Logical_Switch_Port', [eq('name', name)], ['_uuid', 'name', 'external_ids'])]);
    const mine = found.rows.filter((r) => isOurs(r) && ownedOf(r).sandbox === owner.sandbox && ownedOf(r).podIfName === owner.podIfName);
    if (!mine.length) return found.rows.length ? 'foreign' : 'absent';
    const guard: WaitOp = {
      op: 'wait', table: 'Logical_Switch_Port', where: [eq('name', name)], columns: ['_uuid', 'external_ids'], until: '==',
      rows: found.rows.map((r) => ({ _uuid: r._uuid!, external_ids: r.external_ids ?? ovsMap({}) })), timeout: 0,
    };
    try {
      await client.transact(NB, [guard, ...mine.map((r) => detach(uuidOf(r._uuid)))]);
      return 'removed';
    } catch (err) {
      if (isGuardTrip(err, 1) && attempt < GUARD_RETRIES) continue;
      throw err;
    }
  }
}

/** Ports of ours, for GC. */
export async function findOwnedLsps(client: OvsdbClient): Promise<OwnedLsp[]> {
  const [found] = await client.transact(NB, [
    select('Logical_Switch_Port', [['external_ids', 'includes', ovsMap({ [OWNER_KEY]: OWNER_VALUE })]], ['name', 'external_ids']),
  ]);
  return found.rows.map(ownedOf);
}

/**
 * Port writes: plug a representor into the integration bridge the way ovn-kubernetes does
 * (ovs-vsctl --may-exist add-port … -- set interface … external_ids:…), and remove it again.
 *
 * Writes are optimistic: read what the decision depends on, then write in ONE transaction
 * that starts with `wait` guards asserting those rows are unchanged; a guard that trips
 * (a concurrent writer) makes the whole write start over.
 */
import {
  namedUuid,
  OvsdbError,
  ovsMap,
  ovsSet,
  stringMap,
  uuid,
  uuidOf,
  type MutateOp,
  type Operation,
  type OvsdbClient,
  type WaitOp,
} from './ovsdb.js';
import { DB, eq, ifaceRow, locate, NETWORK_KEY, OWNER_KEY, OWNER_VALUE, select, type IfaceRow, type PortLocation } from './ovs-ports.js';
import { nextCfgOf, requestApply, waitApplied } from './ovs-watch.js';

/** Interface external_ids that plugPort manages (set, or removed when not applicable). */
const MANAGED_KEYS = [
  'attached_mac',
  'iface-id',
  'iface-id-ver',
  'sandbox',
  'pod-if-name',
  'ip_addresses',
  'vf-netdev-name',
  OWNER_KEY,
  NETWORK_KEY,
] as const;

const GUARD_RETRIES = 5;

export interface PlugPortSpec {
  readonly bridge: string;
  /** The representor netdev: both the Port and the Interface are named after it. */
  readonly port: string;
  /** OVN Logical_Switch_Port name. */
  readonly ifaceId: string;
  /** CNI_CONTAINERID. */
  readonly sandbox: string;
  /** CNI_IFNAME. */
  readonly podIfName: string;
  /** The network config's name (GC of one network leaves another's ports alone). */
  readonly network: string;
  /**
   * Whether a port of ours that serves another attachment (on this representor, or with this
   * iface-id) may be replaced: true only when that attachment is provably gone. Ports we do not
   * own are never replaced.
   */
  readonly replaceable?: (holder: PortHolder) => Promise<boolean>;
  /** Pod UID for iface-id-ver; omitted when the runtime did not send one. */
  readonly podUid?: string | null;
  readonly mac?: string | null;
  /** CIDRs, written comma-separated as ip_addresses. */
  readonly ipAddresses?: readonly string[];
  /** The virtio netdev's original host name (vf-netdev-name). */
  readonly vfNetdevName?: string | null;
  /** More Interface external_ids; may not name a key plugPort manages. */
  readonly externalIds?: Readonly<Record<string, string>>;
  /** More Port other_config; transient=true is always set. */
  readonly otherConfig?: Readonly<Record<string, string>>;
}

export interface PlugResult {
  /** false when the same attachment was already plugged and was updated in place. */
  readonly created: boolean;
  readonly portUuid: string;
  readonly interfaceUuid: string;
  /** Ports of gone attachments of ours removed in the same transaction. */
  readonly replaced: readonly string[];
}

/** An Interface row in the way of a plug. */
export interface PortHolder {
  readonly name: string;
  /** Created by vdpa-cni (our owner mark). */
  readonly ours: boolean;
  readonly sandbox: string | undefined;
  readonly podIfName: string | undefined;
  readonly externalIds: Readonly<Record<string, string>>;
}

/** The bridge to plug into does not exist (ovn-controller not up yet, or a typo in netconf). */
export class BridgeMissingError extends Error {
  override name = 'BridgeMissingError';
  constructor(readonly bridge: string) {
    super(`OVS bridge ${bridge} does not exist`);
  }
}

/** The representor is already plugged for another attachment; nothing was changed. */
export class PortConflictError extends Error {
  override name = 'PortConflictError';
  constructor(
    message: string,
    readonly holders: readonly PortHolder[] = [],
  ) {
    super(message);
  }
}

const holderOf = (r: IfaceRow): PortHolder => ({
  name: r.name,
  ours: r.externalIds[OWNER_KEY] === OWNER_VALUE,
  sandbox: r.externalIds.sandbox,
  podIfName: r.externalIds['pod-if-name'],
  externalIds: r.externalIds,
});

/** The keys that say whose a row is; all of them when it has none of those. */
function describeHolder(h: PortHolder): string {
  const ids = Object.entries(h.externalIds);
  const whose = ['iface-id', 'sandbox', 'pod-if-name', OWNER_KEY, NETWORK_KEY].flatMap((k) => (h.externalIds[k] === undefined ? [] : [[k, h.externalIds[k]!]]));
  return (whose.length ? whose : ids).map(([k, v]) => `${k}=${v}`).join(', ') || 'no external_ids';
}

const inTheWayOf = (h: PortHolder): string =>
  `OVS interface ${h.name} ${h.ours ? 'already serves another attachment' : 'was not created by vdpa-cni'} (${describeHolder(h)})`;


/** Removes a port from whichever bridge holds it; OVSDB garbage-collects the Port and its Interfaces. */
const detach = (portUuid: string): Operation => ({
  op: 'mutate',
  table: 'Bridge',
  where: [['ports', 'includes', uuid(portUuid)]],
  mutations: [['ports', 'delete', ovsSet([uuid(portUuid)])]],
});

/** Replaces the given keys of a map column, leaving keys set by others (ovn-installed…) alone. */
function replaceKeys(table: string, rowUuid: string, column: string, keys: readonly string[], values: Record<string, string>): Operation {
  return {
    op: 'mutate',
    table,
    where: [eq('_uuid', uuid(rowUuid))],
    mutations: [
      [column, 'delete', ovsSet([...new Set(keys)])],
      [column, 'insert', ovsMap(values)],
    ],
  };
}

function desiredExternalIds(spec: PlugPortSpec): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.externalIds ?? {})) {
    if ((MANAGED_KEYS as readonly string[]).includes(k)) {
      throw new TypeError(`externalIds.${k}: set by plugPort itself, pass it as a field of the spec`);
    }
    ids[k] = v;
  }
  if (spec.mac) ids.attached_mac = spec.mac;
  ids['iface-id'] = spec.ifaceId;
  if (spec.podUid) ids['iface-id-ver'] = spec.podUid;
  ids.sandbox = spec.sandbox;
  ids['pod-if-name'] = spec.podIfName;
  if (spec.ipAddresses?.length) ids.ip_addresses = spec.ipAddresses.join(',');
  if (spec.vfNetdevName) ids['vf-netdev-name'] = spec.vfNetdevName;
  ids[OWNER_KEY] = OWNER_VALUE;
  ids[NETWORK_KEY] = spec.network;
  return ids;
}

/** The row is this attachment's own (ours, same sandbox and pod-if-name): plugging again updates it. */
const isSameAttachment = (h: PortHolder, spec: PlugPortSpec): boolean => h.ours && h.sandbox === spec.sandbox && h.podIfName === spec.podIfName;

const isGuardTrip = (err: unknown, guards: number): boolean =>
  err instanceof OvsdbError && err.error === 'timed out' && err.opIndex !== undefined && err.opIndex < guards;

/**
 * Plugs `spec.port` into `spec.bridge` for one attachment, in one write transaction: asserts the
 * bridge exists; inserts Interface (external_ids) + Port (other_config:transient=true) and adds
 * the port to the bridge. Plugging the same attachment again updates it in place. A row in the
 * way (the same name, or the same iface-id under another name) is replaced in that transaction
 * only when it is ours and `spec.replaceable` says its attachment is gone; anything else is
 * refused (PortConflictError naming the holders, nothing changed): a port we do not own is never
 * removed or modified.
 */
export async function plugPort(client: OvsdbClient, spec: PlugPortSpec): Promise<PlugResult> {
  const ids = desiredExternalIds(spec);
  const otherConfig = { ...spec.otherConfig, transient: 'true' };
  for (let attempt = 1; ; attempt++) {
    const [bridge, byName, byIfaceId] = await client.transact(DB, [
      select('Bridge', [eq('name', spec.bridge)], ['_uuid']),
      select('Interface', [eq('name', spec.port)], ['_uuid', 'name', 'external_ids']),
      select('Interface', [['external_ids', 'includes', ovsMap({ 'iface-id': spec.ifaceId })]], ['_uuid', 'name', 'external_ids']),
    ]);
    if (!bridge.rows.length) throw new BridgeMissingError(spec.bridge);
    const existing = byName.rows.map(ifaceRow)[0];
    const others = byIfaceId.rows.map(ifaceRow).filter((r) => r.name !== spec.port);
    const where = await locate(client, [...(existing ? [existing.uuid] : []), ...others.map((s) => s.uuid)]);

    const guards: WaitOp[] = [
      {
        op: 'wait', table: 'Bridge', where: [eq('name', spec.bridge)], columns: ['name'], until: '==',
        rows: [{ name: spec.bridge }], timeout: 0,
      },
      {
        op: 'wait', table: 'Interface', where: [eq('name', spec.port)], columns: ['_uuid', 'external_ids'], until: '==',
        rows: existing ? [{ _uuid: uuid(existing.uuid), external_ids: ovsMap(existing.externalIds) }] : [], timeout: 0,
      },
      {
        op: 'wait', table: 'Interface', where: [['external_ids', 'includes', ovsMap({ 'iface-id': spec.ifaceId })]],
        columns: ['_uuid'], until: '==', rows: byIfaceId.rows.map((r) => ({ _uuid: r._uuid! })), timeout: 0,
      },
    ];
    const sameAttachment = existing !== undefined && isSameAttachment(holderOf(existing), spec);
    const inTheWay = [...(existing && !sameAttachment ? [existing] : []), ...others].filter((r) => where.get(r.uuid)?.bridge !== undefined);
    const refused: PortHolder[] = [];
    for (const h of inTheWay.map(holderOf)) if (!h.ours || !(await spec.replaceable?.(h))) refused.push(h);
    if (refused.length) {
      throw new PortConflictError(
        `${refused.map(inTheWayOf).join('; ')}; refusing to plug ${spec.port} for iface-id=${spec.ifaceId}, sandbox=${spec.sandbox}, pod-if-name=${spec.podIfName}`,
        refused,
      );
    }
    const replaced: string[] = [];
    const writes: Operation[] = [];
    for (const r of inTheWay) {
      const loc = where.get(r.uuid)!;
      if (!replaced.includes(loc.portName)) {
        writes.push(detach(loc.portUuid));
        replaced.push(loc.portName);
      }
    }

    let update: PortLocation | undefined;
    if (existing && sameAttachment) {
      const loc = where.get(existing.uuid);
      if (loc?.bridge !== undefined && loc.bridge !== spec.bridge) {
        throw new PortConflictError(`OVS interface ${spec.port} is already a port of bridge ${loc.bridge}, not ${spec.bridge}`);
      }
      if (loc && loc.interfaces.length > 1) {
        throw new PortConflictError(`OVS interface ${spec.port} is a member of the multi-interface port ${loc.portName}`);
      }
      update = loc?.bridge === spec.bridge ? loc : undefined;
    }

    if (update) {
      writes.push(
        replaceKeys('Interface', existing!.uuid, 'external_ids', [...MANAGED_KEYS, ...Object.keys(ids)], ids),
        replaceKeys('Port', update.portUuid, 'other_config', Object.keys(otherConfig), otherConfig),
      );
    } else {
      writes.push(
        { op: 'insert', table: 'Interface', row: { name: spec.port, external_ids: ovsMap(ids) }, 'uuid-name': 'iface' },
        {
          op: 'insert', table: 'Port', 'uuid-name': 'port',
          row: { name: spec.port, interfaces: namedUuid('iface'), other_config: ovsMap(otherConfig) },
        },
        {
          op: 'mutate', table: 'Bridge', where: [eq('name', spec.bridge)],
          mutations: [['ports', 'insert', ovsSet([namedUuid('port')])]],
        },
      );
    }

    let results;
    try {
      results = await client.transact(DB, [...guards, ...writes]);
    } catch (err) {
      if (err instanceof OvsdbError && err.opIndex === 0 && err.error === 'timed out') throw new BridgeMissingError(spec.bridge);
      if (isGuardTrip(err, guards.length) && attempt < GUARD_RETRIES) continue;
      throw err;
    }
    if (update) return { created: false, portUuid: update.portUuid, interfaceUuid: existing!.uuid, replaced };
    const inserted = results.slice(guards.length + replaced.length);
    const uuidAt = (i: number): string => {
      const r = inserted[i];
      if (!r || !('uuid' in r) || typeof r.uuid !== 'string') throw new Error('OVSDB insert returned no uuid');
      return r.uuid;
    };
    return { created: true, interfaceUuid: uuidAt(0), portUuid: uuidAt(1), replaced };
  }
}


export interface UnplugSpec {
  readonly bridge: string;
  readonly port: string;
  /**
   * Remove the port only while its Interface still serves this attachment: a VF may already
   * have been handed to the next pod, whose port must survive the previous pod's DEL.
   */
  readonly owner?: { readonly sandbox: string; readonly podIfName: string };
  /**
   * Also wait, up to this long, until ovs-vswitchd has applied the removal (ovs-vsctl del-port
   * without --no-wait): only then has it closed the netdev and restored the flags it changed.
   */
  readonly applyTimeoutMs?: number;
}

export type UnplugResult =
  /** `applied` is there when applyTimeoutMs was: false when ovs-vswitchd did not apply the removal in time. */
  | { readonly status: 'removed'; readonly applied?: boolean }
  | { readonly status: 'absent' }
  | { readonly status: 'foreign'; readonly externalIds: Readonly<Record<string, string>> };

/** Removes `port` from `bridge` (ovs-vsctl --if-exists del-port); never throws for a missing port. */
export async function unplugPort(client: OvsdbClient, spec: UnplugSpec): Promise<UnplugResult> {
  for (let attempt = 1; ; attempt++) {
    const [ports, ifaces] = await client.transact(DB, [
      select('Port', [eq('name', spec.port)], ['_uuid']),
      select('Interface', [eq('name', spec.port)], ['_uuid', 'external_ids']),
    ]);
    const port = ports.rows[0];
    if (!port) return { status: 'absent' };
    const iface = ifaces.rows[0];
    const externalIds = stringMap(iface?.external_ids);
    if (spec.owner) {
      const { sandbox, podIfName } = spec.owner;
      const other = (k: string, v: string): boolean => externalIds[k] !== undefined && externalIds[k] !== v;
      if (other('sandbox', sandbox) || other('pod-if-name', podIfName)) return { status: 'foreign', externalIds };
    }
    const guard: WaitOp = {
      op: 'wait', table: 'Interface', where: [eq('name', spec.port)], columns: ['external_ids'], until: '==',
      rows: iface ? [{ external_ids: ovsMap(externalIds) }] : [], timeout: 0,
    };
    const portUuid = uuidOf(port._uuid);
    const removal: MutateOp = {
      op: 'mutate', table: 'Bridge', where: [eq('name', spec.bridge), ['ports', 'includes', uuid(portUuid)]],
      mutations: [['ports', 'delete', ovsSet([uuid(portUuid)])]],
    };
    try {
      if (spec.applyTimeoutMs === undefined) {
        const [, removed] = await client.transact(DB, [guard, removal] as const);
        return { status: removed.count ? 'removed' : 'absent' };
      }
      const [, removed, , cfg] = await client.transact(DB, [guard, removal, ...requestApply] as const);
      if (!removed.count) return { status: 'absent' };
      return { status: 'removed', applied: await waitApplied(client, nextCfgOf(cfg), spec.applyTimeoutMs) };
    } catch (err) {
      if (isGuardTrip(err, 1) && attempt < GUARD_RETRIES) continue;
      throw err;
    }
  }
}

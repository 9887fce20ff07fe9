/**
 * The OVS side of a pod attachment, in Open_vSwitch OVSDB transactions: plug a representor
 * into the integration bridge the way ovn-kubernetes does (ovs-vsctl --may-exist add-port …
 * -- set interface … external_ids:…), wait for ovn-controller's ovn-installed, find and
 * remove the ports we own.
 *
 * Writes are optimistic: read what the decision depends on, then write in ONE transaction
 * that starts with `wait` guards asserting those rows are unchanged; a guard that trips
 * (a concurrent writer) makes the whole plug start over.
 */
import {
  applyMapDiff,
  namedUuid,
  OvsdbError,
  ovsMap,
  ovsSet,
  setAtoms,
  stringMap,
  stringOf,
  uuid,
  uuidOf,
  uuidsOf,
  type Monitor,
  type MutateOp,
  type Operation,
  type OvsAtom,
  type OvsdbClient,
  type OvsValue,
  type Row,
  type SelectOp,
  type SelectResult,
  type WaitOp,
} from './ovsdb.js';

const DB = 'Open_vSwitch';

/** Marks the Interface rows this project created, so DEL without state and GC can find them. */
export const OWNER_KEY = 'vdpa-k8s-owner';
export const OWNER_VALUE = 'vdpa-cni';

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
  /** Ports removed because they carried the same iface-id under another name. */
  readonly staleRemoved: readonly string[];
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
}

interface IfaceRow {
  readonly uuid: string;
  readonly name: string;
  readonly externalIds: Record<string, string>;
}

interface PortLocation {
  readonly portUuid: string;
  readonly portName: string;
  readonly interfaces: readonly string[];
  /** undefined when no bridge holds the port (it is being garbage-collected). */
  readonly bridge: string | undefined;
}

const eq = (column: string, value: OvsValue): [string, '==', OvsValue] => [column, '==', value];
const select = (table: string, where: SelectOp['where'], columns: string[]): SelectOp => ({ op: 'select', table, where, columns });

function ifaceRow(r: Row): IfaceRow {
  return { uuid: uuidOf(r._uuid), name: stringOf(r.name) ?? '', externalIds: stringMap(r.external_ids) };
}

/** The Port (and its bridge) holding each interface, read in one transaction. */
async function locate(client: OvsdbClient, ifaceUuids: readonly string[]): Promise<Map<string, PortLocation>> {
  const found = new Map<string, PortLocation>();
  if (!ifaceUuids.length) return found;
  const [bridges, ...ports] = await client.transact(DB, [
    select('Bridge', [], ['name', 'ports']),
    ...ifaceUuids.map((u) => select('Port', [['interfaces', 'includes', uuid(u)]], ['_uuid', 'name', 'interfaces'])),
  ]);
  const bridgeOf = new Map<string, string>();
  for (const b of bridges.rows) for (const p of uuidsOf(b.ports)) bridgeOf.set(p, stringOf(b.name) ?? '');
  ifaceUuids.forEach((u, i) => {
    const row = ports[i]?.rows[0];
    if (!row) return;
    const portUuid = uuidOf(row._uuid);
    found.set(u, {
      portUuid,
      portName: stringOf(row.name) ?? '',
      interfaces: uuidsOf(row.interfaces),
      bridge: bridgeOf.get(portUuid),
    });
  });
  return found;
}

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
  return ids;
}

/** Why an existing Interface row belongs to a different attachment, or undefined if it is ours to take. */
function foreignOwner(ids: Readonly<Record<string, string>>, spec: PlugPortSpec): string | undefined {
  const mismatch = (key: string, want: string): boolean => ids[key] !== undefined && ids[key] !== want;
  if (
    mismatch('iface-id', spec.ifaceId) ||
    mismatch('sandbox', spec.sandbox) ||
    mismatch('pod-if-name', spec.podIfName) ||
    mismatch(OWNER_KEY, OWNER_VALUE)
  ) {
    const parts = ['iface-id', 'sandbox', 'pod-if-name', OWNER_KEY]
      .filter((k) => ids[k] !== undefined)
      .map((k) => `${k}=${ids[k]}`);
    return parts.join(', ');
  }
  return undefined;
}

const isGuardTrip = (err: unknown, guards: number): boolean =>
  err instanceof OvsdbError && err.error === 'timed out' && err.opIndex !== undefined && err.opIndex < guards;

/**
 * Plugs `spec.port` into `spec.bridge` for one attachment, in one write transaction:
 * asserts the bridge exists; removes stale ports carrying the same iface-id under another
 * name; inserts Interface (external_ids) + Port (other_config:transient=true) and adds the
 * port to the bridge. Plugging the same attachment again updates it in place. Refuses
 * (PortConflictError, nothing changed) an interface that serves another attachment.
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
    const stale = byIfaceId.rows.map(ifaceRow).filter((r) => r.name !== spec.port);
    const where = await locate(client, [...(existing ? [existing.uuid] : []), ...stale.map((s) => s.uuid)]);

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
    const staleRemoved: string[] = [];
    const writes: Operation[] = [];
    for (const s of stale) {
      const loc = where.get(s.uuid);
      if (loc?.bridge !== undefined && !staleRemoved.includes(loc.portName)) {
        writes.push(detach(loc.portUuid));
        staleRemoved.push(loc.portName);
      }
    }

    let update: PortLocation | undefined;
    if (existing) {
      const owner = foreignOwner(existing.externalIds, spec);
      const loc = where.get(existing.uuid);
      if (owner !== undefined) {
        throw new PortConflictError(
          `OVS interface ${spec.port} already serves another attachment (${owner}); ` +
            `refusing to plug it for iface-id=${spec.ifaceId}, sandbox=${spec.sandbox}, pod-if-name=${spec.podIfName}`,
        );
      }
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
    if (update) return { created: false, portUuid: update.portUuid, interfaceUuid: existing!.uuid, staleRemoved };
    const inserted = results.slice(guards.length + staleRemoved.length);
    const uuidAt = (i: number): string => {
      const r = inserted[i];
      if (!r || !('uuid' in r) || typeof r.uuid !== 'string') throw new Error('OVSDB insert returned no uuid');
      return r.uuid;
    };
    return { created: true, interfaceUuid: uuidAt(0), portUuid: uuidAt(1), staleRemoved };
  }
}

/**
 * Appended to a write transaction: asks ovs-vswitchd to confirm it has applied it, the way
 * ovs-vsctl does (next_cfg += 1; vswitchd copies next_cfg to cur_cfg once reconfigured).
 */
const requestApply = [
  { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
  select('Open_vSwitch', [], ['next_cfg']),
] as const satisfies readonly Operation[];

function nextCfgOf(r: SelectResult): number {
  const cfg = r.rows[0]?.next_cfg;
  if (typeof cfg !== 'number') throw new Error(`Open_vSwitch.next_cfg is not a number: ${JSON.stringify(cfg)}`);
  return cfg;
}

/**
 * Resolves true once ovs-vswitchd has applied configuration `cfg` (Open_vSwitch.cur_cfg >= cfg),
 * watching the row with a monitor; false after `timeoutMs` (ovs-vswitchd may be down while
 * ovsdb-server is up). Rejects when the connection drops.
 */
export function waitApplied(client: OvsdbClient, cfg: number, timeoutMs: number): Promise<boolean> {
  return watch<boolean>(client, { what: `waiting for ovs-vswitchd to apply configuration ${cfg}`, timeoutMs, onTimeout: () => false }, (settle) =>
    client.monitor(DB, { Open_vSwitch: { columns: ['cur_cfg'] } }, (updates) => {
      for (const u of Object.values(updates.Open_vSwitch ?? {})) {
        const cur = u.new?.cur_cfg;
        if (typeof cur === 'number' && cur >= cfg) settle(true);
      }
    }),
  );
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

export interface OwnedPort {
  /** Port and Interface name (the representor). */
  readonly name: string;
  readonly bridge: string;
  readonly ifaceId: string | undefined;
  readonly sandbox: string | undefined;
  readonly podIfName: string | undefined;
  readonly ovnInstalled: boolean;
  readonly externalIds: Readonly<Record<string, string>>;
}

export interface OwnedPortFilter {
  readonly sandbox?: string;
  readonly podIfName?: string;
  readonly ifaceId?: string;
}

/** Ports plugPort created (our owner mark), optionally narrowed by sandbox / pod-if-name / iface-id. */
export async function findOwnedPorts(client: OvsdbClient, filter: OwnedPortFilter = {}): Promise<OwnedPort[]> {
  const want: Record<string, string> = { [OWNER_KEY]: OWNER_VALUE };
  if (filter.sandbox !== undefined) want.sandbox = filter.sandbox;
  if (filter.podIfName !== undefined) want['pod-if-name'] = filter.podIfName;
  if (filter.ifaceId !== undefined) want['iface-id'] = filter.ifaceId;
  const [ifaces] = await client.transact(DB, [
    select('Interface', [['external_ids', 'includes', ovsMap(want)]], ['_uuid', 'name', 'external_ids']),
  ]);
  const rows = ifaces.rows.map(ifaceRow);
  const where = await locate(client, rows.map((r) => r.uuid));
  return rows.flatMap((r) => {
    const bridge = where.get(r.uuid)?.bridge;
    if (bridge === undefined) return [];
    const ids = r.externalIds;
    return [{
      name: r.name,
      bridge,
      ifaceId: ids['iface-id'],
      sandbox: ids.sandbox,
      podIfName: ids['pod-if-name'],
      ovnInstalled: ids['ovn-installed'] === 'true',
      externalIds: ids,
    }];
  }).sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes the named ports from whatever bridge holds them, in one write; returns the names removed. */
export async function removePorts(client: OvsdbClient, names: readonly string[]): Promise<string[]> {
  if (!names.length) return [];
  const found = await client.transact(DB, names.map((n) => select('Port', [eq('name', n)], ['_uuid'])));
  const targets = names.flatMap((name, i) => found[i]!.rows.map((r) => ({ name, portUuid: uuidOf(r._uuid) })));
  if (!targets.length) return [];
  // A port replaced since the read has a new uuid, so this write leaves it alone.
  const counts = await client.transact(DB, targets.map((t) => detach(t.portUuid)));
  return targets.filter((_, i) => {
    const r = counts[i];
    return r !== undefined && 'count' in r && r.count > 0;
  }).map((t) => t.name);
}

export interface WaitInstalledSpec {
  readonly iface: string;
  readonly ifaceId: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** Applies an update2 diff to a set column (min 0 / max >1): the diff is the symmetric difference. */
function applySetDiff(old: readonly OvsAtom[], diff: OvsValue | undefined): OvsAtom[] {
  const key = (a: OvsAtom): string => JSON.stringify(a);
  const next = new Map(old.map((a) => [key(a), a]));
  for (const a of setAtoms(diff)) {
    if (next.has(key(a))) next.delete(key(a));
    else next.set(key(a), a);
  }
  return [...next.values()];
}

/**
 * Resolves once ovn-controller has set external_ids:ovn-installed="true" on `iface`, watching
 * the row with monitor_cond (no polling). Rejects on timeout, on abort, when the row goes away,
 * or when its iface-id changes (another attachment took the port), like ovn-kubernetes.
 */
export function waitInstalled(client: OvsdbClient, spec: WaitInstalledSpec): Promise<void> {
  const { iface, ifaceId } = spec;
  let ids: Record<string, string> | undefined;
  let ovsError: OvsAtom[] = [];
  const onTimeout = (): Error => {
    const why = typeof ovsError[0] === 'string' ? `; OVS reports: ${ovsError[0]}` : '';
    return new Error(`timed out waiting for OVN to install flows for ${iface} (iface-id ${ifaceId})${why}`);
  };
  const what = `waiting for OVN to install flows for ${iface}`;
  return watch<void>(client, { what, timeoutMs: spec.timeoutMs, onTimeout, ...(spec.signal ? { signal: spec.signal } : {}) }, (settle) =>
    client.monitorCond(DB, { Interface: { where: [eq('name', iface)], columns: ['name', 'external_ids', 'error'] } }, (updates) => {
      const rows = Object.values(updates.Interface ?? {});
      if (ids === undefined && !rows.length) {
        return settle(new Error(`no OVS interface named ${iface} to wait on`));
      }
      for (const u of rows) {
        if (u.kind === 'delete') return settle(new Error(`OVS interface ${iface} was removed while waiting for OVN`));
        if (u.kind === 'modify') {
          if (u.diff.external_ids !== undefined) ids = applyMapDiff(ids ?? {}, u.diff.external_ids);
          if (u.diff.error !== undefined) ovsError = applySetDiff(ovsError, u.diff.error);
        } else {
          ids = stringMap(u.row.external_ids);
          ovsError = setAtoms(u.row.error);
        }
      }
      const current = ids?.['iface-id'];
      if (current !== ifaceId) {
        return settle(new Error(`iface-id of ${iface} changed to ${current ?? '(none)'} while waiting for OVN to install ${ifaceId}`));
      }
      if (ids?.['ovn-installed'] === 'true') settle(undefined);
    }),
  );
}

interface WatchOptions<T> {
  /** "waiting for …", for the abort and lost-connection messages. */
  readonly what: string;
  readonly timeoutMs: number;
  /** The outcome when time runs out: a value to resolve with, or an Error to reject with. */
  readonly onTimeout: () => T | Error;
  readonly signal?: AbortSignal;
}

/**
 * Runs the monitor that `start` opens until its handler settles (a value, or an Error to reject
 * with), time runs out, the signal fires or the connection drops; then cancels the monitor.
 */
function watch<T>(client: OvsdbClient, opts: WatchOptions<T>, start: (settle: (outcome: T | Error) => void) => Promise<Monitor>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let monitor: Monitor | undefined;
    let done = false;
    const settle = (outcome: T | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      offClose();
      void monitor?.cancel().catch(() => undefined);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => settle(opts.onTimeout()), opts.timeoutMs);
    const onAbort = (): void => {
      const reason: unknown = opts.signal?.reason;
      settle(reason instanceof Error ? reason : new Error(`aborted ${opts.what}`));
    };
    const offClose = client.onClose((err) => settle(new Error(`lost OVSDB connection while ${opts.what}: ${err.message}`)));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    start(settle).then(
      (m) => {
        monitor = m;
        if (done) void m.cancel().catch(() => undefined);
      },
      (err: Error) => settle(err),
    );
  });
}

export interface OvsStatus {
  readonly bridgeExists: boolean;
  /** Open_vSwitch other_config:hw-offload is "true". */
  readonly hwOffload: boolean;
  /** other_config:tc-policy when set (none, skip_sw, skip_hw). */
  readonly tcPolicy: string | undefined;
  readonly ovsVersion: string | undefined;
}

/** For CNI STATUS and logs: does the bridge exist, is hardware offload on (node-wide). */
export async function ovsStatus(client: OvsdbClient, bridge: string): Promise<OvsStatus> {
  const [bridges, root] = await client.transact(DB, [
    select('Bridge', [eq('name', bridge)], ['name']),
    select('Open_vSwitch', [], ['other_config', 'ovs_version']),
  ]);
  const row = root.rows[0];
  const otherConfig = stringMap(row?.other_config);
  return {
    bridgeExists: bridges.rows.length > 0,
    hwOffload: otherConfig['hw-offload'] === 'true',
    tcPolicy: otherConfig['tc-policy'],
    ovsVersion: stringOf(row?.ovs_version),
  };
}

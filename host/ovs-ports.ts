/**
 * Which OVS ports are ours, read from the Open_vSwitch database: the Interface rows vdpa-cni
 * created carry an owner mark in external_ids (docs/ovn.md), so DEL without state and GC find
 * them; the small query helpers the plug and watch modules share live here too.
 */
import { ovsMap, stringMap, stringOf, uuid, uuidOf, uuidsOf, type OvsdbClient, type OvsValue, type Row, type SelectOp } from './ovsdb.js';

export const DB = 'Open_vSwitch';

/** Marks the Interface rows this project created, so DEL without state and GC can find them. */
export const OWNER_KEY = 'vdpa-k8s-owner';
export const OWNER_VALUE = 'vdpa-cni';
/** The network config's name of the attachment a port serves. */
export const NETWORK_KEY = 'vdpa-k8s-network';

export interface IfaceRow {
  readonly uuid: string;
  readonly name: string;
  readonly externalIds: Record<string, string>;
}

export interface PortLocation {
  readonly portUuid: string;
  readonly portName: string;
  readonly interfaces: readonly string[];
  /** undefined when no bridge holds the port (it is being garbage-collected). */
  readonly bridge: string | undefined;
}

export const eq = (column: string, value: OvsValue): [string, '==', OvsValue] => [column, '==', value];
export const select = (table: string, where: SelectOp['where'], columns: string[]): SelectOp => ({ op: 'select', table, where, columns });

export function ifaceRow(r: Row): IfaceRow {
  return { uuid: uuidOf(r._uuid), name: stringOf(r.name) ?? '', externalIds: stringMap(r.external_ids) };
}

/** The Port (and its bridge) holding each interface, read in one transaction. */
export async function locate(client: OvsdbClient, ifaceUuids: readonly string[]): Promise<Map<string, PortLocation>> {
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

export interface OwnedPort {
  /** Port and Interface name (the representor). */
  readonly name: string;
  readonly bridge: string;
  readonly ifaceId: string | undefined;
  readonly sandbox: string | undefined;
  readonly podIfName: string | undefined;
  readonly network: string | undefined;
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
      network: ids[NETWORK_KEY],
      ovnInstalled: ids['ovn-installed'] === 'true',
      externalIds: ids,
    }];
  }).sort((a, b) => a.name.localeCompare(b.name));
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

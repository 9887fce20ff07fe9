/**
 * Snapshot + config → pools: which device belongs to which resource, and whether it is healthy.
 * Pure: the caller supplies the snapshot, its usable endpoints and the previous pools.
 */
import type { Device } from '../proto/gen/deviceplugin_v1beta1.js';
import { VDPA_LINK_TYPE, type Config, type PfMatch, type PoolConfig, type Selector } from './config.js';
import { endpointFor, usableEndpoints } from '../host/endpoint.js';
import type { PciFunction, Representor, Snapshot, VdpaEndpoint } from '../host/snapshot.js';

export type Health = 'Healthy' | 'Unhealthy';

export interface PoolDevice {
  /** The function's PCI address: consumers (Multus, CNIs) take the device ID to be one. */
  readonly id: string;
  /** The PF's PCI address, or the function itself when it is not a VF: what "fewest PFs" counts. */
  readonly pf: string;
  readonly numaNode: number | null;
  readonly health: Health;
  /** Why the device is Unhealthy; empty when Healthy. */
  readonly problems: readonly string[];
  /** What Allocate hands out; null while the device is not usable. */
  readonly endpoint: VdpaEndpoint | null;
}

export interface Pool {
  readonly config: PoolConfig;
  /** By device ID, in PCI address order. */
  readonly devices: ReadonlyMap<string, PoolDevice>;
}

export interface PoolInput {
  readonly snapshot: Snapshot;
  /** What the pools may hand out: advertisableEndpoints(snapshot, …). */
  readonly endpoints: readonly VdpaEndpoint[];
  readonly config: Config;
  /** The pools of the previous scan: a member that stops being usable stays, as Unhealthy. */
  readonly previous?: readonly Pool[];
}

/**
 * The endpoints the pools may advertise: the usable ones, plus the allocated virtio devices that
 * lack nothing but their netdev. That netdev sits in a pod's network namespace, where the host's
 * sysfs does not show it; without this every VF in use would turn Unhealthy, and a restarted plugin
 * would leave it out of the capacity (the incumbent's #565). `allocated`: device IDs that have a
 * DeviceInfo file. A virtio device without a netdev that was never handed out stays unusable
 * (virtio_net not loaded, say).
 */
export function advertisableEndpoints(snapshot: Snapshot, allocated: ReadonlySet<string>): VdpaEndpoint[] {
  const out = usableEndpoints(snapshot);
  for (const id of allocated) {
    const fn = snapshot.functions.get(id);
    if (!fn || fn.usable || fn.vdpaDevices.length !== 1) continue;
    const d = snapshot.vdpa.get(fn.vdpaDevices[0]!);
    const onlyNetdevMissing =
      d?.driver === 'virtio' && d.virtio !== null && d.virtio.netdev === null && d.problems.length === 1 && fn.reason === `vDPA device ${d.name} ${d.problems[0]}`;
    // host/endpoint.ts joins the rest, as for a usable function.
    if (onlyNetdevMissing) out.push(endpointFor({ ...snapshot, functions: new Map([[id, { ...fn, usable: true }]]) }, id));
  }
  return out;
}

// "down" alone would also cover admin-down; an uplink is never admin-down while the node uses it.
const LINK_DOWN = new Set(['down', 'lowerlayerdown', 'notpresent']);

function matchesPf(matches: readonly PfMatch[], names: readonly string[], vfIndex: number | null): boolean {
  return matches.some((m) => names.includes(m.pf) && (m.vfs === null || (vfIndex !== null && m.vfs.has(vfIndex))));
}

/** The PF's netdev names a `pfNames` entry may use: its uplink in switchdev, its own netdevs otherwise. */
function pfNetdevs(pf: PciFunction | undefined): readonly string[] {
  if (!pf) return [];
  return pf.uplink ? [pf.uplink.name] : pf.netdevs;
}

/** Every selector field except vdpaType: the things that do not change while a device is in use. */
export function matchesStatically(sel: Selector, fn: PciFunction, snapshot: Snapshot): boolean {
  if (sel.vendors.length && !sel.vendors.includes(fn.vendor)) return false;
  if (sel.devices.length && !sel.devices.includes(fn.device)) return false;
  if (sel.drivers.length && (fn.driver === null || !sel.drivers.includes(fn.driver))) return false;
  if (sel.linkTypes.length && !sel.linkTypes.includes(VDPA_LINK_TYPE)) return false;
  if (sel.pciAddresses.length && !sel.pciAddresses.includes(fn.address)) return false;
  if (sel.rootDevices.length && (fn.pf === null || !matchesPf(sel.rootDevices, [fn.pf], fn.vfIndex))) return false;
  if (sel.pfNames.length) {
    if (fn.pf === null || !matchesPf(sel.pfNames, pfNetdevs(snapshot.functions.get(fn.pf)), fn.vfIndex)) return false;
  }
  return true;
}

function linkProblem(what: string, rep: Representor): string | null {
  return LINK_DOWN.has(rep.operState) ? `${what} ${rep.name} is ${rep.operState}` : null;
}

/**
 * Link checks apply only where the link exists. A VF representor's own link is not checked: it is
 * down by design while the VF is idle (created down, set down again by the CNI's DEL), so it says
 * nothing about the device. Its absence on a switchdev PF does.
 */
function linkProblems(fn: PciFunction): string[] {
  const problems: string[] = [];
  if (fn.uplink) {
    const down = linkProblem('PF uplink', fn.uplink);
    if (down) problems.push(down);
    if (fn.representor && 'missing' in fn.representor) problems.push(`representor missing: ${fn.representor.missing}`);
  }
  return problems;
}

function device(fn: PciFunction, endpoint: VdpaEndpoint | null, problems: string[]): PoolDevice {
  return {
    id: fn.address,
    pf: fn.pf ?? fn.address,
    numaNode: fn.numaNode,
    health: problems.length ? 'Unhealthy' : 'Healthy',
    problems,
    endpoint,
  };
}

/** Why a former member no longer qualifies. */
function unusableReason(fn: PciFunction, endpoint: VdpaEndpoint | undefined, wanted: readonly Selector[]): string {
  if (!endpoint) return fn.reason ?? 'no usable vDPA device';
  const types = [...new Set(wanted.map((s) => s.vdpaType))].join(' or ');
  return `vDPA device ${endpoint.vdpaDevice} is bound to ${endpoint.driver}, the pool wants ${types}`;
}

/**
 * The first pool (in config order) with a selector that matches a usable function and its vDPA
 * type claims it. A device that was in a pool and no longer qualifies stays there as Unhealthy
 * (a pod may still hold it) until its PCI function disappears or the config no longer selects it.
 */
export function buildPools({ snapshot, endpoints, config, previous = [] }: PoolInput): Pool[] {
  const byAddress = new Map(endpoints.map((e) => [e.pciAddress, e]));
  const formerPool = new Map<string, string>();
  for (const pool of previous) for (const id of pool.devices.keys()) formerPool.set(id, pool.config.resource);
  const members = new Map<string, PoolDevice[]>(config.pools.map((p) => [p.resource, []]));

  const addresses = [...snapshot.functions.keys()].sort();
  for (const address of addresses) {
    const fn = snapshot.functions.get(address)!;
    const endpoint = byAddress.get(address);
    const claim =
      endpoint &&
      config.pools.find((p) => p.selectors.some((s) => s.vdpaType === endpoint.driver && matchesStatically(s, fn, snapshot)));
    if (claim && endpoint) {
      members.get(claim.resource)!.push(device(fn, endpoint, linkProblems(fn)));
      continue;
    }
    const former = config.pools.find((p) => p.resource === formerPool.get(address));
    const selecting = former?.selectors.filter((s) => matchesStatically(s, fn, snapshot)) ?? [];
    if (former && selecting.length) {
      members.get(former.resource)!.push(device(fn, null, [unusableReason(fn, endpoint, selecting), ...linkProblems(fn)]));
    }
  }
  return config.pools.map((p) => ({ config: p, devices: new Map(members.get(p.resource)!.map((d) => [d.id, d])) }));
}

/** What ListAndWatch sends: every device, with its health and (unless excluded) its NUMA node. */
export function advertised(pool: Pool): Device[] {
  return [...pool.devices.values()].map((d) => ({
    ID: d.id,
    health: d.health,
    topology: d.numaNode === null || pool.config.excludeTopology ? undefined : { nodes: [{ ID: d.numaNode }] },
  }));
}

/** One line per change between two versions of a pool, for the log. */
export function describeChanges(before: Pool | undefined, after: Pool): string[] {
  const out: string[] = [];
  const old = before?.devices ?? new Map<string, PoolDevice>();
  for (const [id, d] of after.devices) {
    const was = old.get(id);
    if (!was) out.push(`${id} added (${d.health}${d.problems.length ? `: ${d.problems.join('; ')}` : ''})`);
    else if (was.health !== d.health || was.problems.join() !== d.problems.join()) {
      out.push(`${id} ${was.health} → ${d.health}${d.problems.length ? `: ${d.problems.join('; ')}` : ''}`);
    }
  }
  for (const id of old.keys()) if (!after.devices.has(id)) out.push(`${id} removed`);
  return out;
}

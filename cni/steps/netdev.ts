/**
 * Step "netdev": the virtio netdev's trip into the pod and back. It is never renamed or moved by
 * a name looked up blindly: podman calls every pod interface eth0, and so is the host's own NIC;
 * and a pod with CAP_NET_ADMIN can rename, re-alias and re-address its links or make look-alikes.
 *  - In: one netlink message moves it into the pod under a unique temporary name and marks it
 *    (IFLA_IFALIAS); inside the pod it gets its name, MAC, MTU, addresses and routes. Its identity
 *    (parent device, else ifindex) is recorded in the state.
 *  - Out: found by that identity (in the pod, or in the host when the netns is gone), given back
 *    its original name, MAC and MTU (from the state) inside a netns, then moved to the host with
 *    its old alias in one message. The mark is only a hint, for DEL without state and GC of
 *    netdevs whose state is lost.
 */
import { randomHex, sha256Hex } from '../../host/hash.js';
import type { Logger } from '../../host/log.js';
import {
  HOST_NETNS,
  ip,
  ipBatches,
  IpError,
  ipThenListLinks,
  isNetworkNamespace,
  linksPrinted,
  listLinks,
  withTempNetns,
  type IpCommand,
  type Link,
} from '../../host/netns.js';
import type { AttachmentState, NetdevIdentity } from '../../host/state.js';
import { parseCidr } from '../ip.js';
import { interfaceNameProblem } from '../netconf.js';
import type { Result } from '../result.js';

const hash = (text: string, n: number): string => sha256Hex(text).slice(0, n);

/** Stable per attachment; CNI_CONTAINERID + CNI_IFNAME identify an attachment. */
export const attachmentHash = (containerId: string, ifname: string): string => hash(`${containerId}/${ifname}`, 16);

/** Stable per network (the netconf's name): GC of one network leaves another's marks alone. */
export const networkHash = (network: string): string => hash(network, 8);

/** `vdpa-cni/<network hash>/<attachment hash>/<original name>`: a hint of whose netdev this is. */
export const markFor = (network: string, containerId: string, ifname: string, netdev: string): string =>
  `vdpa-cni/${networkHash(network)}/${attachmentHash(containerId, ifname)}/${netdev}`;

/** The parts of a mark, or null when the alias is not one of ours. */
export function parseMark(alias: string): { network: string; hash: string; original: string } | null {
  const m = /^vdpa-cni\/([0-9a-f]{8})\/([0-9a-f]{16})\/(.+)$/.exec(alias);
  return m ? { network: m[1]!, hash: m[2]!, original: m[3]! } : null;
}

/** A name no pod or host will have: `vdpatmp` + 8 hex (15 bytes, the kernel's limit). */
const tempName = (): string => `vdpatmp${randomHex(4)}`;

/**
 * What a pod cannot change about the netdev: its parent device when it has one (every real VF
 * netdev does), else its ifindex (the veth stand-ins of the test nodes).
 */
export const identityOf = (link: Link): NetdevIdentity => ({ ifindex: link.ifindex, parent: link.parent });

const isIt = (id: NetdevIdentity, link: Link): boolean => (id.parent ? link.parent === id.parent : link.ifindex === id.ifindex);

export interface PodConfig {
  readonly netns: string;
  readonly ifname: string;
  readonly mark: string;
  readonly mac: string | null;
  readonly mtu: number | null;
  /** Addresses and routes to apply (the IPAM result). */
  readonly ipam: Result;
}

/** Route lines as the CNI reference plugins apply them: a route without gw uses its family's gateway. */
function routeCommands(ifname: string, ipam: Result): string[][] {
  const gateways = new Map<number, string>();
  for (const a of ipam.ips) {
    const family = parseCidr(a.address)?.family;
    if (family && a.gateway && !gateways.has(family)) gateways.set(family, a.gateway);
  }
  return ipam.routes.map((r) => {
    const family = parseCidr(r.dst)?.family ?? 4;
    const gw = r.gw ?? gateways.get(family);
    const cmd = ['route', 'add', r.dst];
    if (gw) cmd.push('via', gw);
    cmd.push('dev', ifname);
    if (r.priority !== undefined) cmd.push('metric', String(r.priority));
    if (r.table !== undefined) cmd.push('table', String(r.table));
    if (r.mtu !== undefined) cmd.push('mtu', String(r.mtu));
    if (r.advmss !== undefined) cmd.push('advmss', String(r.advmss));
    if (r.scope !== undefined) cmd.push('scope', String(r.scope));
    return cmd;
  });
}

/**
 * Addresses get `nodad`: IPAM made them unique, and duplicate address detection would hold
 * IPv6 in "tentative" for a second or more after the pod starts.
 */
function podCommands(c: PodConfig, current: string): string[][] {
  const link = ['link', 'set', 'dev', current, 'name', c.ifname];
  if (c.mac) link.push('address', c.mac);
  if (c.mtu) link.push('mtu', String(c.mtu));
  link.push('up');
  const addrs = c.ipam.ips.map((a) => {
    const cmd = ['addr', 'add', a.address, 'dev', c.ifname];
    if (parseCidr(a.address)?.family === 6) cmd.push('nodad');
    return cmd;
  });
  return [link, ...addrs, ...routeCommands(c.ifname, c.ipam)];
}

/**
 * The host side of the move: into the pod under `tmp`, marked, in one netlink message (the
 * kernel moves, renames, then sets the alias), so wherever the netdev is after a failure or a
 * kill, it is either untouched in the host or marked in the pod.
 */
const moveCommand = (c: PodConfig & { netdev: string }, tmp: string): string[] => [
  'link', 'set', 'dev', c.netdev, 'netns', c.netns, 'name', tmp, 'alias', c.mark,
];

/**
 * Do: one process moves the netdev into the pod and runs `alongside` in the host (the
 * representor's up, see cni/steps/representor.ts), one more configures it inside the pod and
 * reports it as it is there (its ifindex may change on the move). With no netdev (vhost) only
 * `alongside` runs.
 */
export async function moveIn(netdev: string | null, pod: PodConfig, alongside: readonly IpCommand[]): Promise<Link | null> {
  const tmp = tempName();
  const out = await ipBatches([
    { netns: null, commands: [...(netdev ? [moveCommand({ ...pod, netdev }, tmp)] : []), ...alongside] },
    { netns: pod.netns, commands: netdev ? [...podCommands(pod, tmp), ['link', 'show', 'dev', pod.ifname]] : [] },
  ]);
  return netdev ? (linksPrinted(out)[0] ?? null) : null;
}

export interface ReturnRequest {
  /** Where the pod's netns was; null or gone means look in the host. */
  readonly netns: string | null;
  /** networkHash() and attachmentHash() of the attachment whose netdev this is. */
  readonly network: string;
  readonly hash: string;
  /** From the state; null without one (then the mark is all there is to go by). */
  readonly identity: NetdevIdentity | null;
  /** Name, MAC and MTU the netdev had in the host before ADD; name null without state. */
  readonly original: string | null;
  readonly mac: string | null;
  readonly mtu: number | null;
  /** Alias to restore in the host. */
  readonly alias: string;
}

/**
 * The trip home runs as an `ip` process: the undo runs it beside the port's removal, whose OVSDB
 * replies must keep arriving while the kernel moves the netdev (netlink from this process would
 * hold them up until the move is done).
 */
const HOME_TRIP = { inProcess: false } as const;

/**
 * Inside `netns`: down, original name, MAC and MTU back, then moved to the host with the old
 * alias. When the name is taken (in that netns or in the host) the netdev travels under a unique
 * temporary name.
 */
async function sendHome(netns: string, link: Link, original: string, r: ReturnRequest, log: Logger): Promise<{ name: string; renamed: boolean }> {
  const trip = (from: string, to: string): IpCommand[] => [
    ['link', 'set', 'dev', from, 'down'],
    ...(from !== to ? [['link', 'set', 'dev', from, 'name', to]] : []),
    ...(r.mac || r.mtu ? [['link', 'set', 'dev', to, ...(r.mac ? ['address', r.mac] : []), ...(r.mtu ? ['mtu', String(r.mtu)] : [])]] : []),
    // Moving and restoring the alias in one message: a failed move leaves our mark in place.
    ['link', 'set', 'dev', to, 'netns', HOST_NETNS, 'alias', r.alias],
  ];
  try {
    await ip(netns, trip(link.name, original), HOME_TRIP);
    return { name: original, renamed: false };
  } catch (err) {
    if (!(err instanceof IpError) || !err.exists) throw err;
  }
  const current = (await listLinks(netns)).find((l) => l.ifindex === link.ifindex)?.name ?? link.name;
  const tmp = tempName();
  await ip(netns, trip(current, tmp), HOME_TRIP);
  log.warn('original netdev name is taken in the host; returned it under a temporary name', { original, returnedAs: tmp });
  return { name: tmp, renamed: true };
}

/**
 * The attachment's netdev among `links`: by its identity when the state has one; without state by
 * our mark, and only when exactly one link carries it (a pod can copy an alias).
 */
function pick(links: readonly Link[], r: ReturnRequest): Link | null {
  const id = r.identity;
  if (id) return links.find((l) => isIt(id, l)) ?? null;
  const marked = links.filter((l) => {
    const m = parseMark(l.alias);
    return m?.hash === r.hash && m.network === r.network;
  });
  return marked.length === 1 ? marked[0]! : null;
}

/** The name to give it back: the state's; without state the mark's, when it is a valid name. */
function originalName(link: Link, r: ReturnRequest): string {
  if (r.original) return r.original;
  const hinted = parseMark(link.alias)?.original ?? '';
  return interfaceNameProblem(hinted) === null ? hinted : link.name;
}

/** Where an attachment's netdev is: in its pod, or back in the host after the netns went away. */
export interface FoundNetdev {
  readonly where: 'pod' | 'host';
  readonly link: Link;
}

/** Read-only: looks among the pod's links (null when the netns is gone), then in the host. */
async function locateNetdev(r: ReturnRequest, podLinks: readonly Link[] | null): Promise<FoundNetdev | null> {
  const inPod = podLinks && pick(podLinks, r);
  if (inPod) return { where: 'pod', link: inPod };
  const inHost = pick(await listLinks(null), r);
  return inHost ? { where: 'host', link: inHost } : null;
}

/**
 * Undo, first half (read-only): where the netdev is. `alongside` runs in the host first, in the
 * same process as the look into the pod (the representor's down); its failure is thrown unless
 * the device is already gone.
 */
export async function findNetdev(r: ReturnRequest, alongside: readonly IpCommand[]): Promise<FoundNetdev | null> {
  const podNetns = r.netns !== null && isNetworkNamespace(r.netns) ? r.netns : null;
  if (!podNetns) {
    if (alongside.length) {
      await ip(null, alongside).catch((err: unknown) => {
        if (!(err instanceof IpError) || !err.noDevice) throw err;
      });
    }
    return locateNetdev(r, null);
  }
  const { error, links } = await ipThenListLinks({ netns: null, commands: alongside }, podNetns);
  if (error && !error.noDevice) throw error;
  return locateNetdev(r, links);
}

/** True when the attachment's netdev, known by its identity, is in the host. */
export async function isHome(r: ReturnRequest): Promise<boolean> {
  return r.identity !== null && pick(await listLinks(null), r) !== null;
}

/**
 * Undo, second half: brings a located netdev home under its original name. From the host (the
 * kernel returns physical netdevs to the host on netns teardown, as `dev<N>` if the name is
 * taken) it goes through a temporary netns, so that the rename never happens in the host.
 */
export async function bringHome(found: FoundNetdev, r: ReturnRequest, log: Logger): Promise<{ name: string; renamed: boolean }> {
  const original = originalName(found.link, r);
  if (found.where === 'pod' && r.netns) return sendHome(r.netns, found.link, original, r, log);
  return withTempNetns('vdpa-cni', async (tmpNs) => {
    await ip(null, [['link', 'set', 'dev', found.link.name, 'netns', tmpNs]]);
    // The name was read a moment ago: the link that arrived must still be the one found.
    const arrived = (await listLinks(tmpNs)).filter((l) => l.name !== 'lo');
    const same = (l: Link) => (found.link.parent !== null ? l.parent === found.link.parent : l.ifindex === found.link.ifindex);
    const moved = arrived.length === 1 && same(arrived[0]!) ? arrived[0]! : null;
    if (!moved) {
      await ip(tmpNs, arrived.map((l) => ['link', 'set', 'dev', l.name, 'netns', HOST_NETNS]));
      throw new Error(`netdev ${found.link.name} changed while being returned; retry DEL`);
    }
    return sendHome(tmpNs, moved, original, r, log);
  });
}

/** What the undo of an attachment's netdev step goes by. */
export const returnRequestFor = (state: AttachmentState): ReturnRequest => ({
  netns: state.netns || null,
  network: networkHash(state.network),
  hash: attachmentHash(state.containerId, state.ifname),
  identity: state.netdevIdentity,
  original: state.netdevIdentity ? state.netdev : null,
  mac: state.netdevMac,
  mtu: state.netdevMtu,
  alias: state.netdevAlias,
});

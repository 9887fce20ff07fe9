/**
 * Step "netdev": the virtio netdev's trip into the pod and back. It is never renamed or moved by a name looked
 * up blindly in the host: podman calls every pod interface eth0, and so is the host's own NIC.
 *  - In: one netlink message moves it into the pod under a unique temporary name and marks it
 *    (IFLA_IFALIAS); inside the pod it gets its name, MAC, MTU, addresses and routes.
 *  - Out: found by its mark (in the pod, or in the host when the netns is gone), renamed back
 *    inside a netns, then moved to the host with its old alias in one message.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../../host/log.js';
import { HOST_NETNS, ip, ipBatches, IpError, ipThenListLinks, isNetworkNamespace, listLinks, withTempNetns, type IpCommand, type Link } from '../../host/netns.js';
import { parseCidr } from '../ip.js';
import type { Result } from '../result.js';

const MARK_PREFIX = 'vdpa-cni/';

/** Stable per attachment; CNI_CONTAINERID + CNI_IFNAME identify an attachment. */
export function attachmentHash(containerId: string, ifname: string): string {
  return createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 16);
}

/** `vdpa-cni/<attachment hash>/<original name>`: who owns the netdev and what to call it in the host. */
export const markFor = (containerId: string, ifname: string, netdev: string): string =>
  `${MARK_PREFIX}${attachmentHash(containerId, ifname)}/${netdev}`;

/** `{hash, original}` of a mark, or null when the alias is not one of ours. */
export function parseMark(alias: string): { hash: string; original: string } | null {
  const m = /^vdpa-cni\/([0-9a-f]{16})\/(.+)$/.exec(alias);
  return m ? { hash: m[1]!, original: m[2]! } : null;
}

/** A name no pod or host will have: `vdpatmp` + 8 hex (15 bytes, the kernel's limit). */
const tempName = (): string => `vdpatmp${randomBytes(4).toString('hex')}`;

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
 * representor's up, see cni/steps/representor.ts), one more configures it inside the pod.
 * With no netdev (vhost) only `alongside` runs.
 */
export function moveIn(netdev: string | null, pod: PodConfig, alongside: readonly IpCommand[]): Promise<void> {
  const tmp = tempName();
  return ipBatches([
    { netns: null, commands: [...(netdev ? [moveCommand({ ...pod, netdev }, tmp)] : []), ...alongside] },
    { netns: pod.netns, commands: netdev ? podCommands(pod, tmp) : [] },
  ]);
}

export interface ReturnRequest {
  /** Where the pod's netns was; null or gone means look in the host. */
  readonly netns: string | null;
  /** attachmentHash() of the attachment whose netdev this is. */
  readonly hash: string;
  /** Alias to restore in the host. */
  readonly alias: string;
}

/**
 * Inside `netns`: down, rename to the original name, move to the host with the old alias. When the
 * name is taken (in that netns or in the host) the netdev travels under a unique temporary name.
 */
async function sendHome(netns: string, link: Link, original: string, alias: string, log: Logger): Promise<{ name: string; renamed: boolean }> {
  try {
    const cmds: string[][] = [['link', 'set', 'dev', link.name, 'down']];
    if (link.name !== original) cmds.push(['link', 'set', 'dev', link.name, 'name', original]);
    // Moving and restoring the alias in one message: a failed move leaves our mark in place.
    cmds.push(['link', 'set', 'dev', original, 'netns', HOST_NETNS, 'alias', alias]);
    await ip(netns, cmds);
    return { name: original, renamed: false };
  } catch (err) {
    if (!(err instanceof IpError) || !err.exists) throw err;
  }
  const current = (await listLinks(netns)).find((l) => l.ifindex === link.ifindex)?.name ?? link.name;
  const tmp = tempName();
  await ip(netns, [
    ['link', 'set', 'dev', current, 'down'],
    ['link', 'set', 'dev', current, 'name', tmp],
    ['link', 'set', 'dev', tmp, 'netns', HOST_NETNS, 'alias', alias],
  ]);
  log.warn('original netdev name is taken in the host; returned it under a temporary name', {
    original,
    returnedAs: tmp,
  });
  return { name: tmp, renamed: true };
}

function findMarked(links: readonly Link[], hash: string): { link: Link; original: string } | null {
  for (const link of links) {
    const mark = parseMark(link.alias);
    if (mark?.hash === hash) return { link, original: mark.original };
  }
  return null;
}

/** Where an attachment's netdev is: in its pod, or back in the host after the netns went away. */
export interface FoundNetdev {
  readonly where: 'pod' | 'host';
  readonly link: Link;
  readonly original: string;
}

/** Read-only: looks among the pod's links (null when the netns is gone), then in the host, for the mark. */
async function locateNetdev(r: ReturnRequest, podLinks: readonly Link[] | null): Promise<FoundNetdev | null> {
  const found = podLinks && findMarked(podLinks, r.hash);
  if (found) return { where: 'pod', ...found };
  const inHost = findMarked(await listLinks(null), r.hash);
  return inHost ? { where: 'host', ...inHost } : null;
}

/**
 * Undo, first half (read-only): where the netdev is. `alongside` runs in the host first, in the
 * same process as the look into the pod (the representor's down); its failure is thrown unless
 * the device is already gone.
 */
export async function findNetdev(r: ReturnRequest, alongside: readonly IpCommand[]): Promise<FoundNetdev | null> {
  const podNetns = r.netns !== null && isNetworkNamespace(r.netns) ? r.netns : null;
  if (!podNetns) {
    if (alongside.length) await ip(null, alongside).catch((err: unknown) => {
      if (!(err instanceof IpError) || !err.noDevice) throw err;
    });
    return locateNetdev(r, null);
  }
  const { error, links } = await ipThenListLinks({ netns: null, commands: alongside }, podNetns);
  if (error && !error.noDevice) throw error;
  return locateNetdev(r, links);
}

/**
 * Undo, second half: brings a located netdev home under its original name. From the host (the kernel returns
 * physical netdevs to the host on netns teardown, as `dev<N>` if the name is taken) it goes
 * through a temporary netns, so that the rename never happens in the host.
 */
export async function bringHome(found: FoundNetdev, r: ReturnRequest, log: Logger): Promise<{ name: string; renamed: boolean }> {
  if (found.where === 'pod' && r.netns) return sendHome(r.netns, found.link, found.original, r.alias, log);
  // The name was read together with our mark a moment ago; the temp netns double-checks
  // by mark that the link it received is ours before renaming it.
  return withTempNetns('vdpa-cni', async (tmpNs) => {
    await ip(null, [['link', 'set', 'dev', found.link.name, 'netns', tmpNs]]);
    const moved = findMarked(await listLinks(tmpNs), r.hash);
    if (!moved) {
      const stray = (await listLinks(tmpNs)).filter((l) => l.name !== 'lo');
      await ip(tmpNs, stray.map((l) => ['link', 'set', 'dev', l.name, 'netns', HOST_NETNS]));
      throw new Error(`netdev ${found.link.name} changed while being returned; retry DEL`);
    }
    return sendHome(tmpNs, moved.link, moved.original, r.alias, log);
  });
}

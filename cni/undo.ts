/**
 * Undoing an attachment: the one routine behind DEL, the rollback of a failed ADD, the reclaim
 * of a VF whose previous pod was never deleted, and GC. Best effort: every undo runs even when
 * an earlier one failed; the failures are reported together at the end.
 * Order: representor down → port removed (and applied by ovs-vswitchd) → netdev back in the host
 * → IPAM released. The read-only lookups (where is the netdev, which ports are ours) run
 * alongside the first step.
 */
import type { Logger } from '../host/log.js';
import { ip, ipThenListLinks, isNetworkNamespace, readHostLink } from '../host/netns.js';
import type { OvsdbClient } from '../host/ovsdb.js';
import type { AttachmentState } from '../host/state.js';
import { ipamDel, type IpamCall } from './ipam.js';
import { attachmentHash, bringHome, locateNetdev, type ReturnRequest } from './netdev.js';
import { connectOvs, ownedPorts, OvsUnavailableError, unplug, type OwnedPort } from './port.js';

export interface UndoOptions {
  /** Release the IPAM lease too (DEL and ADD rollback; GC and reclaim leave it to IPAM GC / the pod's DEL). */
  readonly ipam: IpamCall | null;
  /** The OVSDB of the calling config (the runtime sends DEL the config ADD had). */
  readonly ovsdb: string;
  readonly log: Logger;
}

export class UndoError extends Error {
  constructor(readonly failures: readonly string[]) {
    super(failures.join('; '));
    this.name = 'UndoError';
  }
}

async function representorDown(name: string, log: Logger): Promise<void> {
  try {
    await ip(null, [['link', 'set', 'dev', name, 'down']]);
  } catch (err) {
    // A VF that is gone (SR-IOV disabled) takes its representor with it.
    if (!(err as { noDevice?: boolean }).noDevice) throw err;
    log.debug('representor is gone', { representor: name });
  }
}

/**
 * Representor down before the port goes: the next pod may already have been given the VF.
 * Down again if it is up once ovs-vswitchd has applied the removal: closing the port, it restores
 * the flags it changed (PROMISC) by writing back its cached flags, which may predate our down.
 * DEL, rollback, reclaim and GC hold the VF lock, so that cannot touch the next pod (GC removes
 * a port whose representor maps to no VF without it).
 */
export async function removeOwnedPort(client: OvsdbClient, port: OwnedPort, log: Logger, isDown = false): Promise<void> {
  if (!isDown) await representorDown(port.name, log);
  const removal = await unplug(client, port);
  if (removal.status !== 'removed') {
    log.info('OVS port already gone or taken over; left alone', { port: port.name, status: removal.status });
    return;
  }
  log.info('removed OVS port', { bridge: port.bridge, port: port.name, ifaceId: port.ifaceId });
  if (removal.applied === false) {
    log.warn('ovs-vswitchd has not applied the port removal in time (is it running?); going on', { port: port.name });
  }
  if (readHostLink(port.name)?.up) {
    log.info('representor up again after the port removal (ovs-vswitchd restored stale flags); setting it down', { representor: port.name });
    await representorDown(port.name, log);
  }
}

/** The attachment's ports and an open client; null when OVS is down (GC removes them later). */
async function findPorts(state: AttachmentState, ovsdb: string, log: Logger): Promise<{ client: OvsdbClient; ports: OwnedPort[] } | null> {
  let client: OvsdbClient;
  try {
    client = await connectOvs(ovsdb);
  } catch (err) {
    if (!(err instanceof OvsUnavailableError)) throw err;
    log.warn('OVSDB unreachable; leaving the port for GC', { ovsdb, error: err });
    return null;
  }
  try {
    return { client, ports: await ownedPorts(client, state) };
  } catch (err) {
    client.close();
    throw err;
  }
}

export async function undoAttachment(state: AttachmentState, opts: UndoOptions): Promise<void> {
  const { log } = opts;
  const done = new Set(state.steps);
  const failures: string[] = [];
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
      log.error(`undo failed: ${what}`, { error: err });
      return null;
    }
  };
  const netns = state.netns || null;
  const netdev: ReturnRequest = { netns, hash: attachmentHash(state.containerId, state.ifname), alias: state.netdevAlias };
  const rep = done.has('representor') ? state.representor : null;

  const wantNetdev = done.has('netdev') && state.driver === 'virtio';
  const podNetns = netns !== null && isNetworkNamespace(netns) ? netns : null;
  /** Representor down and a look at the pod's links, in one process when there is a pod. */
  const downAndLocate = async () => {
    if (wantNetdev && podNetns) {
      const { error, links } = await ipThenListLinks({ netns: null, commands: rep ? [['link', 'set', 'dev', rep, 'down']] : [] }, podNetns);
      if (error && !error.noDevice) throw error;
      return locateNetdev(netdev, links);
    }
    if (rep) await representorDown(rep, log);
    return wantNetdev ? locateNetdev(netdev, null) : null;
  };
  const [found, ovs] = await Promise.all([
    attempt('representor down / find netdev', downAndLocate),
    done.has('port') && state.bridge ? attempt('find OVS ports', () => findPorts(state, opts.ovsdb, log)) : null,
  ]);
  if (ovs) {
    try {
      for (const port of ovs.ports) await attempt('remove OVS port', () => removeOwnedPort(ovs.client, port, log, port.name === rep));
    } finally {
      ovs.client.close();
    }
  }
  if (found) {
    const home = await attempt('return netdev', () => bringHome(found, netdev, log));
    if (home) log.info('returned netdev to the host', { netdev: home.name, from: found.where });
  } else if (wantNetdev && failures.length === 0) {
    log.info('netdev not found in the pod or the host; nothing to return', { netdev: state.netdev });
  }
  if (done.has('ipam') && opts.ipam) {
    const call = opts.ipam;
    await attempt('IPAM DEL', () => ipamDel(call));
  }
  if (failures.length) throw new UndoError(failures);
}

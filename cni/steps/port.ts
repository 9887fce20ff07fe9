/**
 * Step "port": the representor's port in the OVS bridge, over the native OVSDB client
 * (host/ovs-*.ts): plugged for one attachment, watched until OVN has installed it, and removed
 * again. One connection per call; ports are found by the attachment that owns them (sandbox +
 * pod-if-name); errors become CNI errors an operator can act on.
 */
import type { Logger } from '../../host/log.js';
import { readHostLink } from '../../host/netns.js';
import { BridgeMissingError, plugPort, PortConflictError, unplugPort, type PlugPortSpec, type PortHolder, type UnplugResult } from '../../host/ovs-plug.js';
import { findOwnedPorts, type OwnedPort } from '../../host/ovs-ports.js';
import { waitInstalled } from '../../host/ovs-watch.js';
import { OvsdbClient } from '../../host/ovsdb.js';
import type { AttachmentState } from '../../host/state.js';
import { CniError, ErrorCode } from '../errors.js';
import type { AttachmentRef } from '../netconf.js';
import { holderGone } from '../gone.js';
import { representorDown } from './representor.js';

export type { OwnedPort };

/** OVSDB cannot be reached: DEL goes on without it, STATUS reports code 50. */
export class OvsUnavailableError extends Error {
  override name = 'OvsUnavailableError';
}

const CONNECT_TIMEOUT_MS = 3000;

export async function connectOvs(ovsdb: string): Promise<OvsdbClient> {
  try {
    return await OvsdbClient.connect(ovsdb, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw new OvsUnavailableError((err as Error).message);
  }
}

export function ownedPorts(client: OvsdbClient, owner: AttachmentRef): Promise<OwnedPort[]> {
  return findOwnedPorts(client, { sandbox: owner.containerId, podIfName: owner.ifname });
}

/** How long a removal waits for ovs-vswitchd to apply it; it may be down while OVSDB is up. */
const APPLY_TIMEOUT_MS = 5000;

/**
 * Removes a port of ours, and only while it still serves the attachment that owns it; waits
 * (bounded) until ovs-vswitchd has applied the removal, like ovs-vsctl del-port.
 */
function unplug(client: OvsdbClient, port: OwnedPort): Promise<UnplugResult> {
  const owner = port.sandbox !== undefined && port.podIfName !== undefined ? { sandbox: port.sandbox, podIfName: port.podIfName } : undefined;
  return unplugPort(client, { bridge: port.bridge, port: port.name, applyTimeoutMs: APPLY_TIMEOUT_MS, ...(owner ? { owner } : {}) });
}

/**
 * Do. A port of ours in the way (on this representor, or with this iface-id) is replaced only
 * when its attachment is provably gone: no state records it, or the state's pod is gone (a DEL
 * that ran while OVS was down leaves such a port). Anything else is refused: 11 for a live
 * attachment of ours, 7 for a port vdpa-cni does not own.
 */
export async function plug(client: OvsdbClient, log: Logger, stateDir: string, spec: Omit<PlugPortSpec, 'replaceable'>): Promise<void> {
  const replaceable = (h: PortHolder): Promise<boolean> => holderGone(stateDir, h, 'port', log);
  try {
    await plugPort(client, { ...spec, replaceable });
  } catch (err) {
    if (err instanceof PortConflictError) {
      throw new CniError(err.holders.some((h) => h.ours) ? ErrorCode.TryAgainLater : ErrorCode.InvalidConfig, err.message);
    }
    if (err instanceof BridgeMissingError) {
      throw new CniError(ErrorCode.TryAgainLater, err.message, 'is ovn-controller running, and is "bridge" right?');
    }
    throw err;
  }
}

export async function waitForOvn(client: OvsdbClient, port: string, ifaceId: string, timeoutMs: number): Promise<void> {
  try {
    await waitInstalled(client, { iface: port, ifaceId, timeoutMs });
  } catch (err) {
    throw new CniError(
      ErrorCode.TryAgainLater,
      (err as Error).message,
      `ovn-controller sets external_ids:ovn-installed once a Logical_Switch_Port named "${ifaceId}" is bound to this chassis`,
    );
  }
}

/** Every port of ours on the node, for GC. */
export const allOwnedPorts = (client: OvsdbClient): Promise<OwnedPort[]> => findOwnedPorts(client);

/** How the undo treats the port's link: set it down first, it is down already, or not ours to touch. */
export type LinkHandling = 'up' | 'down' | 'leave';

/**
 * Undo. Representor down before the port goes: the next pod may already have been given the VF.
 * Down again if it is up once ovs-vswitchd has applied the removal: closing the port, it restores
 * the flags it changed (PROMISC) by writing back its cached flags, which may predate our down.
 * DEL, rollback, reclaim and GC hold the VF lock, so that cannot touch the next pod. A port whose
 * name is no representor known from the state or sysfs has its row removed, its link left alone.
 */
export async function removeOwnedPort(client: OvsdbClient, port: OwnedPort, log: Logger, link: LinkHandling): Promise<void> {
  if (link === 'up') await representorDown(port.name, null, log);
  const removal = await unplug(client, port);
  if (removal.status !== 'removed') {
    log.info('OVS port already gone or taken over; left alone', { port: port.name, status: removal.status });
    return;
  }
  log.info('removed OVS port', { bridge: port.bridge, port: port.name, ifaceId: port.ifaceId });
  if (removal.applied === false) {
    log.warn('ovs-vswitchd has not applied the port removal in time (is it running?); going on', { port: port.name });
  }
  if (link !== 'leave' && readHostLink(port.name)?.up) {
    log.info('representor up again after the port removal (ovs-vswitchd restored stale flags); setting it down', { representor: port.name });
    await representorDown(port.name, null, log);
  }
}

/** The attachment's ports and an open client, for the undo; null when OVS is down (GC removes them later). */
export async function findAttachmentPorts(state: AttachmentState, ovsdb: string, log: Logger): Promise<{ client: OvsdbClient; ports: OwnedPort[] } | null> {
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

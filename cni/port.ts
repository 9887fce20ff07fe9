/**
 * The attachment's side of OVS, over the native OVSDB client (host/ovs.ts): one connection per
 * call, ports found by the attachment that owns them (sandbox + pod-if-name), errors turned
 * into CNI errors an operator can act on.
 */
import {
  BridgeMissingError,
  findOwnedPorts,
  plugPort,
  PortConflictError,
  unplugPort,
  waitInstalled,
  type OwnedPort,
  type PlugPortSpec,
  type UnplugResult,
} from '../host/ovs.js';
import type { Logger } from '../host/log.js';
import { OvsdbClient } from '../host/ovsdb.js';
import { CniError, ErrorCode } from './errors.js';

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

export interface Owner {
  readonly containerId: string;
  readonly ifname: string;
}

export function ownedPorts(client: OvsdbClient, owner: Owner): Promise<OwnedPort[]> {
  return findOwnedPorts(client, { sandbox: owner.containerId, podIfName: owner.ifname });
}

/** How long a removal waits for ovs-vswitchd to apply it; it may be down while OVSDB is up. */
const APPLY_TIMEOUT_MS = 5000;

/**
 * Removes a port of ours, and only while it still serves the attachment that owns it; waits
 * (bounded) until ovs-vswitchd has applied the removal, like ovs-vsctl del-port.
 */
export function unplug(client: OvsdbClient, port: OwnedPort): Promise<UnplugResult> {
  const owner = port.sandbox !== undefined && port.podIfName !== undefined ? { sandbox: port.sandbox, podIfName: port.podIfName } : undefined;
  return unplugPort(client, { bridge: port.bridge, port: port.name, applyTimeoutMs: APPLY_TIMEOUT_MS, ...(owner ? { owner } : {}) });
}

/**
 * A port of ours on the representor that serves another attachment is a leftover: ADD has already
 * undone every recorded attachment on this VF (reclaim), so its owner's DEL ran while OVS was
 * down. It is removed and the plug retried. A port that is not ours stays, and is refused.
 */
async function removeLeftover(client: OvsdbClient, log: Logger, spec: PlugPortSpec): Promise<boolean> {
  const leftovers = (await findOwnedPorts(client)).filter(
    (p) => p.name === spec.port && (p.sandbox !== spec.sandbox || p.podIfName !== spec.podIfName),
  );
  for (const port of leftovers) {
    log.warn('removing a leftover port of an attachment that no longer exists', {
      port: port.name,
      previousContainerID: port.sandbox,
      previousIfname: port.podIfName,
    });
    await unplug(client, port);
  }
  return leftovers.length > 0;
}

export async function plug(client: OvsdbClient, log: Logger, spec: PlugPortSpec): Promise<void> {
  try {
    try {
      await plugPort(client, spec);
    } catch (err) {
      if (!(err instanceof PortConflictError) || !(await removeLeftover(client, log, spec))) throw err;
      await plugPort(client, spec);
    }
  } catch (err) {
    if (err instanceof PortConflictError) throw new CniError(ErrorCode.InvalidConfig, err.message);
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

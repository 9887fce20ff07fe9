/**
 * Step "lsp" (ovn.mode "managed"): the pod's Logical_Switch_Port, created by vdpa-cni on an
 * existing logical switch with the pod's MAC and addresses as `addresses` and `port_security`,
 * and removed again; host/ovn-nb.ts holds the guarded writes. A port we did not create is never
 * touched; one of ours that serves another attachment is replaced only when that attachment is
 * gone (cni/gone.ts).
 */
import type { Logger } from '../../host/log.js';
import { createLsp, deleteLsp, findOwnedLsps, LogicalSwitchMissingError, LspConflictError, type OwnedLsp } from '../../host/ovn-nb.js';
import { OvsdbClient } from '../../host/ovsdb.js';
import { CniError, ErrorCode } from '../errors.js';
import { holderGone } from '../gone.js';
import { parseCidr } from '../ip.js';
import type { Result } from '../result.js';

const CONNECT_TIMEOUT_MS = 3000;

export interface LspRequest {
  readonly nbdb: string;
  readonly logicalSwitch: string;
  readonly name: string;
  readonly mac: string | null;
  readonly addresses: Result;
  readonly sandbox: string;
  readonly podIfName: string;
  readonly network: string;
  readonly podUid: string | null;
}

/** Runs `fn` on one connection to the Northbound database, closed afterwards. */
async function withNb<T>(nbdb: string, fn: (client: OvsdbClient) => Promise<T>): Promise<T> {
  let client: OvsdbClient;
  try {
    client = await OvsdbClient.connect(nbdb, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw new CniError(ErrorCode.TryAgainLater, `OVN Northbound database at ${nbdb} is unreachable: ${(err as Error).message}`, 'is ovn-central running, and is "ovn.nbdb" right?');
  }
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `"<mac> <ip> …"`: OVN's form for a port's addresses (IPs without their prefix). */
function lspAddresses(mac: string, addresses: Result): string {
  return [mac, ...addresses.ips.map((a) => parseCidr(a.address)?.ip ?? a.address)].join(' ');
}

/** Do. */
export async function createPort(req: LspRequest, stateDir: string, log: Logger): Promise<void> {
  const replaceable = (h: OwnedLsp): Promise<boolean> => holderGone(stateDir, h, 'logical port', log);
  const entry = req.mac ? lspAddresses(req.mac, req.addresses) : 'unknown';
  if (!req.mac) log.warn('no MAC for the logical port; it allows any address (set "mac" or runtimeConfig.mac)', { lsp: req.name });
  const spec = { logicalSwitch: req.logicalSwitch, name: req.name, addresses: entry, portSecurity: req.mac ? entry : null, sandbox: req.sandbox, podIfName: req.podIfName, network: req.network, ifaceIdVer: req.podUid };
  try {
    const { created } = await withNb(req.nbdb, (client) => createLsp(client, spec, replaceable));
    log.info(created ? 'created logical switch port' : 'updated logical switch port', { lsp: req.name, logicalSwitch: req.logicalSwitch, addresses: entry });
  } catch (err) {
    if (err instanceof LspConflictError) throw new CniError(err.ours ? ErrorCode.TryAgainLater : ErrorCode.InvalidConfig, err.message);
    if (err instanceof LogicalSwitchMissingError) throw new CniError(ErrorCode.InvalidConfig, `ovn.logicalSwitch: ${err.message}`);
    throw err;
  }
}

async function remove(client: OvsdbClient, name: string, owner: { readonly sandbox: string; readonly podIfName: string }, log: Logger): Promise<void> {
  const r = await deleteLsp(client, name, owner);
  if (r === 'removed') log.info('removed logical switch port', { lsp: name });
  else log.info('logical switch port already gone or not ours; left alone', { lsp: name, status: r });
}

/** Undo: only while the port is ours and serves this attachment. */
export function removePort(lsp: { readonly name: string; readonly nbdb: string }, owner: { readonly sandbox: string; readonly podIfName: string }, log: Logger): Promise<void> {
  return withNb(lsp.nbdb, (client) => remove(client, lsp.name, owner, log));
}

/** GC: this network's ports of ours whose attachment `isValid` no longer lists, on one connection. */
export function collectStalePorts(nbdb: string, network: string, isValid: (sandbox: string, podIfName: string) => boolean, log: Logger): Promise<void> {
  return withNb(nbdb, async (client) => {
    for (const l of await findOwnedLsps(client)) {
      if (l.network !== network || l.sandbox === undefined || l.podIfName === undefined || isValid(l.sandbox, l.podIfName)) continue;
      log.info('collecting stale logical switch port', { lsp: l.name, containerID: l.sandbox, ifname: l.podIfName });
      await remove(client, l.name, { sandbox: l.sandbox, podIfName: l.podIfName }, log);
    }
  });
}

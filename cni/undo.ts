/**
 * Undoing an attachment: the one routine behind DEL, the rollback of a failed ADD, the reclaim
 * of a VF whose previous pod was never deleted, and GC. Best effort: every undo runs even when
 * an earlier one failed; the failures are reported together at the end.
 * Order: representor down → port removed → netdev back in the host → IPAM released.
 */
import type { Logger } from '../host/log.js';
import { ip, isNetworkNamespace } from '../host/netns.js';
import type { AttachmentState } from '../host/state.js';
import { ipamDel, type IpamCall } from './ipam.js';
import { attachmentHash, returnNetdev } from './netdev.js';
import type { OvsdbClient } from '../host/ovsdb.js';
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

/** Representor down before the port goes: the next pod may already have been given the VF. */
export async function removeOwnedPort(client: OvsdbClient, port: OwnedPort, log: Logger): Promise<void> {
  await representorDown(port.name, log);
  await unplug(client, port);
  log.info('removed OVS port', { bridge: port.bridge, port: port.name, ifaceId: port.ifaceId });
}

/** Removes the attachment's ports; OVS being down is not a failure: GC removes them later. */
async function removePorts(state: AttachmentState, ovsdb: string, log: Logger): Promise<void> {
  let client: OvsdbClient;
  try {
    client = await connectOvs(ovsdb);
  } catch (err) {
    if (!(err instanceof OvsUnavailableError)) throw err;
    log.warn('OVSDB unreachable; leaving the port for GC', { ovsdb, error: err });
    return;
  }
  try {
    for (const port of await ownedPorts(client, state)) await removeOwnedPort(client, port, log);
  } finally {
    client.close();
  }
}

export async function undoAttachment(state: AttachmentState, opts: UndoOptions): Promise<void> {
  const { log } = opts;
  const done = new Set(state.steps);
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
      log.error(`undo failed: ${what}`, { error: err });
    }
  };
  if (done.has('representor') && state.representor) {
    const rep = state.representor;
    await attempt('representor down', () => representorDown(rep, log));
  }
  if (done.has('port') && state.bridge) await attempt('remove OVS port', () => removePorts(state, opts.ovsdb, log));
  if (done.has('netdev') && state.driver === 'virtio') {
    await attempt('return netdev', async () => {
      const netns = state.netns || null;
      const outcome = await returnNetdev(
        { netns, hash: attachmentHash(state.containerId, state.ifname), alias: state.netdevAlias },
        netns !== null && isNetworkNamespace(netns),
        log,
      );
      if ('absent' in outcome) log.info('netdev not found in the pod or the host; nothing to return', { netdev: state.netdev });
      else log.info('returned netdev to the host', { netdev: outcome.returned, from: outcome.from });
    });
  }
  if (done.has('ipam') && opts.ipam) {
    const call = opts.ipam;
    await attempt('IPAM DEL', () => ipamDel(call));
  }
  if (failures.length) throw new UndoError(failures);
}

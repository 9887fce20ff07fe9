/**
 * Undoing an attachment from its journal: the one routine behind DEL, the rollback of a failed
 * ADD, the reclaim of a VF whose previous pod was never deleted, and GC. It calls each recorded
 * step's undo (cni/steps/) in this order: representor down → port removed (and applied by
 * ovs-vswitchd) → logical port removed (managed mode), and alongside the port's removal the
 * netdev back in the host → IPAM released. The read-only lookups (where is the netdev, which
 * ports are ours) run alongside the first. Best effort: every undo runs even when an earlier one
 * failed; the failures are reported together at the end.
 */
import type { Logger } from '../host/log.js';
import type { AttachmentState } from '../host/state.js';
import type { IpamCall } from './ipam.js';
import { releaseAddresses } from './steps/ipam.js';
import { bringHome, findNetdev, returnRequestFor } from './steps/netdev.js';
import { removePort } from './steps/lsp.js';
import { findAttachmentPorts, removeOwnedPort } from './steps/port.js';
import { representorDown, representorDownCommand } from './steps/representor.js';

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
  const netdev = returnRequestFor(state);
  const rep = done.has('representor') ? state.representor : null;
  const wantNetdev = done.has('netdev') && state.driver === 'virtio';

  /** The representor's down (and its MTU back) rides in the netdev's look into the pod when there is one. */
  const downAndLocate = async () => {
    if (wantNetdev) return findNetdev(netdev, rep ? [representorDownCommand(rep, state.representorMtu)] : []);
    if (rep) await representorDown(rep, state.representorMtu, log);
    return null;
  };
  const [found, ovs] = await Promise.all([
    attempt('representor down / find netdev', downAndLocate),
    done.has('port') && state.bridge ? attempt('find OVS ports', () => findAttachmentPorts(state, opts.ovsdb, log)) : null,
  ]);
  // The port's removal (until ovs-vswitchd has applied it) and the netdev's trip home act on
  // different links, under the VF's lock: side by side, DEL does not wait for ovs-vswitchd before
  // it starts moving the netdev.
  const unplugging = (async () => {
    if (ovs) {
      try {
        // Only the representor the state names: an OVSDB row alone never names a link we act on.
        const ports = ovs.ports.filter((p) => p.name === state.representor);
        for (const port of ports) await attempt('remove OVS port', () => removeOwnedPort(ovs.client, port, log, port.name === rep ? 'down' : 'up'));
      } finally {
        ovs.client.close();
      }
    }
    // The logical port after the OVS port: ovn-controller unbinds a port whose Interface went first.
    const lsp = state.lsp;
    if (done.has('lsp') && lsp) await attempt('remove logical port', () => removePort(lsp, { sandbox: state.containerId, podIfName: state.ifname }, log));
  })();
  const returning = (async () => {
    if (!found) return;
    const home = await attempt('return netdev', () => bringHome(found, netdev, log));
    if (home) log.info('returned netdev to the host', { netdev: home.name, from: found.where });
  })();
  await Promise.all([unplugging, returning]);
  if (!found && wantNetdev && failures.length === 0) {
    log.info('netdev not found in the pod or the host; nothing to return', { netdev: state.netdev });
  }
  if (done.has('ipam') && opts.ipam) {
    const call = opts.ipam;
    await attempt('IPAM DEL', () => releaseAddresses(call));
  }
  if (failures.length) throw new UndoError(failures);
}

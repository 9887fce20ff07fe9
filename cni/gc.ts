/**
 * GC (1.1.0): undo every attachment of ours that `cni.dev/valid-attachments` does not list —
 * recorded ones by their state, unrecorded ones by their OVS rows and by marked netdevs the
 * kernel handed back to the host when their netns went away — then let IPAM collect its leases.
 */
import { listLinks } from '../host/netns.js';
import { listStates, removeState } from '../host/state.js';
import { ipamCall, lockVf, type CallContext } from './context.js';
import { CniError, ErrorCode } from './errors.js';
import { ipamGc } from './ipam.js';
import { attachmentHash, bringHome, parseMark } from './netdev.js';
import { findOwnedPorts } from '../host/ovs.js';
import { connectOvs, OvsUnavailableError } from './port.js';
import { removeOwnedPort, undoAttachment } from './undo.js';

export async function cmdGc(ctx: CallContext): Promise<void> {
  const { conf, log, paths } = ctx;
  const valid = new Set((conf.validAttachments ?? []).map((a) => attachmentHash(a.containerId, a.ifname)));
  const isValid = (containerId: string, ifname: string) => valid.has(attachmentHash(containerId, ifname));
  const failures: string[] = [];

  const { states, errors } = listStates(paths.stateDir);
  for (const e of errors) log.warn('unreadable attachment state left alone', { error: e });
  for (const state of states.filter((s) => !isValid(s.containerId, s.ifname))) {
    const lock = await lockVf(ctx, state.pciAddress);
    try {
      log.info('collecting stale attachment', { containerID: state.containerId, ifname: state.ifname, pciAddress: state.pciAddress });
      await undoAttachment(state, { ipam: null, ovsdb: conf.ovsdb, log });
      removeState(paths.stateDir, state.containerId, state.ifname);
    } catch (err) {
      failures.push(`${state.containerId}/${state.ifname}: ${(err as Error).message}`);
    } finally {
      await lock.release();
    }
  }

  if (conf.bridge) {
    try {
      const client = await connectOvs(conf.ovsdb);
      try {
        for (const port of await findOwnedPorts(client)) {
          if (port.sandbox !== undefined && port.podIfName !== undefined && isValid(port.sandbox, port.podIfName)) continue;
          log.info('collecting stale OVS port', { port: port.name, containerID: port.sandbox, ifname: port.podIfName });
          await removeOwnedPort(client, port, log);
        }
      } finally {
        client.close();
      }
    } catch (err) {
      if (!(err instanceof OvsUnavailableError)) throw err;
      failures.push(`OVSDB unreachable, stale ports not collected: ${err.message}`);
    }
  }

  for (const link of await listLinks(null)) {
    const mark = parseMark(link.alias);
    if (!mark || valid.has(mark.hash)) continue;
    const home = await bringHome({ where: 'host', link, original: mark.original }, { netns: null, hash: mark.hash, alias: '' }, log);
    log.info('returned orphaned netdev', { netdev: home.name, was: link.name });
  }

  const ipam = ipamCall(ctx);
  if (ipam) await ipamGc(ipam);
  if (failures.length) throw new CniError(ErrorCode.TryAgainLater, 'GC incomplete', failures.join('; '));
}

/**
 * GC (1.1.0): undo every attachment of this network (the config's name) that
 * `cni.dev/valid-attachments` does not list — recorded ones by their state, unrecorded ones by
 * their OVS rows and by marked netdevs the kernel handed back to the host when their netns went
 * away — then let IPAM collect its leases. Another network's attachments are never touched.
 * Whatever sits on a VF is undone under that VF's lock, as ADD and DEL hold it. One failure
 * does not stop the rest: they are reported together at the end.
 */
import { representorOwners } from '../host/discover.js';
import { listLinks } from '../host/netns.js';
import type { OvsdbClient } from '../host/ovsdb.js';
import { listStates, readState, removeState, removeStaleTempFiles } from '../host/state.js';
import { ipamCall, lockVf, type CallContext } from './context.js';
import { CniError, ErrorCode } from './errors.js';
import { ipamGc } from './ipam.js';
import { attachmentHash, bringHome, networkHash, parseMark } from './steps/netdev.js';
import { allOwnedPorts, connectOvs, OvsUnavailableError, removeOwnedPort, type OwnedPort } from './steps/port.js';
import { collectStalePorts } from './steps/lsp.js';
import { undoAttachment } from './undo.js';

/** Why a port listed as stale must now be left alone (an ADD gave its VF to a new pod), or null. */
async function takenOver(client: OvsdbClient, stateDir: string, port: OwnedPort): Promise<string | null> {
  const now = (await allOwnedPorts(client)).find((p) => p.name === port.name);
  if (!now) return 'no longer a port of ours';
  if (now.sandbox !== port.sandbox || now.podIfName !== port.podIfName) return `now serves ${now.sandbox}/${now.podIfName}`;
  const claim = listStates(stateDir).states.find((s) => s.representor === port.name);
  return claim ? `claimed by the attachment state of ${claim.containerId}/${claim.ifname}` : null;
}

/**
 * Under the VF's lock, like DEL: an ADD racing GC may have handed the VF to a new pod since the
 * listing, and setting the representor down would cut that pod off. A port whose name is no
 * representor on the node (by sysfs) has no VF to race for: its row goes, and no link is touched.
 */
async function collectStalePort(ctx: CallContext, client: OvsdbClient, port: OwnedPort, pciAddress: string | null): Promise<void> {
  const { log } = ctx;
  const lock = pciAddress ? await lockVf(ctx, pciAddress) : null;
  try {
    const fields = { port: port.name, containerID: port.sandbox, ifname: port.podIfName, pciAddress };
    const reason = await takenOver(client, ctx.paths.stateDir, port);
    if (reason) {
      log.info('stale OVS port taken over since it was listed; left alone', { ...fields, reason });
      return;
    }
    log.info('collecting stale OVS port', fields);
    await removeOwnedPort(client, port, log, pciAddress ? 'up' : 'leave');
  } finally {
    await lock?.release();
  }
}

export async function cmdGc(ctx: CallContext): Promise<void> {
  const { conf, log, paths } = ctx;
  const valid = new Set((conf.validAttachments ?? []).map((a) => attachmentHash(a.containerId, a.ifname)));
  const isValid = (containerId: string, ifname: string) => valid.has(attachmentHash(containerId, ifname));
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
      log.error(`GC: ${what} failed`, { error: err });
    }
  };

  const { states, errors } = listStates(paths.stateDir);
  for (const e of errors) log.warn('unreadable attachment state left alone', { error: e });
  for (const listed of states.filter((s) => s.network === conf.name && !isValid(s.containerId, s.ifname))) {
    await attempt(`${listed.containerId}/${listed.ifname}`, async () => {
      const lock = await lockVf(ctx, listed.pciAddress);
      try {
        // Read again under the lock: a DEL or a reclaiming ADD may have finished it meanwhile.
        const state = readState(paths.stateDir, listed.containerId, listed.ifname);
        if (!state) return;
        log.info('collecting stale attachment', { containerID: state.containerId, ifname: state.ifname, pciAddress: state.pciAddress });
        await undoAttachment(state, { ipam: null, ovsdb: conf.ovsdb, log });
        removeState(paths.stateDir, state.containerId, state.ifname);
      } finally {
        await lock.release();
      }
    });
  }

  if (conf.bridge) {
    await attempt('stale OVS ports', async () => {
      let client: OvsdbClient;
      try {
        client = await connectOvs(conf.ovsdb);
      } catch (err) {
        if (err instanceof OvsUnavailableError) throw new Error(`OVSDB unreachable, stale ports not collected: ${err.message}`);
        throw err;
      }
      try {
        const stale = (await allOwnedPorts(client)).filter(
          (port) => port.network === conf.name && (port.sandbox === undefined || port.podIfName === undefined || !isValid(port.sandbox, port.podIfName)),
        );
        // The VF behind each representor (the key ADD and DEL lock it by); names no VF has are left out.
        const vfOf = stale.length ? representorOwners({ sysfsRoot: paths.sysfsRoot, devRoot: paths.devRoot }, stale.map((p) => p.name)) : new Map<string, string>();
        for (const port of stale) await attempt(`port ${port.name}`, () => collectStalePort(ctx, client, port, vfOf.get(port.name) ?? null));
      } finally {
        client.close();
      }
    });
  }

  if (conf.ovn.mode === 'managed') {
    const nbdb = conf.ovn.nbdb;
    await attempt('stale logical ports', () => collectStalePorts(nbdb, conf.name, isValid, log));
  }

  const ours = networkHash(conf.name);
  await attempt('orphaned netdevs', async () => {
    for (const link of await listLinks(null)) {
      const mark = parseMark(link.alias);
      if (!mark || mark.network !== ours || valid.has(mark.hash)) continue;
      await attempt(`orphaned netdev ${link.name}`, async () => {
        const request = { netns: null, network: mark.network, hash: mark.hash, identity: null, original: null, mac: null, mtu: null, alias: '' };
        const home = await bringHome({ where: 'host', link }, request, log);
        log.info('returned orphaned netdev', { netdev: home.name, was: link.name });
      });
    }
  });
  for (const file of removeStaleTempFiles(paths.stateDir)) log.info('removed a state file left half-written by a killed call', { file });

  const ipam = ipamCall(ctx);
  if (ipam) await attempt('IPAM GC', () => ipamGc(ipam));
  if (failures.length) throw new CniError(ErrorCode.TryAgainLater, 'GC incomplete', failures.join('; '));
}

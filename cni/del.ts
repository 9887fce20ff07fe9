/**
 * DEL: idempotent and best effort. The state file says what ADD did; without one (lost, or ADD
 * never got far) the OVS rows and the netdev's mark hint at it instead, and only representors
 * sysfs knows are acted on. Either way it ends with the VF's netdev back in the host under its
 * original name and no port of this attachment in OVS.
 */
import { endpointFor } from '../host/endpoint.js';
import { discoverFunction } from '../host/discover.js';
import type { Lock } from '../host/lock.js';
import { ATTACH_STEPS, readState, removeState, type AttachmentState } from '../host/state.js';
import { ipamCall, lockVf, type CallContext } from './context.js';
import { ifaceIdOf } from './netconf.js';
import { undoAttachment } from './undo.js';

function stateOf(ctx: CallContext): AttachmentState | null {
  try {
    return readState(ctx.paths.stateDir, ctx.env.containerId, ctx.env.ifname);
  } catch (err) {
    ctx.log.warn('attachment state unreadable; deleting by what the host shows', { error: err });
    return null;
  }
}

/**
 * The representor sysfs gives the config's deviceID, if any: the only link DEL without state may
 * touch. Read from that function alone, not the whole node.
 */
function representorOf(ctx: CallContext): string | null {
  const { deviceId } = ctx.conf;
  if (!deviceId || !ctx.conf.bridge) return null;
  try {
    return endpointFor(discoverFunction({ sysfsRoot: ctx.paths.sysfsRoot, devRoot: ctx.paths.devRoot }, deviceId), deviceId).representor;
  } catch {
    return null;
  }
}

/** The logical port a managed-mode ADD would have created, when the runtime sent what names it. */
function managedLsp(ctx: CallContext): AttachmentState['lsp'] {
  if (ctx.conf.ovn.mode !== 'managed') return null;
  try {
    return { name: ifaceIdOf(ctx.conf, ctx.env), nbdb: ctx.conf.ovn.nbdb };
  } catch {
    return null;
  }
}

/**
 * What DEL assumes when there is no state: every step may have happened, but the representor's
 * own step is not assumed: its down comes with the removal of a port of this attachment, so a
 * VF that another pod holds keeps its representor up.
 */
function assumedState(ctx: CallContext): AttachmentState {
  const { env, conf } = ctx;
  return {
    network: conf.name,
    containerId: env.containerId,
    ifname: env.ifname,
    netns: env.netns,
    pciAddress: conf.deviceId ?? '',
    driver: 'virtio',
    netdev: null,
    netdevAlias: '',
    netdevMac: null,
    netdevMtu: null,
    netdevIdentity: null,
    mark: '',
    representor: representorOf(ctx),
    representorMtu: null,
    lsp: managedLsp(ctx),
    bridge: conf.bridge,
    ifaceId: null,
    steps: ATTACH_STEPS.filter((s) => s !== 'representor'),
    createdAt: new Date().toISOString(),
  };
}

export async function cmdDel(ctx: CallContext): Promise<void> {
  const { env, log } = ctx;
  let state = stateOf(ctx);
  const pciAddress = state?.pciAddress || ctx.conf.deviceId;
  const lock: Lock | null = pciAddress ? await lockVf(ctx, pciAddress) : null;
  try {
    // An ADD of another pod may have reclaimed the VF while we waited for the lock.
    if (lock) state = stateOf(ctx);
    if (!state) log.info('no attachment state; deleting by OVS rows and the netdev mark');
    await undoAttachment(state ?? assumedState(ctx), { ipam: ipamCall(ctx), ovsdb: ctx.conf.ovsdb, log });
    removeState(ctx.paths.stateDir, env.containerId, env.ifname);
  } finally {
    await lock?.release();
  }
}

/**
 * DEL: idempotent and best effort. The state file says what ADD did; without one (lost, or ADD
 * never got far) the OVS rows and the netdev's mark say it instead. Either way it ends with the
 * VF's netdev back in the host under its original name and no port of this attachment in OVS.
 */
import type { Lock } from '../host/lock.js';
import { ATTACH_STEPS, readState, removeState, type AttachmentState } from '../host/state.js';
import { ipamCall, lockVf, type CallContext } from './context.js';
import { undoAttachment } from './undo.js';

function stateOf(ctx: CallContext): AttachmentState | null {
  try {
    return readState(ctx.paths.stateDir, ctx.env.containerId, ctx.env.ifname);
  } catch (err) {
    ctx.log.warn('attachment state unreadable; deleting by what the host shows', { error: err });
    return null;
  }
}

/** What DEL assumes when there is no state: every step may have happened. */
function assumedState(ctx: CallContext): AttachmentState {
  const { env, conf } = ctx;
  return {
    containerId: env.containerId,
    ifname: env.ifname,
    netns: env.netns,
    pciAddress: conf.deviceId ?? '',
    driver: 'virtio',
    netdev: null,
    netdevAlias: '',
    mark: '',
    representor: null,
    bridge: conf.bridge,
    ifaceId: null,
    steps: ATTACH_STEPS,
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

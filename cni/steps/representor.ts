/**
 * Step "representor": the VF's representor goes up, with the pod's MTU, only after its port is
 * in br-int (docs/ovn.md), and down again before the port goes. Its commands ride in the netdev
 * step's `ip` process when there is one (cni/steps/netdev.ts).
 */
import type { Logger } from '../../host/log.js';
import { ip, type IpCommand } from '../../host/netns.js';

/** Do. */
export const representorUp = (name: string, mtu: number | null): IpCommand => ['link', 'set', 'dev', name, ...(mtu ? ['mtu', String(mtu)] : []), 'up'];

/** Undo, as a command for a batch: down, with the MTU it had before ADD when that is known. */
export const representorDownCommand = (name: string, mtu: number | null): IpCommand => ['link', 'set', 'dev', name, ...(mtu ? ['mtu', String(mtu)] : []), 'down'];

/** Undo, on its own. A VF that is gone (SR-IOV disabled) takes its representor with it. */
export async function representorDown(name: string, mtu: number | null, log: Logger): Promise<void> {
  try {
    await ip(null, [representorDownCommand(name, mtu)]);
  } catch (err) {
    if (!(err as { noDevice?: boolean }).noDevice) throw err;
    log.debug('representor is gone', { representor: name });
  }
}

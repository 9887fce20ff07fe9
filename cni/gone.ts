/** Whether an attachment still holds its VF: reclaim and replacing a port act only on the gone. */
import { isNetworkNamespace } from '../host/netns.js';
import type { Logger } from '../host/log.js';
import { readState, type AttachmentState } from '../host/state.js';
import { isHome, returnRequestFor } from './steps/netdev.js';

/**
 * Why an attachment is provably gone, or null while it may still hold its VF: its recorded netns
 * no longer exists, or its netdev is already back in the host.
 */
export async function attachmentGone(state: AttachmentState): Promise<string | null> {
  if (!state.netns || !isNetworkNamespace(state.netns)) return `its network namespace ${state.netns || '(none)'} is gone`;
  if (state.driver === 'virtio' && (await isHome(returnRequestFor(state)))) return 'its netdev is back in the host';
  return null;
}

/**
 * For a row of ours that serves another attachment (an OVS port, a logical port): true when
 * that attachment is provably gone (no state records it, or its state's pod is gone), so the
 * row may be replaced; logged then.
 */
export async function holderGone(stateDir: string, holder: { readonly name: string; readonly sandbox: string | undefined; readonly podIfName: string | undefined }, what: string, log: Logger): Promise<boolean> {
  if (holder.sandbox === undefined || holder.podIfName === undefined) return false;
  const state = readState(stateDir, holder.sandbox, holder.podIfName);
  const gone = state ? await attachmentGone(state) : 'no attachment state records it';
  if (gone) log.warn(`replacing a ${what} of an attachment that is gone`, { [what === 'port' ? 'port' : 'lsp']: holder.name, previousContainerID: holder.sandbox, previousIfname: holder.podIfName, why: gone });
  return gone !== null;
}

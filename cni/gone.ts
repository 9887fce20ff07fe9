/** Whether an attachment still holds its VF: reclaim and replacing a port act only on the gone. */
import { isNetworkNamespace } from '../host/netns.js';
import type { AttachmentState } from '../host/state.js';
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

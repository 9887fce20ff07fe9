/**
 * Step "ipam": the lease the delegated IPAM plugin hands out, and its release.
 */
import { ipamAdd, ipamDel, type IpamCall } from '../ipam.js';
import type { AttachmentJournal } from '../journal.js';
import type { Result } from '../result.js';

/** Do: an IPAM plugin whose ADD fails has released what it took (its side of the contract). */
export function allocateAddresses(journal: AttachmentJournal, call: IpamCall): Promise<Result> {
  return journal.step(['ipam'], () =>
    ipamAdd(call).catch((err: unknown) => {
      journal.forget('ipam');
      throw err;
    }),
  );
}

/** Undo (DEL and ADD rollback; GC and reclaim leave the lease to IPAM GC and the pod's own DEL). */
export const releaseAddresses = (call: IpamCall): Promise<void> => ipamDel(call);

/**
 * Step "ipam": the lease the delegated IPAM plugin hands out, and its release.
 */
import { ipamAdd, ipamDel, type IpamCall } from '../ipam.js';
import type { Logger } from '../../host/log.js';
import type { AttachmentJournal } from '../journal.js';
import type { Result } from '../result.js';

/**
 * Do. When the IPAM ADD fails, its DEL runs at once (the spec's rule for a delegate that failed:
 * it frees whatever it half-took); the plugin's own ADD failure has freed the lease by its
 * contract, so a failing DEL then leaves nothing for our DEL to retry.
 */
export function allocateAddresses(journal: AttachmentJournal, call: IpamCall, log: Logger): Promise<Result> {
  return journal.step(['ipam'], () =>
    ipamAdd(call).catch(async (err: unknown) => {
      await releaseAddresses(call).catch((delErr: unknown) => log.warn('IPAM DEL after its failed ADD failed too', { error: delErr }));
      journal.forget('ipam');
      throw err;
    }),
  );
}

/** Undo (DEL and ADD rollback; GC and reclaim leave the lease to IPAM GC and the pod's own DEL). */
export const releaseAddresses = (call: IpamCall): Promise<void> => ipamDel(call);

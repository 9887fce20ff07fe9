import { acquireLock, type Lock } from '../host/lock.js';
import type { Logger } from '../host/log.js';
import type { HostPaths } from '../host/paths.js';
import { CniError, ErrorCode } from './errors.js';
import type { IpamCall } from './ipam.js';
import type { StepObserver } from './journal.js';
import type { CniEnv, NetConf } from './netconf.js';

/** Everything one CNI call knows before it touches the host. */
export interface CallContext {
  readonly env: CniEnv;
  readonly conf: NetConf;
  /** The network config exactly as received (IPAM gets it unchanged). */
  readonly stdin: string;
  readonly paths: HostPaths;
  readonly log: Logger;
  /** Told of each ADD step; only the test suites install one (cni/main.ts). */
  readonly observer: StepObserver | null;
  /** What the call's outcome record counts besides its result (host/outcomes.ts). */
  readonly tally: { rollbacks: number; reclaims: number };
}

/** The IPAM call for this request, or null when the config has no IPAM. */
export function ipamCall(ctx: CallContext): IpamCall | null {
  return ctx.conf.ipamType ? { type: ctx.conf.ipamType, env: ctx.env, stdin: ctx.stdin, log: ctx.log } : null;
}

/** How long a call waits for another call to release the VF it wants. */
const LOCK_TIMEOUT_MS = 60_000;

/** Locks the VF for the rest of the call; a busy VF past the timeout is "try again later". */
export async function lockVf(ctx: CallContext, pciAddress: string): Promise<Lock> {
  try {
    return await acquireLock(pciAddress, {
      scope: ctx.paths.stateDir,
      timeoutMs: LOCK_TIMEOUT_MS,
      onWait: (holder) => ctx.log.info('VF is busy; waiting for its lock', { pciAddress, holderPid: holder }),
    });
  } catch (err) {
    throw new CniError(ErrorCode.TryAgainLater, `VF ${pciAddress}: ${(err as Error).message}`);
  }
}

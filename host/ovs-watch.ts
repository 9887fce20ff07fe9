/**
 * Watching the Open_vSwitch database with monitors instead of polling: until ovs-vswitchd has
 * applied a write (next_cfg/cur_cfg, as ovs-vsctl waits), and until ovn-controller has set
 * ovn-installed on a port (docs/ovn.md).
 */
import {
  applyMapDiff,
  setAtoms,
  stringMap,
  type Monitor,
  type OvsAtom,
  type OvsdbClient,
  type OvsValue,
  type Operation,
  type SelectResult,
} from './ovsdb.js';
import { DB, eq, select } from './ovs-ports.js';

/**
 * Appended to a write transaction: asks ovs-vswitchd to confirm it has applied it, the way
 * ovs-vsctl does (next_cfg += 1; vswitchd copies next_cfg to cur_cfg once reconfigured).
 */
export const requestApply = [
  { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
  select('Open_vSwitch', [], ['next_cfg']),
] as const satisfies readonly Operation[];


export function nextCfgOf(r: SelectResult): number {
  const cfg = r.rows[0]?.next_cfg;
  if (typeof cfg !== 'number') throw new Error(`Open_vSwitch.next_cfg is not a number: ${JSON.stringify(cfg)}`);
  return cfg;
}


/**
 * Resolves true once ovs-vswitchd has applied configuration `cfg` (Open_vSwitch.cur_cfg >= cfg),
 * watching the row with a monitor; false after `timeoutMs` (ovs-vswitchd may be down while
 * ovsdb-server is up). Rejects when the connection drops.
 */
export function waitApplied(client: OvsdbClient, cfg: number, timeoutMs: number): Promise<boolean> {
  return watch<boolean>(client, { what: `waiting for ovs-vswitchd to apply configuration ${cfg}`, timeoutMs, onTimeout: () => false }, (settle) =>
    client.monitor(DB, { Open_vSwitch: { columns: ['cur_cfg'] } }, (updates) => {
      for (const u of Object.values(updates.Open_vSwitch ?? {})) {
        const cur = u.new?.cur_cfg;
        if (typeof cur === 'number' && cur >= cfg) settle(true);
      }
    }),
  );
}

export interface WaitInstalledSpec {
  readonly iface: string;
  readonly ifaceId: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** Applies an update2 diff to a set column (min 0 / max >1): the diff is the symmetric difference. */
function applySetDiff(old: readonly OvsAtom[], diff: OvsValue | undefined): OvsAtom[] {
  const key = (a: OvsAtom): string => JSON.stringify(a);
  const next = new Map(old.map((a) => [key(a), a]));
  for (const a of setAtoms(diff)) {
    if (next.has(key(a))) next.delete(key(a));
    else next.set(key(a), a);
  }
  return [...next.values()];
}

/**
 * Resolves once ovn-controller has set external_ids:ovn-installed="true" on `iface`, watching
 * the row with monitor_cond (no polling). Rejects on timeout, on abort, when the row goes away,
 * or when its iface-id changes (another attachment took the port), like ovn-kubernetes.
 */
export function waitInstalled(client: OvsdbClient, spec: WaitInstalledSpec): Promise<void> {
  const { iface, ifaceId } = spec;
  let ids: Record<string, string> | undefined;
  let ovsError: OvsAtom[] = [];
  const onTimeout = (): Error => {
    const why = typeof ovsError[0] === 'string' ? `; OVS reports: ${ovsError[0]}` : '';
    return new Error(`timed out waiting for OVN to install flows for ${iface} (iface-id ${ifaceId})${why}`);
  };
  const what = `waiting for OVN to install flows for ${iface}`;
  return watch<void>(client, { what, timeoutMs: spec.timeoutMs, onTimeout, ...(spec.signal ? { signal: spec.signal } : {}) }, (settle) =>
    client.monitorCond(DB, { Interface: { where: [eq('name', iface)], columns: ['name', 'external_ids', 'error'] } }, (updates) => {
      const rows = Object.values(updates.Interface ?? {});
      if (ids === undefined && !rows.length) {
        return settle(new Error(`no OVS interface named ${iface} to wait on`));
      }
      for (const u of rows) {
        if (u.kind === 'delete') return settle(new Error(`OVS interface ${iface} was removed while waiting for OVN`));
        if (u.kind === 'modify') {
          if (u.diff.external_ids !== undefined) ids = applyMapDiff(ids ?? {}, u.diff.external_ids);
          if (u.diff.error !== undefined) ovsError = applySetDiff(ovsError, u.diff.error);
        } else {
          ids = stringMap(u.row.external_ids);
          ovsError = setAtoms(u.row.error);
        }
      }
      const current = ids?.['iface-id'];
      if (current !== ifaceId) {
        return settle(new Error(`iface-id of ${iface} changed to ${current ?? '(none)'} while waiting for OVN to install ${ifaceId}`));
      }
      if (ids?.['ovn-installed'] === 'true') settle(undefined);
    }),
  );
}

interface WatchOptions<T> {
  /** "waiting for …", for the abort and lost-connection messages. */
  readonly what: string;
  readonly timeoutMs: number;
  /** The outcome when time runs out: a value to resolve with, or an Error to reject with. */
  readonly onTimeout: () => T | Error;
  readonly signal?: AbortSignal;
}

/**
 * Runs the monitor that `start` opens until its handler settles (a value, or an Error to reject
 * with), time runs out, the signal fires or the connection drops; then cancels the monitor.
 */
function watch<T>(client: OvsdbClient, opts: WatchOptions<T>, start: (settle: (outcome: T | Error) => void) => Promise<Monitor>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let monitor: Monitor | undefined;
    let done = false;
    const settle = (outcome: T | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      offClose();
      void monitor?.cancel().catch(() => undefined);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => settle(opts.onTimeout()), opts.timeoutMs);
    const onAbort = (): void => {
      const reason: unknown = opts.signal?.reason;
      settle(reason instanceof Error ? reason : new Error(`aborted ${opts.what}`));
    };
    const offClose = client.onClose((err) => settle(new Error(`lost OVSDB connection while ${opts.what}: ${err.message}`)));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    start(settle).then(
      (m) => {
        monitor = m;
        if (done) void m.cancel().catch(() => undefined);
      },
      (err: Error) => settle(err),
    );
  });
}

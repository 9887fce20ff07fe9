/**
 * The eswitch of a devlink device (`pci/<PF>`, `netdevsim/netdevsimN`) and the TC offload switch
 * of its uplink: `devlink dev eswitch` and `ethtool -k/-K`, the tools every vendor supports.
 */
import { HostError, mustRun, type Machine } from './machine.js';

export type EswitchMode = 'legacy' | 'switchdev';

/** The eswitch mode, or null when the device has none (devlink answers "not supported"). */
export async function eswitchMode(m: Machine, handle: string): Promise<EswitchMode | null> {
  const r = await m.run('devlink', ['-j', 'dev', 'eswitch', 'show', handle]);
  if (r.code !== 0) return null;
  let mode: unknown;
  try {
    mode = (JSON.parse(r.stdout) as { dev?: Record<string, { mode?: unknown }> }).dev?.[handle]?.mode;
  } catch {
    throw new HostError(`devlink dev eswitch show ${handle}: unparsable output`);
  }
  return mode === 'legacy' || mode === 'switchdev' ? mode : null;
}

export async function setEswitchMode(m: Machine, handle: string, mode: EswitchMode): Promise<void> {
  await mustRun(m, 'devlink', ['dev', 'eswitch', 'set', handle, 'mode', mode]);
}

/** `hw-tc-offload` of a netdev: true/false, null when ethtool does not list it. */
export async function hwTcOffload(m: Machine, netdev: string): Promise<boolean | null> {
  const out = await mustRun(m, 'ethtool', ['-k', netdev]);
  const line = /^hw-tc-offload:\s*(on|off)/m.exec(out);
  return line ? line[1] === 'on' : null;
}

export async function setHwTcOffload(m: Machine, netdev: string, on: boolean): Promise<void> {
  await mustRun(m, 'ethtool', ['-K', netdev, 'hw-tc-offload', on ? 'on' : 'off']);
}

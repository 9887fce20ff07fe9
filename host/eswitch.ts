/**
 * The eswitch of a devlink device (`pci/<PF>`, `netdevsim/netdevsimN`), its driver parameters
 * (mlx5's `flow_steering_mode`) and the TC offload switch of its uplink: `devlink dev eswitch`,
 * `devlink dev param` and `ethtool -k/-K`, the tools every vendor supports.
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

/** A driver parameter's runtime value, or null when the device has no such parameter. */
export async function devlinkParam(m: Machine, handle: string, name: string): Promise<string | null> {
  const r = await m.run('devlink', ['-j', 'dev', 'param', 'show', handle, 'name', name]);
  if (r.code !== 0) return null;
  type Param = { name?: unknown; values?: { cmode?: unknown; value?: unknown }[] };
  let params: Param[] | undefined;
  try {
    params = (JSON.parse(r.stdout) as { param?: Record<string, Param[]> }).param?.[handle];
  } catch {
    throw new HostError(`devlink dev param show ${handle} name ${name}: unparsable output`);
  }
  const values = Array.isArray(params) ? params.find((p) => p.name === name)?.values : undefined;
  const runtime = Array.isArray(values) ? values.find((v) => v.cmode === 'runtime')?.value : undefined;
  return typeof runtime === 'string' || typeof runtime === 'number' || typeof runtime === 'boolean' ? String(runtime) : null;
}

export async function setDevlinkParam(m: Machine, handle: string, name: string, value: string): Promise<void> {
  await mustRun(m, 'devlink', ['dev', 'param', 'set', handle, 'name', name, 'value', value, 'cmode', 'runtime']);
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

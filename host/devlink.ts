/**
 * devlink ports: the kernel's own map from an eswitch port (PF uplink, VF N of PF M) to its
 * representor netdev. Discovery prefers it to matching `phys_port_name` strings in sysfs.
 */
import { execFile } from 'node:child_process';

export interface DevlinkPort {
  /** `pci/0000:65:00.0/1` */
  readonly port: string;
  /** The devlink device handle: `pci/0000:65:00.0`. */
  readonly device: string;
  /** `physical` (uplink), `pcipf`, `pcivf`, `pcisf`, … */
  readonly flavour: string;
  readonly netdev: string | null;
  readonly pfnum: number | null;
  readonly vfnum: number | null;
  readonly controller: number | null;
  /** True for ports of another host's functions (a DPU's host side). */
  readonly external: boolean;
}

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isInteger(x) ? x : null;
}

/** `devlink -j port show` output → ports; entries that are not objects are skipped. */
export function parseDevlinkPorts(json: unknown): DevlinkPort[] {
  if (typeof json !== 'object' || json === null) return [];
  const ports = (json as { port?: unknown }).port;
  if (typeof ports !== 'object' || ports === null) return [];
  const out: DevlinkPort[] = [];
  for (const [port, value] of Object.entries(ports)) {
    if (typeof value !== 'object' || value === null) continue;
    const v = value as Record<string, unknown>;
    const slash = port.lastIndexOf('/');
    if (slash <= 0) continue;
    out.push({
      port,
      device: port.slice(0, slash),
      flavour: typeof v.flavour === 'string' ? v.flavour : '',
      netdev: typeof v.netdev === 'string' && v.netdev !== '' ? v.netdev : null,
      pfnum: num(v.pfnum),
      vfnum: num(v.vfnum),
      controller: num(v.controller),
      external: v.external === true,
    });
  }
  return out;
}

/**
 * Every devlink port on the node. devlink is optional (sysfs is the fallback), so a missing tool,
 * a kernel without devlink, a timeout or unparsable output all give an empty list.
 */
export function listDevlinkPorts(opts: { bin?: string; timeoutMs?: number } = {}): Promise<DevlinkPort[]> {
  return new Promise((resolve) => {
    execFile(
      opts.bin ?? 'devlink',
      ['-j', 'port', 'show'],
      { timeout: opts.timeoutMs ?? 5000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout) => {
        if (err) return resolve([]);
        try {
          resolve(parseDevlinkPorts(JSON.parse(stdout)));
        } catch {
          resolve([]);
        }
      },
    );
  });
}

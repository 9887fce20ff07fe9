/**
 * vDPA devices: list management devices, create and delete devices, bind them to virtio_vdpa or
 * vhost_vdpa. Creation and deletion go through iproute2's `vdpa` tool (the kernel's generic
 * netlink family `vdpa` underneath): Node has no AF_NETLINK sockets, a native addon would break
 * the single-executable build, and the tool turns the kernel's extended acks into the messages
 * the retry below needs. Binding is sysfs, like every other bus.
 */
import type { VdpaDriver } from './snapshot.js';
import { HostError, mustRun, toolFailure, type Machine } from './machine.js';
import { isUnreadable, leaf, readLink } from './sysfs.js';

export const VDPA_BUS_DRIVERS: Readonly<Record<VdpaDriver, string>> = { virtio: 'virtio_vdpa', vhost: 'vhost_vdpa' };

/** Management devices as `vdpa mgmtdev show` names them; none when the vdpa module is not loaded. */
export async function listMgmtDevs(m: Machine): Promise<string[]> {
  const r = await m.run('vdpa', ['-j', 'mgmtdev', 'show']);
  if (r.code !== 0) return [];
  try {
    return Object.keys((JSON.parse(r.stdout) as { mgmtdev?: Record<string, unknown> }).mgmtdev ?? {}).sort();
  } catch {
    throw new HostError('vdpa mgmtdev show: unparsable output');
  }
}

export interface VdpaSpec {
  readonly name: string;
  readonly mgmtDev: string;
  readonly mac: string | null;
  readonly mtu: number | null;
  readonly maxVqp: number | null;
}

/** Attributes in the order they are given up when a driver refuses them. */
const OPTIONAL = [
  ['max_vqp', (s: VdpaSpec) => s.maxVqp],
  ['mac', (s: VdpaSpec) => s.mac],
  ['mtu', (s: VdpaSpec) => s.mtu],
] as const;

/**
 * `vdpa dev add`. A management device that refuses an optional attribute ("Some provided
 * attributes are not supported": vp_vdpa refuses mac, the simulator max_vqp; both seen in the testbed)
 * gets the device without it, max_vqp given up first as the SR-IOV operator does. Returns the
 * attributes given up.
 */
export async function createVdpa(m: Machine, spec: VdpaSpec): Promise<string[]> {
  const given = OPTIONAL.filter(([, get]) => get(spec) !== null).map(([attr, get]) => [attr, String(get(spec))] as const);
  const dropped: string[] = [];
  for (;;) {
    const args = ['dev', 'add', 'name', spec.name, 'mgmtdev', spec.mgmtDev, ...given.filter(([a]) => !dropped.includes(a)).flat()];
    const r = await m.run('vdpa', args);
    if (r.code === 0) return dropped;
    const next = given.find(([a]) => !dropped.includes(a));
    if (!next || !/not supported/i.test(r.stderr)) throw new HostError(toolFailure('vdpa', args, r));
    dropped.push(next[0]);
  }
}

/** A vDPA net device's config as the kernel reports it; null where it reports nothing. */
export interface VdpaConfig {
  readonly mac: string | null;
  readonly mtu: number | null;
  readonly maxVqp: number | null;
}

/** `vdpa dev config show` of every device; none when the vdpa module is not loaded. */
export async function readVdpaConfigs(m: Machine): Promise<Map<string, VdpaConfig>> {
  const r = await m.run('vdpa', ['-j', 'dev', 'config', 'show']);
  const out = new Map<string, VdpaConfig>();
  if (r.code !== 0 || r.stdout.trim() === '') return out;
  let config: unknown;
  try {
    config = (JSON.parse(r.stdout) as { config?: unknown }).config;
  } catch {
    throw new HostError('vdpa dev config show: unparsable output');
  }
  if (typeof config !== 'object' || config === null) return out;
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : null);
  for (const [name, c] of Object.entries(config as Record<string, Record<string, unknown> | null>)) {
    if (typeof c !== 'object' || c === null) continue;
    out.set(name, { mac: typeof c.mac === 'string' ? c.mac.toLowerCase() : null, mtu: num(c.mtu), maxVqp: num(c.max_vq_pairs) });
  }
  return out;
}

export async function deleteVdpa(m: Machine, name: string): Promise<void> {
  await mustRun(m, 'vdpa', ['dev', 'del', name]);
}

/** The vDPA bus driver a device is bound to (`virtio_vdpa`), or null. */
export function vdpaBusDriver(sysfsRoot: string, name: string): string | null {
  const target = readLink(`${sysfsRoot}/bus/vdpa/devices/${name}/driver`);
  return isUnreadable(target) ? null : leaf(target);
}

/**
 * unbind, driver_override, bind. When the bind fails the device goes back to the driver it had,
 * so that a failure does not leave a device without its virtio netdev or vhost char device.
 */
export function bindVdpa(m: Machine, name: string, driver: VdpaDriver): void {
  const root = m.sysfsRoot;
  const want = VDPA_BUS_DRIVERS[driver];
  const before = vdpaBusDriver(root, name);
  if (before === want) return;
  if (before !== null) m.write(`${root}/bus/vdpa/devices/${name}/driver/unbind`, name);
  try {
    m.write(`${root}/bus/vdpa/devices/${name}/driver_override`, want);
    m.write(`${root}/bus/vdpa/drivers/${want}/bind`, name);
  } catch (err) {
    try {
      m.write(`${root}/bus/vdpa/devices/${name}/driver_override`, '\n');
      if (before !== null && vdpaBusDriver(root, name) === null) m.write(`${root}/bus/vdpa/drivers/${before}/bind`, name);
    } catch (back) {
      throw new HostError(`${(err as Error).message}; and giving ${name} back to ${before} failed: ${(back as Error).message}`);
    }
    throw err;
  }
}

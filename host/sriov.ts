/**
 * SR-IOV and PCI driver binding through sysfs: the VF count of a PF (or of any device with
 * `sriov_numvfs`, netdevsim included), where VFs will appear, and moving a function between
 * drivers without ever leaving it unbound after a failure.
 */
import { HostError, type Machine } from './machine.js';
import { isUnreadable, leaf, readAttr, readLink } from './sysfs.js';

export interface SriovState {
  /** null where the device has no such file (netdevsim). */
  readonly totalVfs: number | null;
  readonly numVfs: number;
  /** Routing-ID offset and stride of the VFs (PCI only): VF addresses before the VFs exist. */
  readonly offset: number | null;
  readonly stride: number | null;
  /** `sriov_vf_device`: the VFs' PCI device ID, lower-case hex; null when unknown. */
  readonly vfDevice: string | null;
}

/** `pci/0000:65:00.0` → `<sysfs>/bus/pci/devices/0000:65:00.0`; `netdevsim/netdevsim10` likewise. */
export function busDeviceDir(sysfsRoot: string, handle: string): string {
  const slash = handle.indexOf('/');
  return `${sysfsRoot}/bus/${handle.slice(0, slash)}/devices/${handle.slice(slash + 1)}`;
}

function intAttr(path: string): number | null {
  const v = readAttr(path);
  return !isUnreadable(v) && /^\d+$/.test(v) ? Number(v) : null;
}

/** null when the device has no `sriov_numvfs` (no SR-IOV capability, or no such device). */
export function readSriov(deviceDir: string): SriovState | null {
  const numVfs = intAttr(`${deviceDir}/sriov_numvfs`);
  if (numVfs === null) return null;
  const vfDevice = readAttr(`${deviceDir}/sriov_vf_device`);
  return {
    totalVfs: intAttr(`${deviceDir}/sriov_totalvfs`),
    numVfs,
    offset: intAttr(`${deviceDir}/sriov_offset`),
    stride: intAttr(`${deviceDir}/sriov_stride`),
    vfDevice: isUnreadable(vfDevice) || !/^[0-9a-fA-F]{1,4}$/.test(vfDevice) ? null : vfDevice.toLowerCase().padStart(4, '0'),
  };
}

/**
 * The address VF `index` of `pf` gets, as the kernel computes it (pci_iov_virtfn_bus/devfn):
 * routing ID = PF routing ID + offset + stride * index. null when it would leave the bus range.
 */
export function vfAddress(pf: string, offset: number, stride: number, index: number): string | null {
  const m = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pf);
  if (!m) return null;
  const rid = (parseInt(m[2]!, 16) << 8) + (parseInt(m[3]!, 16) << 3) + Number(m[4]) + offset + stride * index;
  if (rid > 0xffff) return null;
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `${m[1]}:${hex(rid >> 8)}:${hex((rid >> 3) & 0x1f)}.${rid & 7}`;
}

/**
 * Sets the VF count. The kernel refuses to change a non-zero count to another non-zero one, so
 * that takes a 0 first; VFs and everything on them (vDPA devices, representors) go away then.
 */
export function setNumVfs(m: Machine, deviceDir: string, to: number): void {
  const now = intAttr(`${deviceDir}/sriov_numvfs`);
  if (now === to) return;
  if (now !== 0 && to !== 0) m.write(`${deviceDir}/sriov_numvfs`, '0');
  m.write(`${deviceDir}/sriov_numvfs`, String(to));
}

/** The driver a PCI function is bound to, or null. */
export function pciDriver(sysfsRoot: string, bdf: string): string | null {
  const target = readLink(`${sysfsRoot}/bus/pci/devices/${bdf}/driver`);
  return isUnreadable(target) ? null : leaf(target);
}

export function unbindPci(m: Machine, bdf: string): void {
  if (pciDriver(m.sysfsRoot, bdf) !== null) m.write(`${m.sysfsRoot}/bus/pci/devices/${bdf}/driver/unbind`, bdf);
}

/** Binds a function to a driver it already matches (its override, if any, left as it is). */
export function bindPci(m: Machine, bdf: string, driver: string): void {
  m.write(`${m.sysfsRoot}/bus/pci/drivers/${driver}/bind`, bdf);
}

/**
 * Moves a function to `driver` the operator's way: unbind, driver_override, bind; `null` gives
 * it back to whatever driver matches it (override cleared, drivers_probe). When a write fails
 * the function goes back to the driver it had, so a failure never leaves it unbound.
 */
export function rebindPci(m: Machine, bdf: string, driver: string | null): void {
  const dev = `${m.sysfsRoot}/bus/pci/devices/${bdf}`;
  const before = pciDriver(m.sysfsRoot, bdf);
  if (before === driver && driver !== null) return;
  unbindPci(m, bdf);
  try {
    m.write(`${dev}/driver_override`, driver ?? '\n');
    if (driver === null) m.write(`${m.sysfsRoot}/bus/pci/drivers_probe`, bdf);
    else bindPci(m, bdf, driver);
  } catch (err) {
    try {
      m.write(`${dev}/driver_override`, '\n');
      if (before !== null && pciDriver(m.sysfsRoot, bdf) === null) bindPci(m, bdf, before);
    } catch (back) {
      throw new HostError(`${(err as Error).message}; and giving ${bdf} back to ${before} failed: ${(back as Error).message}`);
    }
    throw err;
  }
}

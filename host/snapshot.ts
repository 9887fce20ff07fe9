/**
 * The node as discovery sees it: an immutable value read from sysfs (and /dev) in one pass.
 * The device plugin diffs two snapshots; the CNI resolves one device from a snapshot.
 */

export type VdpaDriver = 'virtio' | 'vhost';

/** A switchdev representor netdev (VF representor or PF uplink). */
export interface Representor {
  readonly name: string;
  /** `p0` for an uplink, `pf0vf3` for VF 3 of PF 0. */
  readonly physPortName: string;
  readonly switchId: string;
  /** `/sys/class/net/<name>/operstate`: "up", "down", "unknown", … */
  readonly operState: string;
}

/** Where a VF's representor came from, or why there is none. */
export type RepresentorLookup =
  | { readonly found: Representor; readonly via: 'devlink' | 'sysfs' }
  | { readonly missing: string };

export interface VirtioEndpoint {
  /** `virtio5` */
  readonly device: string;
  /** `<sysfs root>/bus/virtio/devices/virtio5` (the DeviceInfo `path` for virtio). */
  readonly path: string;
  /** The single entry of `virtioN/net/`, or null when virtio_net has not created it. */
  readonly netdev: string | null;
}

export interface VhostEndpoint {
  /** `vhost-vdpa-4` */
  readonly name: string;
  /** `<dev root>/vhost-vdpa-4` (the DeviceInfo `path` for vhost). */
  readonly path: string;
}

export interface VdpaDevice {
  /** As in `/sys/bus/vdpa/devices`: `vdpa0`. */
  readonly name: string;
  /** `pci/0000:65:00.2` for PCI parents, the bare name (`vdpasim_net`) otherwise. */
  readonly mgmtDev: string;
  /** The parent PCI function, or null for non-PCI devices (the simulator). */
  readonly pciAddress: string | null;
  /** The bound vDPA bus driver as a type, or null when unbound or bound to something else. */
  readonly driver: VdpaDriver | null;
  /** The bound driver's name as sysfs shows it (`virtio_vdpa`), or null when unbound. */
  readonly driverName: string | null;
  readonly virtio: VirtioEndpoint | null;
  readonly vhost: VhostEndpoint | null;
  /** Why this device cannot be used as it is; empty when it can. */
  readonly problems: readonly string[];
}

export interface PciFunction {
  /** `0000:65:00.2` */
  readonly address: string;
  /** Lower-case hex without `0x`: `15b3`. */
  readonly vendor: string;
  /** Lower-case hex without `0x`: `101e`. */
  readonly device: string;
  readonly driver: string | null;
  /** null when sysfs says -1 (no NUMA affinity) or the file is missing. */
  readonly numaNode: number | null;
  /** The PF of a VF; null for PFs and plain functions. */
  readonly pf: string | null;
  /** N of the PF's `virtfnN` link that points here; null unless a VF. */
  readonly vfIndex: number | null;
  /** VF addresses of a PF, in index order; empty otherwise. */
  readonly vfs: readonly string[];
  /** Entries of `<pci>/net/`: on a switchdev PF, the uplink and every VF representor too. */
  readonly netdevs: readonly string[];
  /** Names of the vDPA devices whose parent is this function. */
  readonly vdpaDevices: readonly string[];
  /** A PF's uplink representor (`pN`), or for a VF its PF's uplink; null when none. */
  readonly uplink: Representor | null;
  /** A VF's own representor; null lookup for functions that are not VFs. */
  readonly representor: RepresentorLookup | null;
  /** Usable = exactly one vDPA device, bound, with its netdev or char device found. */
  readonly usable: boolean;
  /** Why the function is not usable; undefined when usable. */
  readonly reason?: string;
}

export interface Snapshot {
  /** Network-class PCI functions by address. */
  readonly functions: ReadonlyMap<string, PciFunction>;
  /** Every vDPA device by name, PCI-parented or not. */
  readonly vdpa: ReadonlyMap<string, VdpaDevice>;
  /** Problems that are not tied to one device (an unreadable bus directory, …). */
  readonly errors: readonly string[];
}

/**
 * What both plugins need to hand out one device: the join of a usable PCI function,
 * its vDPA device and its representor. Built from a snapshot or from a DeviceInfo file.
 */
export interface VdpaEndpoint {
  readonly pciAddress: string;
  readonly pfPciAddress: string | null;
  readonly vdpaDevice: string;
  readonly driver: VdpaDriver;
  /** vhost: `/dev/vhost-vdpa-N`; virtio: `/sys/bus/virtio/devices/virtioN`. */
  readonly path: string;
  /** The virtio netdev to move into the pod; null for vhost. */
  readonly netdev: string | null;
  readonly representor: string | null;
  readonly numaNode: number | null;
}

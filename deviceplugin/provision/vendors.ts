/**
 * Which PCI functions can carry vDPA devices, and what that takes: the PCI driver the function
 * must be bound to and the kernel modules that provide the management device. A policy that asks
 * for vDPA on anything else is refused before any change.
 */

export interface VdpaVendor {
  readonly label: string;
  /** PCI vendor and the device IDs (of the PF for VFs, of the function itself otherwise). */
  readonly vendor: string;
  readonly devices: readonly string[];
  /** The driver the function (or VF) must be bound to for its management device to exist. */
  readonly pciDriver: string;
  /** Whether new VFs come up on another driver and need moving to `pciDriver`. */
  readonly rebind: boolean;
  readonly modules: readonly string[];
}

const VENDORS: readonly VdpaVendor[] = [
  {
    label: 'NVIDIA ConnectX-6 Dx / ConnectX-7 / BlueField (mlx5_vdpa)',
    vendor: '15b3',
    // The PFs whose VFs have virtio-net emulation; ConnectX-5, ConnectX-6 and ConnectX-6 Lx do not.
    devices: ['101d', '1021', '1023', 'a2d6', 'a2dc'],
    pciDriver: 'mlx5_core',
    rebind: false,
    modules: ['mlx5_vdpa'],
  },
  {
    label: 'virtio-net PCI function (vp_vdpa)',
    vendor: '1af4',
    // Modern and transitional (qemu's default) virtio-net; vp_vdpa drives both through the modern interface.
    devices: ['1041', '1000'],
    pciDriver: 'vp-vdpa',
    rebind: true,
    modules: ['vp_vdpa'],
  },
];

/** Management devices that are not PCI functions: the module that creates each. */
export const SOFTWARE_MGMTDEVS: Readonly<Record<string, string>> = { vdpasim_net: 'vdpa_sim_net' };

export function vdpaVendor(vendor: string, device: string): VdpaVendor | null {
  return VENDORS.find((v) => v.vendor === vendor && v.devices.includes(device)) ?? null;
}

export function supportedList(): string {
  return VENDORS.map((v) => `${v.vendor}:{${v.devices.join(',')}} ${v.label}`).join('; ');
}

/**
 * Endpoints: the devices a snapshot can hand out, joined into the one value both plugins use
 * (the device plugin to advertise and allocate, the CNI to resolve the device it is given).
 */
import type { PciFunction, Snapshot, VdpaEndpoint } from './snapshot.js';

function toEndpoint(s: Snapshot, fn: PciFunction): VdpaEndpoint | null {
  if (!fn.usable || fn.vdpaDevices.length !== 1) return null;
  const device = s.vdpa.get(fn.vdpaDevices[0]!);
  if (!device || device.driver === null) return null;
  const path = device.driver === 'virtio' ? device.virtio?.path : device.vhost?.path;
  if (path === undefined) return null;
  return {
    pciAddress: fn.address,
    pfPciAddress: fn.pf,
    vdpaDevice: device.name,
    driver: device.driver,
    path,
    netdev: device.driver === 'virtio' ? (device.virtio?.netdev ?? null) : null,
    representor: fn.representor && 'found' in fn.representor ? fn.representor.found.name : null,
    numaNode: fn.numaNode,
  };
}

/** Every usable PCI function as an endpoint, sorted by PCI address. Non-PCI devices are left out. */
export function usableEndpoints(s: Snapshot): VdpaEndpoint[] {
  const out: VdpaEndpoint[] = [];
  for (const fn of s.functions.values()) {
    const ep = toEndpoint(s, fn);
    if (ep) out.push(ep);
  }
  return out.sort((a, b) => (a.pciAddress < b.pciAddress ? -1 : a.pciAddress > b.pciAddress ? 1 : 0));
}

/** The endpoint of one PCI function; throws an operator-facing Error naming the device and why. */
export function endpointFor(s: Snapshot, pciAddress: string): VdpaEndpoint {
  const fn = s.functions.get(pciAddress.toLowerCase());
  if (!fn) throw new Error(`${pciAddress}: no network PCI function with this address on the node`);
  const ep = toEndpoint(s, fn);
  if (!ep) throw new Error(`${fn.address}: ${fn.reason ?? 'not usable'}`);
  return ep;
}

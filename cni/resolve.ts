/**
 * Which device to hand to the pod. sysfs is the truth: the function the deviceID names is
 * discovered (that function alone, not the whole node), and it alone says which vDPA device,
 * path, netdev and representor it has. The DeviceInfo files (runtimeConfig.CNIDeviceInfoFile
 * from Multus, the device plugin's dp/ file) are hints: read only from under the devinfo
 * directory, and a file that disagrees with sysfs is refused, naming the field. A file may supply
 * the deviceID when the config has none, and the representor when sysfs pairs none with the
 * function (a vp_vdpa function beside a switchdev NIC), and then only a VF representor that no
 * other VF and no other attachment has (docs/device-info.md).
 */
import { existsSync, realpathSync } from 'node:fs';
import { relative, isAbsolute } from 'node:path';
import { dpDeviceInfoFileOf, readDeviceInfo, type DeviceInfo } from '../host/deviceinfo.js';
import { discoverFunction, discoverVdpaDevice, readRepresentor, representorOwners, type DiscoverOptions } from '../host/discover.js';
import { endpointFor } from '../host/endpoint.js';
import type { Logger } from '../host/log.js';
import type { HostPaths } from '../host/paths.js';
import type { Snapshot, VdpaDevice, VdpaEndpoint } from '../host/snapshot.js';
import { listStates } from '../host/state.js';
import { CniError, ErrorCode } from './errors.js';

export type DeviceSource = 'CNIDeviceInfoFile' | 'device plugin file' | 'sysfs';

export interface ResolvedDevice {
  readonly endpoint: VdpaEndpoint;
  /** The file that agreed with sysfs (and may have named the representor), or sysfs alone. */
  readonly source: DeviceSource;
}

export interface ResolveRequest {
  readonly deviceId: string | null;
  readonly deviceInfoFile: string | null;
  /** OVS plugging is on: a device without a representor is not good enough. */
  readonly needRepresentor: boolean;
}

const refuse = (msg: string, details = ''): CniError => new CniError(ErrorCode.InvalidConfig, msg, details);

/** `file` resolved, when it lies under `dir`; null otherwise. Symlinks are followed first. */
function underDir(file: string, dir: string): string | null {
  try {
    const real = realpathSync(file);
    const rel = relative(realpathSync(dir), real);
    return rel && !rel.startsWith('..') && !isAbsolute(rel) ? real : null;
  } catch {
    return null;
  }
}

interface Hint {
  readonly source: Exclude<DeviceSource, 'sysfs'>;
  readonly file: string;
  readonly info: DeviceInfo;
}

/** A readable DeviceInfo file, or null (logged) when it is absent or does not parse. */
function readHint(source: Hint['source'], file: string, log: Logger): Hint | null {
  try {
    const info = readDeviceInfo(file);
    if (info) return { source, file, info };
    log.debug('no DeviceInfo file', { source, file });
  } catch (err) {
    log.warn('DeviceInfo file unreadable; going by sysfs alone', { source, file, reason: (err as Error).message });
  }
  return null;
}

/**
 * The device's truth from sysfs: the PCI function the deviceID names (`snapshot` holds it, read
 * by discoverFunction). A vDPA device with no PCI parent (the kernel's simulator, on test
 * kernels) has no function: then the vDPA device a file names is taken as it is on the vDPA bus,
 * if nothing else on the node claims that deviceID.
 */
function fromSysfs(snapshot: Snapshot, opts: DiscoverOptions, deviceId: string, hints: readonly Hint[]): VdpaEndpoint {
  try {
    return endpointFor(snapshot, deviceId);
  } catch (err) {
    const named = snapshot.functions.has(deviceId)
      ? undefined
      : hints.map((h) => discoverVdpaDevice(opts, h.info.vdpa?.['parent-device'] ?? '')).find((d) => d);
    const ep = named && named.pciAddress === null && named.problems.length === 0 ? nonPciEndpoint(named, deviceId) : null;
    if (ep) return ep;
    throw refuse(`deviceID ${deviceId} has no usable vDPA device: ${(err as Error).message}`);
  }
}

function nonPciEndpoint(d: VdpaDevice, deviceId: string): VdpaEndpoint | null {
  const path = d.driver === 'virtio' ? d.virtio?.path : d.driver === 'vhost' ? d.vhost?.path : undefined;
  if (!d.driver || path === undefined) return null;
  return {
    pciAddress: deviceId,
    pfPciAddress: null,
    vdpaDevice: d.name,
    driver: d.driver,
    path,
    netdev: d.driver === 'virtio' ? (d.virtio?.netdev ?? null) : null,
    representor: null,
    numaNode: null,
  };
}

/** Refuses a file that says something else than sysfs about the same device. */
function crossCheck(hint: Hint, ep: VdpaEndpoint): void {
  const v = hint.info.vdpa;
  const where = `${hint.source} ${hint.file}`;
  if (hint.info.type !== 'vdpa' || !v) throw refuse(`${where}: type must be "vdpa" for a vDPA device, got "${hint.info.type}"`);
  const disagree = (field: string, has: string, truth: string) =>
    refuse(`${where}: vdpa.${field} is ${has}, but sysfs has ${truth} for ${ep.pciAddress}`, 'a DeviceInfo file is a hint; the node decides');
  if (v['pci-address'] !== undefined && v['pci-address'].toLowerCase() !== ep.pciAddress) throw disagree('pci-address', v['pci-address'], ep.pciAddress);
  if (v['parent-device'] !== ep.vdpaDevice) throw disagree('parent-device', v['parent-device'], ep.vdpaDevice);
  if (v.driver !== ep.driver) throw disagree('driver', v.driver, ep.driver);
  if (v.path !== ep.path) throw disagree('path', v.path, ep.path);
  const rep = v['representor-device'];
  if (rep !== undefined && ep.representor !== null && rep !== ep.representor) throw disagree('representor-device', rep, ep.representor);
}

/**
 * A representor a file names for a function sysfs pairs none with: a switchdev VF representor
 * (phys_port_name pfNvfM with a switch id) that is no other discovered VF's and no other
 * attachment's. Which VF it belongs to is read from the representor, its PF and that one VF.
 */
function vouchRepresentor(hint: Hint, name: string, ep: VdpaEndpoint, opts: DiscoverOptions, paths: HostPaths): string {
  const where = `${hint.source} ${hint.file}: vdpa.representor-device ${name}`;
  const rep = readRepresentor(paths.sysfsRoot, name);
  if (!rep || !/^pf\d+vf\d+$/.test(rep.physPortName) || !rep.switchId) {
    throw refuse(`${where} is not a switchdev VF representor on this node`);
  }
  const owner = representorOwners(opts, [name]).get(name);
  if (owner !== undefined && owner !== ep.pciAddress) throw refuse(`${where} is the representor of ${owner}`);
  const claim = listStates(paths.stateDir).states.find((s) => s.representor === name && s.pciAddress !== ep.pciAddress);
  if (claim) throw refuse(`${where} is plugged for container ${claim.containerId} interface ${claim.ifname} (${claim.pciAddress})`);
  return name;
}

export function resolveDevice(req: ResolveRequest, paths: HostPaths, log: Logger): ResolvedDevice {
  const hints: Hint[] = [];
  if (req.deviceInfoFile) {
    const file = underDir(req.deviceInfoFile, paths.devinfoDir);
    // A path that does not exist is no hint at all: Multus names the file whether or not one was written.
    if (!file && existsSync(req.deviceInfoFile)) {
      throw refuse(`runtimeConfig.CNIDeviceInfoFile: ${req.deviceInfoFile} is not under the DeviceInfo directory ${paths.devinfoDir}`);
    }
    const h = file ? readHint('CNIDeviceInfoFile', file, log) : null;
    if (h) hints.push(h);
  }
  const deviceId = req.deviceId ?? hints[0]?.info.vdpa?.['pci-address']?.toLowerCase() ?? null;
  if (!deviceId) {
    throw refuse(
      req.deviceInfoFile
        ? 'deviceID: required when the CNIDeviceInfoFile does not name a usable device'
        : 'deviceID: required (the top-level deviceID Multus injects, or runtimeConfig.deviceID)',
    );
  }
  const dp = dpDeviceInfoFileOf(paths.devinfoDir, deviceId);
  if (dp) {
    const h = readHint('device plugin file', dp, log);
    if (h) hints.push(h);
  }
  // Only the function the deviceID names is read, not the whole node.
  const opts = { sysfsRoot: paths.sysfsRoot, devRoot: paths.devRoot };
  let endpoint = fromSysfs(discoverFunction(opts, deviceId), opts, deviceId, hints);
  for (const h of hints) crossCheck(h, endpoint);
  let source: DeviceSource = hints[0]?.source ?? 'sysfs';
  if (!endpoint.representor) {
    const named = hints.find((h) => h.info.vdpa?.['representor-device'] !== undefined);
    if (named) {
      endpoint = { ...endpoint, representor: vouchRepresentor(named, named.info.vdpa!['representor-device']!, endpoint, opts, paths) };
      source = named.source;
    }
  }
  if (req.needRepresentor && !endpoint.representor) {
    throw refuse(
      `device ${deviceId} (${endpoint.vdpaDevice}) has no VF representor, so it cannot be plugged into an OVS bridge`,
      'put the PF in switchdev mode, or set "bridge": "" for legacy SR-IOV mode without OVS',
    );
  }
  if (endpoint.driver === 'virtio' && !endpoint.netdev) {
    throw refuse(`device ${deviceId} (${endpoint.vdpaDevice}) has no virtio netdev; is virtio_net loaded?`);
  }
  return { endpoint, source };
}

/**
 * Which device to hand to the pod, from the best source first: the DeviceInfo file Multus passed
 * (runtimeConfig.CNIDeviceInfoFile), then the device plugin's dp/ file for this deviceID, then
 * the node itself (a sysfs discovery). A source that is missing, stale or incomplete is logged
 * and the next one is tried; the node has the last word (docs/device-info.md).
 */
import { dpDeviceInfoFileOf, endpointFromDeviceInfo, readDeviceInfo } from '../host/deviceinfo.js';
import { discover, virtioNetdev } from '../host/discover.js';
import { endpointFor } from '../host/endpoint.js';
import type { Logger } from '../host/log.js';
import type { HostPaths } from '../host/paths.js';
import type { VdpaEndpoint } from '../host/snapshot.js';
import { CniError, ErrorCode } from './errors.js';

export type DeviceSource = 'CNIDeviceInfoFile' | 'device plugin file' | 'sysfs';

export interface ResolvedDevice {
  readonly endpoint: VdpaEndpoint;
  readonly source: DeviceSource;
}

export interface ResolveRequest {
  readonly deviceId: string | null;
  readonly deviceInfoFile: string | null;
  /** OVS plugging is on: a device without a representor is not good enough. */
  readonly needRepresentor: boolean;
}

/** The endpoint a DeviceInfo file describes, completed with the virtio netdev; why not, otherwise. */
function fromFile(file: string, deviceId: string | null): VdpaEndpoint | string {
  let di;
  try {
    di = readDeviceInfo(file);
  } catch (err) {
    return (err as Error).message;
  }
  if (!di) return 'no such file';
  const pci = deviceId ?? di.vdpa?.['pci-address'] ?? null;
  if (!pci) return 'has no vdpa.pci-address and the config has no deviceID';
  let ep: VdpaEndpoint;
  try {
    ep = endpointFromDeviceInfo(di, pci);
  } catch (err) {
    return (err as Error).message;
  }
  if (ep.driver === 'vhost') return ep;
  const netdev = virtioNetdev(ep.path);
  return netdev ? { ...ep, netdev } : `no netdev under ${ep.path}/net (stale file?)`;
}

export function resolveDevice(req: ResolveRequest, paths: HostPaths, log: Logger): ResolvedDevice {
  if (!req.deviceId && !req.deviceInfoFile) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      'deviceID: required (the top-level deviceID Multus injects, or runtimeConfig.deviceID)',
    );
  }
  const files: [DeviceSource, string | null][] = [
    ['CNIDeviceInfoFile', req.deviceInfoFile],
    ['device plugin file', req.deviceId ? dpDeviceInfoFileOf(paths.devinfoDir, req.deviceId) : null],
  ];
  for (const [source, file] of files) {
    if (!file) continue;
    const ep = fromFile(file, req.deviceId);
    if (typeof ep === 'string') {
      log.warn('DeviceInfo file not usable; trying the next source', { source, file, reason: ep });
    } else if (req.needRepresentor && !ep.representor) {
      log.info('DeviceInfo file names no representor; looking it up on the node', { source, file });
    } else {
      return { endpoint: ep, source };
    }
  }
  const deviceId = req.deviceId;
  if (!deviceId) {
    throw new CniError(ErrorCode.InvalidConfig, 'deviceID: required when the CNIDeviceInfoFile does not name a usable device');
  }
  let endpoint: VdpaEndpoint;
  try {
    endpoint = endpointFor(discover({ sysfsRoot: paths.sysfsRoot, devRoot: paths.devRoot }), deviceId);
  } catch (err) {
    throw new CniError(ErrorCode.InvalidConfig, `deviceID ${deviceId} has no usable vDPA device: ${(err as Error).message}`);
  }
  if (req.needRepresentor && !endpoint.representor) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      `device ${deviceId} (${endpoint.vdpaDevice}) has no VF representor, so it cannot be plugged into an OVS bridge`,
      'put the PF in switchdev mode, or set "bridge": "" for legacy SR-IOV mode without OVS',
    );
  }
  if (endpoint.driver === 'virtio' && !endpoint.netdev) {
    throw new CniError(ErrorCode.InvalidConfig, `device ${deviceId} (${endpoint.vdpaDevice}) has no virtio netdev; is virtio_net loaded?`);
  }
  return { endpoint, source: 'sysfs' };
}

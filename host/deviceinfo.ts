/**
 * DeviceInfo files (Network Plumbing WG device-info spec 1.1.0): the contract between the device
 * plugin, which writes one per allocated device under `<devinfo>/dp/`, and the CNI, which reads the
 * copy Multus makes under `<devinfo>/cni/` (or the dp file). Every field is validated on read and on
 * write, and errors name the field. The format and the file names: docs/device-info.md.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { PCI_ADDRESS } from './sysfs.js';
import type { VdpaDriver, VdpaEndpoint } from './snapshot.js';

export const DEVICE_INFO_VERSION = '1.1.0';

export interface VdpaInfo {
  /** The vDPA device name as in /sys/bus/vdpa/devices. */
  readonly 'parent-device': string;
  readonly driver: VdpaDriver;
  /** vhost: the char device; virtio: the virtio device's sysfs path. */
  readonly path: string;
  readonly 'pci-address'?: string;
  readonly 'pf-pci-address'?: string;
  readonly 'representor-device'?: string;
}

export interface PciInfo {
  readonly 'pci-address': string;
  readonly 'vhost-net'?: string;
  readonly 'rdma-device'?: string;
  readonly 'pf-pci-address'?: string;
  readonly 'representor-device'?: string;
}

/** A parsed document: `vdpa` is present when type is "vdpa", `pci` when type is "pci". */
export interface DeviceInfo {
  readonly type: 'vdpa' | 'pci';
  readonly version: string;
  readonly vdpa?: VdpaInfo;
  readonly pci?: PciInfo;
}

export class DeviceInfoError extends Error {
  override name = 'DeviceInfoError';
  constructor(
    /** The offending field (`vdpa.driver`), or "" for the document as a whole. */
    readonly field: string,
    readonly problem: string,
    /** The file the document came from, when it came from one. */
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}${field ? `${field}: ` : ''}${problem}`);
  }
}

type Obj = Readonly<Record<string, unknown>>;

function object(x: unknown, field: string): Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new DeviceInfoError(field, 'must be an object');
  return x as Obj;
}

function checked(o: Obj, parent: string, key: string, required: boolean, valid: (v: string) => boolean, expect: string): string | undefined {
  const field = parent ? `${parent}.${key}` : key;
  const v = o[key];
  if (v === undefined) {
    if (required) throw new DeviceInfoError(field, `is required (${expect})`);
    return undefined;
  }
  if (typeof v !== 'string' || !valid(v)) throw new DeviceInfoError(field, `must be ${expect}, got ${JSON.stringify(v)}`);
  return v;
}

const isPci = (v: string) => PCI_ADDRESS.test(v.toLowerCase());
// A kernel name (netdev, vDPA device): no path separators, not "." or "..", at most 15 bytes for netdevs.
const isNetdev = (v: string) => /^[^\s/:]{1,15}$/.test(v) && v !== '.' && v !== '..';
const isDeviceName = (v: string) => v.length > 0 && !v.includes('/') && !/\s/.test(v) && v !== '.' && v !== '..';
const PCI = 'a PCI address like "0000:65:00.2"';
const NETDEV = 'a netdev name';

/** Only the fields that are set; undefined members are left out of the written JSON. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function parseVdpa(x: unknown): VdpaInfo {
  const o = object(x, 'vdpa');
  const driver = checked(o, 'vdpa', 'driver', true, (v) => v === 'virtio' || v === 'vhost', '"virtio" or "vhost"') as VdpaDriver;
  return defined({
    'parent-device': checked(o, 'vdpa', 'parent-device', true, isDeviceName, 'a vDPA device name like "vdpa2"')!,
    driver,
    path: checked(o, 'vdpa', 'path', true, isAbsolute, 'an absolute path')!,
    'pci-address': checked(o, 'vdpa', 'pci-address', false, isPci, PCI),
    'pf-pci-address': checked(o, 'vdpa', 'pf-pci-address', false, isPci, PCI),
    'representor-device': checked(o, 'vdpa', 'representor-device', false, isNetdev, NETDEV),
  });
}

function parsePci(x: unknown): PciInfo {
  const o = object(x, 'pci');
  return defined({
    'pci-address': checked(o, 'pci', 'pci-address', true, isPci, PCI)!,
    'vhost-net': checked(o, 'pci', 'vhost-net', false, isAbsolute, 'an absolute path'),
    'rdma-device': checked(o, 'pci', 'rdma-device', false, isDeviceName, 'an RDMA device name'),
    'pf-pci-address': checked(o, 'pci', 'pf-pci-address', false, isPci, PCI),
    'representor-device': checked(o, 'pci', 'representor-device', false, isNetdev, NETDEV),
  });
}

/** A DeviceInfo document from parsed JSON; unknown extra fields are ignored (forward compatible). */
export function parseDeviceInfo(x: unknown): DeviceInfo {
  const o = object(x, '');
  const type = checked(o, '', 'type', true, (v) => v === 'vdpa' || v === 'pci', '"vdpa" or "pci"') as 'vdpa' | 'pci';
  // 1.x documents only add optional fields, so any 1.x version is readable.
  const version = checked(o, '', 'version', true, (v) => /^1\.\d+\.\d+$/.test(v), 'a 1.x spec version like "1.1.0"')!;
  if (type === 'vdpa') return { type, version, vdpa: parseVdpa(o.vdpa) };
  return { type, version, pci: parsePci(o.pci) };
}

/** The document for an allocated endpoint: path always, PF and representor whenever known. */
export function deviceInfoFromEndpoint(ep: VdpaEndpoint): DeviceInfo {
  return {
    type: 'vdpa',
    version: DEVICE_INFO_VERSION,
    vdpa: defined({
      'parent-device': ep.vdpaDevice,
      driver: ep.driver,
      path: ep.path,
      'pci-address': ep.pciAddress,
      'pf-pci-address': ep.pfPciAddress ?? undefined,
      'representor-device': ep.representor ?? undefined,
    }),
  };
}

/**
 * The endpoint a DeviceInfo document describes. Pure: the virtio netdev is not in the document
 * (the pod's netdev name is not known to the device plugin), so `netdev` is null and the CNI
 * resolves it from the virtio `path` (virtioNetdev in discover.ts) or from a snapshot; NUMA is null.
 */
export function endpointFromDeviceInfo(di: DeviceInfo, pciAddress: string): VdpaEndpoint {
  if (di.type !== 'vdpa' || !di.vdpa) throw new DeviceInfoError('type', `must be "vdpa" for a vDPA device, got "${di.type}"`);
  const v = di.vdpa;
  const address = pciAddress.toLowerCase();
  if (v['pci-address'] !== undefined && v['pci-address'].toLowerCase() !== address) {
    throw new DeviceInfoError('vdpa.pci-address', `is ${v['pci-address']}, but the device is ${pciAddress}`);
  }
  return {
    pciAddress: address,
    pfPciAddress: v['pf-pci-address']?.toLowerCase() ?? null,
    vdpaDevice: v['parent-device'],
    driver: v.driver,
    path: v.path,
    netdev: null,
    representor: v['representor-device'] ?? null,
    numaNode: null,
  };
}

const fileSafe = (s: string) => s.replaceAll('/', '-');
const DP_SUFFIX = '-device.json';

/** `<devinfo>/dp/<resource>-<device ID>-device.json`, every "/" turned into "-" (the spec's name). */
export function dpDeviceInfoPath(devinfoDir: string, resourceName: string, deviceId: string): string {
  return join(devinfoDir, 'dp', `${fileSafe(resourceName)}-${fileSafe(deviceId)}${DP_SUFFIX}`);
}

/**
 * The device plugin files under `<devinfo>/dp/`, of every resource, or only those of one device
 * ID; null when there is no readable `dp/` directory. Other files there (temporary ones) are not
 * listed.
 */
export function dpDeviceInfoFiles(devinfoDir: string, deviceId?: string): string[] | null {
  const dir = join(devinfoDir, 'dp');
  const suffix = deviceId === undefined ? DP_SUFFIX : `-${fileSafe(deviceId)}${DP_SUFFIX}`;
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith(suffix))
      .map((n) => join(dir, n));
  } catch {
    return null;
  }
}

/** The device plugin file of a device ID without knowing its resource name; null when there is none. */
export function dpDeviceInfoFileOf(devinfoDir: string, deviceId: string): string | null {
  return dpDeviceInfoFiles(devinfoDir, deviceId)?.[0] ?? null;
}

/** `<devinfo>/cni/<name>`; Multus names it `<namespace>-<network>-<containerID>_<ifname>`. */
export function cniDeviceInfoPath(devinfoDir: string, name: string): string {
  return join(devinfoDir, 'cni', fileSafe(name));
}

/**
 * Writes a validated document atomically: a temp file in the same directory, fsync, rename over
 * any older file for the same device. Readers see the old file or the new one, never a part.
 */
export function writeDeviceInfo(path: string, di: DeviceInfo): void {
  const doc = parseDeviceInfo(di);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, JSON.stringify(doc));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** The document at `path`; null when there is no such file; DeviceInfoError when it is invalid. */
export function readDeviceInfo(path: string): DeviceInfo | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DeviceInfoError('', `not valid JSON (${(err as Error).message})`, path);
  }
  try {
    return parseDeviceInfo(json);
  } catch (err) {
    if (err instanceof DeviceInfoError) throw new DeviceInfoError(err.field, err.problem, path);
    throw err;
  }
}

/** Removes a DeviceInfo file; a file that is already gone is fine. */
export function removeDeviceInfo(path: string): void {
  rmSync(path, { force: true });
}

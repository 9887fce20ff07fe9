/**
 * Discovery: one synchronous pass over a sysfs root (and the dev root) that yields a Snapshot of
 * the node's network PCI functions, vDPA devices, their virtio/vhost endpoints and switchdev
 * representors. Each directory and attribute is read once, so the cost is linear in the number of
 * devices. Nothing here throws on a malformed tree: what cannot be read becomes a device's reason.
 * The layout is described in shared/reference/host-layout.md; test/support/fixture.ts rebuilds it.
 */
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { DevlinkPort } from './devlink.js';
import type {
  PciFunction,
  Representor,
  RepresentorLookup,
  Snapshot,
  VdpaDevice,
  VdpaDriver,
  VhostEndpoint,
  VirtioEndpoint,
} from './snapshot.js';
import { PCI_ADDRESS, describe, isUnreadable, linkName, readAttr, readLink, readNames, type Unreadable } from './sysfs.js';

export interface DiscoverOptions {
  readonly sysfsRoot: string;
  readonly devRoot: string;
  /** From listDevlinkPorts(); when given, representors are looked up there first. */
  readonly devlinkPorts?: readonly DevlinkPort[];
}

const VIRTIO_DIR = /^virtio\d+$/;
const VHOST_DIR = /^vhost-vdpa-\d+$/;
const VIRTFN = /^virtfn(\d+)$/;
const UPLINK_PORT = /^p(\d+)$/;
const VF_PORT = /^(?:c(\d+))?pf(\d+)vf(\d+)$/;
const NETWORK_CLASS = '0x02';
const VDPA_DRIVERS: Readonly<Record<string, VdpaDriver>> = { virtio_vdpa: 'virtio', vhost_vdpa: 'vhost' };

/** A vDPA device as read from the bus, before its endpoint is resolved. */
interface RawVdpa {
  readonly name: string;
  readonly dir: string | null;
  readonly entries: readonly string[];
  readonly pciAddress: string | null;
  readonly mgmtDev: string;
  readonly driverName: string | null;
  readonly problems: string[];
}

/** A PCI function as read from its directory. */
interface RawPci {
  readonly address: string;
  readonly dir: string;
  readonly virtioChildren: readonly string[];
  readonly vendor: string;
  readonly device: string;
  readonly driver: string | null;
  readonly numaNode: number | null;
  readonly pf: string | null;
  /** VF address → index, from this function's `virtfnN` links. */
  readonly virtfns: ReadonlyMap<string, number>;
  readonly netdevs: readonly string[];
  readonly problems: readonly string[];
}

/** Bus listings: an absent bus (module not loaded) is empty, anything else unreadable is an error. */
function busNames(dir: string, errors: string[]): string[] {
  const names = readNames(dir);
  if (!isUnreadable(names)) return names.sort();
  if (names.code !== 'missing') errors.push(describe(names));
  return [];
}

/** Names in a device directory; a dangling link's target is reported as such. */
function deviceEntries(link: string, dir: string | Unreadable, problems: string[]): { dir: string; entries: string[] } | null {
  if (isUnreadable(dir)) {
    problems.push(describe(dir));
    return null;
  }
  const entries = readNames(dir);
  if (isUnreadable(entries)) {
    problems.push(entries.code === 'missing' ? `${link} is a dangling link` : describe(entries));
    return null;
  }
  return { dir, entries };
}

function hexAttr(dir: string, name: string, problems: string[]): string {
  const v = readAttr(join(dir, name));
  if (isUnreadable(v)) {
    problems.push(describe(v));
    return '';
  }
  if (!/^0x[0-9a-fA-F]+$/.test(v)) {
    problems.push(`${join(dir, name)}: ${JSON.stringify(v)} is not a hex number`);
    return '';
  }
  return v.slice(2).toLowerCase();
}

/** `numa_node`: -1 (and a kernel without NUMA, which has no such file) mean no affinity. */
function numaAttr(dir: string, problems: string[]): number | null {
  const v = readAttr(join(dir, 'numa_node'));
  if (isUnreadable(v)) {
    if (v.code !== 'missing') problems.push(describe(v));
    return null;
  }
  if (!/^-?\d+$/.test(v)) {
    problems.push(`${join(dir, 'numa_node')}: ${JSON.stringify(v)} is not a number`);
    return null;
  }
  const n = Number(v);
  return n < 0 ? null : n;
}

/** The management device as `vdpa mgmtdev show` names it. */
function mgmtDevOf(sysfsRoot: string, parentDir: string): string {
  const parent = basename(parentDir);
  if (PCI_ADDRESS.test(parent)) return `pci/${parent}`;
  const bus = linkName(join(parentDir, 'subsystem'));
  if (bus !== null) return `${bus}/${parent}`;
  if (parentDir !== join(sysfsRoot, 'devices')) return parent;
  // The simulator's vDPA devices sit at the top of /sys/devices with no link to their management
  // device, which is a root device of its own (`/sys/devices/vdpasim_net`).
  const roots = readNames(join(sysfsRoot, 'devices'));
  const sims = isUnreadable(roots) ? [] : roots.filter((n) => n.startsWith('vdpasim_'));
  return sims.length === 1 ? sims[0]! : 'unknown';
}

function readVdpaBus(sysfsRoot: string, errors: string[]): RawVdpa[] {
  const bus = join(sysfsRoot, 'bus', 'vdpa', 'devices');
  return busNames(bus, errors).map((name) => {
    const link = join(bus, name);
    const problems: string[] = [];
    const found = deviceEntries(link, readLink(link), problems);
    if (!found) return { name, dir: null, entries: [], pciAddress: null, mgmtDev: 'unknown', driverName: null, problems };
    const parentDir = dirname(found.dir);
    const parent = basename(parentDir);
    return {
      name,
      dir: found.dir,
      entries: found.entries,
      pciAddress: PCI_ADDRESS.test(parent) ? parent : null,
      mgmtDev: mgmtDevOf(sysfsRoot, parentDir),
      driverName: found.entries.includes('driver') ? linkName(join(found.dir, 'driver')) : null,
      problems,
    };
  });
}

function readPciFunction(address: string, link: string, vdpaParents: ReadonlySet<string>): RawPci | null {
  const problems: string[] = [];
  const found = deviceEntries(link, readLink(link), problems);
  const dir = found?.dir ?? link;
  const entries = found?.entries ?? [];
  if (found) {
    const cls = readAttr(join(dir, 'class'));
    if (isUnreadable(cls)) problems.push(describe(cls));
    else if (!cls.startsWith(NETWORK_CLASS) && !vdpaParents.has(address)) return null;
  }
  const virtfns = new Map<string, number>();
  const virtioChildren: string[] = [];
  let pf: string | null = null;
  let driver: string | null = null;
  let netdevs: string[] = [];
  for (const entry of entries) {
    const vf = VIRTFN.exec(entry);
    if (vf) {
      const target = linkName(join(dir, entry));
      if (target !== null) virtfns.set(target, Number(vf[1]));
      else problems.push(`${join(dir, entry)} is not a readable link`);
    } else if (VIRTIO_DIR.test(entry)) virtioChildren.push(entry);
    else if (entry === 'physfn') pf = linkName(join(dir, entry));
    else if (entry === 'driver') driver = linkName(join(dir, entry));
    else if (entry === 'net') {
      const names = readNames(join(dir, 'net'));
      if (isUnreadable(names)) problems.push(describe(names));
      else netdevs = names.sort();
    }
  }
  return {
    address,
    dir,
    virtioChildren,
    vendor: found ? hexAttr(dir, 'vendor', problems) : '',
    device: found ? hexAttr(dir, 'device', problems) : '',
    driver,
    numaNode: found ? numaAttr(dir, problems) : null,
    pf,
    virtfns,
    netdevs,
    problems,
  };
}

/**
 * A netdev's switchdev identity; empty fields where the kernel does not say (legacy mode has no
 * switch id). null when the netdev does not exist.
 */
function readNetdev(netdevDir: string, name: string): Representor | null {
  const [physPortName, switchId, operState] = ['phys_port_name', 'phys_switch_id', 'operstate'].map((a) => readAttr(join(netdevDir, a)));
  const text = (v: string | Unreadable | undefined) => (typeof v === 'string' ? v : '');
  if ([physPortName, switchId, operState].every((v) => isUnreadable(v) && v.code === 'missing')) return null;
  return { name, physPortName: text(physPortName), switchId: text(switchId), operState: text(operState) || 'unknown' };
}

/** Representors of every PF's eswitch, read once. */
class Representors {
  private readonly byName = new Map<string, Representor | null>();
  /** `<switch id>/pf<N>vf<M>` → representor; several PFs may share one switch id. */
  private readonly byPort = new Map<string, Representor>();
  readonly uplinks = new Map<string, Representor>();

  constructor(
    private readonly sysfsRoot: string,
    pfs: readonly RawPci[],
    private readonly devlink: ReadonlyMap<string, DevlinkPort>,
  ) {
    for (const pf of pfs) {
      for (const name of pf.netdevs) {
        const rep = readNetdev(join(pf.dir, 'net', name), name);
        this.byName.set(name, rep);
        if (!rep || rep.physPortName === '' || rep.switchId === '') continue;
        if (UPLINK_PORT.test(rep.physPortName)) {
          if (!this.uplinks.has(pf.address)) this.uplinks.set(pf.address, rep);
          continue;
        }
        const m = VF_PORT.exec(rep.physPortName);
        // Ports with a controller number belong to another host (a DPU's host side).
        if (m && (m[1] === undefined || m[1] === '0')) this.byPort.set(`${rep.switchId}/pf${m[2]}vf${m[3]}`, rep);
      }
    }
  }

  private named(name: string): Representor | null {
    let rep = this.byName.get(name);
    if (rep === undefined) {
      rep = readNetdev(join(this.sysfsRoot, 'class', 'net', name), name);
      this.byName.set(name, rep);
    }
    return rep;
  }

  lookup(pf: string, vfIndex: number): RepresentorLookup {
    const port = this.devlink.get(`pci/${pf}#${vfIndex}`);
    if (port?.netdev) {
      const rep = this.named(port.netdev);
      // The kernel derives phys_port_name from these devlink attributes; fill it where sysfs has none.
      const physPortName = rep?.physPortName || (port.pfnum === null ? '' : `pf${port.pfnum}vf${vfIndex}`);
      if (rep) return { found: { ...rep, physPortName }, via: 'devlink' };
    }
    const uplink = this.uplinks.get(pf);
    if (!uplink) return { missing: `PF ${pf} has no uplink representor (phys_port_name pN): its eswitch is not in switchdev mode` };
    const pfnum = UPLINK_PORT.exec(uplink.physPortName)![1];
    const rep = this.byPort.get(`${uplink.switchId}/pf${pfnum}vf${vfIndex}`);
    if (rep) return { found: rep, via: 'sysfs' };
    return { missing: `no representor with phys_port_name pf${pfnum}vf${vfIndex} on switch ${uplink.switchId} (PF ${pf})` };
  }
}

function devlinkIndex(ports: readonly DevlinkPort[]): Map<string, DevlinkPort> {
  const index = new Map<string, DevlinkPort>();
  for (const p of ports) {
    if (p.flavour === 'pcivf' && !p.external && p.vfnum !== null) index.set(`${p.device}#${p.vfnum}`, p);
  }
  return index;
}

/** The single entry of `<virtio device>/net/`, or null (virtio_net not loaded, or no such device). */
export function virtioNetdev(virtioDevicePath: string): string | null {
  const names = readNames(join(virtioDevicePath, 'net'));
  return !isUnreadable(names) && names.length === 1 ? names[0]! : null;
}

function resolveVirtio(
  raw: RawVdpa,
  parentChildren: readonly string[],
  virtioBoundOnParent: number,
  virtioBus: ReadonlyMap<string, string>,
  sysfsRoot: string,
  problems: string[],
): VirtioEndpoint | null {
  const own = raw.entries.filter((e) => VIRTIO_DIR.test(e));
  // virtio_vdpa puts virtioN under the vDPA device's DMA device: the device itself (simulator,
  // newer kernels) or its PCI function (mlx5, vp_vdpa). Under the function it cannot be told
  // which of several vDPA devices it belongs to.
  let candidates = own.map((e) => join(raw.dir!, e));
  if (candidates.length === 0 && raw.pciAddress !== null) {
    if (parentChildren.length > 0 && virtioBoundOnParent > 1) {
      problems.push(`shares PCI function ${raw.pciAddress} with other virtio_vdpa devices; its virtio device cannot be told apart`);
      return null;
    }
    candidates = parentChildren.map((e) => join(dirname(raw.dir!), e));
  }
  if (candidates.length === 0) {
    problems.push('is bound to virtio_vdpa but has no virtio device');
    return null;
  }
  if (candidates.length > 1) {
    problems.push(`has several virtio devices (${candidates.map((c) => basename(c)).join(', ')})`);
    return null;
  }
  const dir = candidates[0]!;
  const device = basename(dir);
  if (virtioBus.get(device) !== dir) {
    problems.push(`has ${device}, which is not on the virtio bus (${join(sysfsRoot, 'bus', 'virtio', 'devices', device)})`);
    return null;
  }
  const netdevs = readNames(join(dir, 'net'));
  let netdev: string | null = null;
  if (isUnreadable(netdevs) || netdevs.length === 0) problems.push(`has ${device} without a netdev (is the virtio_net module loaded?)`);
  else if (netdevs.length > 1) problems.push(`has ${device} with several netdevs (${netdevs.join(', ')})`);
  else netdev = netdevs[0]!;
  return { device, path: join(sysfsRoot, 'bus', 'virtio', 'devices', device), netdev };
}

function resolveVhost(raw: RawVdpa, devRoot: string, problems: string[]): VhostEndpoint | null {
  const dirs = raw.entries.filter((e) => VHOST_DIR.test(e));
  if (dirs.length !== 1) {
    problems.push(dirs.length ? `has several vhost devices (${dirs.join(', ')})` : 'is bound to vhost_vdpa but has no vhost-vdpa-N device');
    return null;
  }
  const name = dirs[0]!;
  const path = join(devRoot, name);
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) problems.push(`has ${name} but ${path} does not exist`);
  else if (!st.isCharacterDevice()) problems.push(`has ${name} but ${path} is not a character device`);
  else {
    // N is reassigned at every boot; a /dev that lags behind sysfs would hand out another device.
    const dev = readAttr(join(raw.dir!, name, 'dev'));
    const rdev = st.rdev;
    const actual = `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00)}`;
    if (isUnreadable(dev)) problems.push(describe(dev));
    else if (dev !== actual) problems.push(`has ${name} (${dev}) but ${path} is ${actual}`);
  }
  return { name, path };
}

function vdpaDevice(raw: RawVdpa, endpoint: { virtio: VirtioEndpoint | null; vhost: VhostEndpoint | null }): VdpaDevice {
  const driver = raw.driverName === null ? null : (VDPA_DRIVERS[raw.driverName] ?? null);
  return {
    name: raw.name,
    mgmtDev: raw.mgmtDev,
    pciAddress: raw.pciAddress,
    driver,
    driverName: raw.driverName,
    virtio: endpoint.virtio,
    vhost: endpoint.vhost,
    problems: raw.problems,
  };
}

function resolveVdpa(
  raws: readonly RawVdpa[],
  pci: ReadonlyMap<string, RawPci>,
  virtioBus: ReadonlyMap<string, string>,
  opts: DiscoverOptions,
): Map<string, VdpaDevice> {
  const virtioBound = new Map<string, number>();
  for (const r of raws) {
    if (r.pciAddress !== null && r.driverName === 'virtio_vdpa') virtioBound.set(r.pciAddress, (virtioBound.get(r.pciAddress) ?? 0) + 1);
  }
  const out = new Map<string, VdpaDevice>();
  for (const raw of raws) {
    let virtio: VirtioEndpoint | null = null;
    let vhost: VhostEndpoint | null = null;
    if (raw.dir !== null) {
      if (raw.driverName === null) raw.problems.push('is not bound to a driver');
      else if (raw.driverName === 'virtio_vdpa') {
        const parent = raw.pciAddress === null ? undefined : pci.get(raw.pciAddress);
        const children = parent?.virtioChildren ?? [];
        virtio = resolveVirtio(raw, children, virtioBound.get(raw.pciAddress ?? '') ?? 0, virtioBus, opts.sysfsRoot, raw.problems);
      } else if (raw.driverName === 'vhost_vdpa') vhost = resolveVhost(raw, opts.devRoot, raw.problems);
      else raw.problems.push(`is bound to ${raw.driverName}, not to virtio_vdpa or vhost_vdpa`);
    }
    out.set(raw.name, vdpaDevice(raw, { virtio, vhost }));
  }
  return out;
}

function verdict(raw: RawPci, devices: readonly VdpaDevice[]): { usable: boolean; reason?: string } {
  if (raw.problems.length) return { usable: false, reason: raw.problems.join('; ') };
  if (devices.length === 0) return { usable: false, reason: 'no vDPA device' };
  if (devices.length > 1) {
    const names = devices.map((d) => d.name).join(', ');
    return { usable: false, reason: `${devices.length} vDPA devices (${names}); one vDPA device per function is supported` };
  }
  const d = devices[0]!;
  if (d.problems.length) return { usable: false, reason: `vDPA device ${d.name} ${d.problems.join('; ')}` };
  return { usable: true };
}

export function discover(options: DiscoverOptions): Snapshot {
  // Link targets are resolved to absolute paths; compare them with absolute roots.
  const opts = { ...options, sysfsRoot: resolve(options.sysfsRoot), devRoot: resolve(options.devRoot) };
  const sys = opts.sysfsRoot;
  const errors: string[] = [];

  const virtioBusDir = join(sys, 'bus', 'virtio', 'devices');
  const virtioBus = new Map<string, string>();
  for (const name of busNames(virtioBusDir, errors)) {
    const target = readLink(join(virtioBusDir, name));
    if (!isUnreadable(target)) virtioBus.set(name, target);
  }

  const rawVdpa = readVdpaBus(sys, errors);
  const vdpaParents = new Set(rawVdpa.flatMap((r) => (r.pciAddress === null ? [] : [r.pciAddress])));

  const pciBus = join(sys, 'bus', 'pci', 'devices');
  const pci = new Map<string, RawPci>();
  for (const address of busNames(pciBus, errors)) {
    const raw = readPciFunction(address, join(pciBus, address), vdpaParents);
    if (raw) pci.set(address, raw);
  }

  // A PF is a function with virtfnN links or one that a VF's physfn names.
  const vfIndex = new Map<string, number>();
  const pfAddresses = new Set<string>();
  for (const raw of pci.values()) {
    if (raw.virtfns.size) pfAddresses.add(raw.address);
    if (raw.pf !== null) pfAddresses.add(raw.pf);
    for (const [vf, index] of raw.virtfns) vfIndex.set(vf, index);
  }
  const pfs = [...pfAddresses].flatMap((a) => pci.get(a) ?? []);
  const representors = new Representors(sys, pfs, devlinkIndex(opts.devlinkPorts ?? []));

  const vdpa = resolveVdpa(rawVdpa, pci, virtioBus, opts);
  const byParent = new Map<string, VdpaDevice[]>();
  for (const d of vdpa.values()) {
    if (d.pciAddress === null) continue;
    const list = byParent.get(d.pciAddress);
    if (list) list.push(d);
    else byParent.set(d.pciAddress, [d]);
  }

  const functions = new Map<string, PciFunction>();
  for (const raw of pci.values()) {
    const devices = byParent.get(raw.address) ?? [];
    const index = raw.pf === null ? null : (vfIndex.get(raw.address) ?? null);
    let representor: RepresentorLookup | null = null;
    if (raw.pf !== null) {
      representor =
        index === null
          ? { missing: `VF index unknown: no virtfnN link of PF ${raw.pf} points at ${raw.address}` }
          : representors.lookup(raw.pf, index);
    }
    functions.set(raw.address, {
      address: raw.address,
      vendor: raw.vendor,
      device: raw.device,
      driver: raw.driver,
      numaNode: raw.numaNode,
      pf: raw.pf,
      vfIndex: index,
      vfs: [...raw.virtfns].sort((a, b) => a[1] - b[1]).map(([vf]) => vf),
      netdevs: raw.netdevs,
      vdpaDevices: devices.map((d) => d.name),
      uplink: representors.uplinks.get(raw.pf ?? raw.address) ?? null,
      representor,
      ...verdict(raw, devices),
    });
  }
  return { functions, vdpa, errors };
}

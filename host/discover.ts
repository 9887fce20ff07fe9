/**
 * Discovery: one synchronous pass over a sysfs root (and the dev root) that yields a Snapshot of
 * the node's network PCI functions, vDPA devices, their virtio/vhost endpoints and switchdev
 * representors. Each link, directory and attribute is read at most once, so the cost is linear in
 * the number of devices. Nothing here throws on a malformed tree: what cannot be read becomes a
 * device's reason. The layout is in docs/host-layout.md; test/support/fixture.ts rebuilds it.
 *
 * Cost matters (the device plugin rescans on every change, 254 devices on a full node), so the
 * pass reads the fewest files that answer each question: a PCI function's `uevent` gives class,
 * vendor, device and driver in one read; the virtio bus says where each virtioN lives, so no device
 * directory is listed to find them; only PFs and vhost-bound vDPA devices are listed at all.
 */
import { resolve } from 'node:path';
import { lstatSync, readdirSync, statSync, type Dirent } from 'node:fs';
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
import { PCI_ADDRESS, describe, exists, isUnreadable, leaf, parentOf, readAttr, readLink, readNames, virtfnLinks, type Unreadable } from './sysfs.js';

export interface DiscoverOptions {
  readonly sysfsRoot: string;
  readonly devRoot: string;
  /** From listDevlinkPorts(); when given, representors are looked up there first. */
  readonly devlinkPorts?: readonly DevlinkPort[];
}

const VHOST_DIR = /^vhost-vdpa-\d+$/;
const UPLINK_PORT = /^p(\d+)$/;
const VF_PORT = /^(?:c(\d+))?pf(\d+)vf(\d+)$/;
const PCI_ID = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/;
const NETWORK_CLASS = 0x02;
const VDPA_DRIVERS: Readonly<Record<string, VdpaDriver>> = { virtio_vdpa: 'virtio', vhost_vdpa: 'vhost' };

/** A vDPA device as read from the bus, before its endpoint is resolved. */
interface RawVdpa {
  readonly name: string;
  readonly dir: string | null;
  readonly pciAddress: string | null;
  readonly mgmtDev: string;
  readonly driverName: string | null;
  readonly problems: string[];
}

/** A PCI function as read from its directory. */
interface RawPci {
  readonly address: string;
  readonly dir: string;
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

/** A failed read inside a device directory means the whole device is gone when its bus link dangles. */
function dangles(u: Unreadable, dir: string): boolean {
  return u.code === 'missing' && !exists(dir);
}

/**
 * A directory listing where absence is normal (a function without netdevs has no `net/`). Asking
 * first is cheaper than a failed readdir, whose exception costs several times the syscall.
 */
function optionalNames(dir: string, problems: string[]): string[] {
  if (!exists(dir)) return [];
  const names = readNames(dir);
  if (!isUnreadable(names)) return names.sort();
  if (names.code !== 'missing') problems.push(describe(names));
  return [];
}

/** `numa_node`: -1 (and a kernel without NUMA, which has no such file) mean no affinity. */
function numaAttr(dir: string, problems: string[]): number | null {
  const v = readAttr(`${dir}/numa_node`);
  if (isUnreadable(v)) {
    if (v.code !== 'missing') problems.push(describe(v));
    return null;
  }
  if (!/^-?\d+$/.test(v)) {
    problems.push(`${dir}/numa_node: ${JSON.stringify(v)} is not a number`);
    return null;
  }
  const n = Number(v);
  return n < 0 ? null : n;
}

/** The management device as `vdpa mgmtdev show` names it. */
function mgmtDevOf(sysfsRoot: string, parentDir: string): string {
  const parent = leaf(parentDir);
  if (PCI_ADDRESS.test(parent)) return `pci/${parent}`;
  const bus = readLink(`${parentDir}/subsystem`);
  if (!isUnreadable(bus)) return `${leaf(bus)}/${parent}`;
  if (parentDir !== `${sysfsRoot}/devices`) return parent;
  // The simulator's vDPA devices sit at the top of /sys/devices with no link to their management
  // device, which is a root device of its own (`/sys/devices/vdpasim_net`).
  const roots = readNames(`${sysfsRoot}/devices`);
  const sims = isUnreadable(roots) ? [] : roots.filter((n) => n.startsWith('vdpasim_'));
  return sims.length === 1 ? sims[0]! : 'unknown';
}

/** One entry of the vDPA bus, located and with its bound driver, before its endpoint is resolved. */
function readVdpaEntry(sysfsRoot: string, name: string): RawVdpa {
  const link = `${sysfsRoot}/bus/vdpa/devices/${name}`;
  const problems: string[] = [];
  const unknown = { name, dir: null, pciAddress: null, mgmtDev: 'unknown', driverName: null, problems };
  const dir = readLink(link);
  if (isUnreadable(dir)) {
    problems.push(describe(dir));
    return unknown;
  }
  const driver = readLink(`${dir}/driver`);
  if (isUnreadable(driver)) {
    if (dangles(driver, dir)) {
      problems.push(`${link} is a dangling link`);
      return unknown;
    }
    // No driver link is the normal unbound state; any other failure is a problem of its own.
    if (driver.code !== 'missing') problems.push(describe(driver));
  }
  const parentDir = parentOf(dir);
  const parent = leaf(parentDir);
  return {
    name,
    dir,
    pciAddress: PCI_ADDRESS.test(parent) ? parent : null,
    mgmtDev: mgmtDevOf(sysfsRoot, parentDir),
    driverName: isUnreadable(driver) ? null : leaf(driver),
    problems,
  };
}

function readVdpaBus(sysfsRoot: string, errors: string[]): RawVdpa[] {
  return busNames(`${sysfsRoot}/bus/vdpa/devices`, errors).map((name) => readVdpaEntry(sysfsRoot, name));
}

function parseUevent(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return props;
}

/**
 * @param knownPf the PF whose virtfnN link names this function, when that PF was read first (bus
 *   order puts PFs before their VFs): its physfn link need not be read again.
 */
function readPciFunction(address: string, link: string, vdpaParents: ReadonlySet<string>, knownPf: string | undefined): RawPci | null {
  const problems: string[] = [];
  const broken = (dir: string): RawPci => ({
    address,
    dir,
    vendor: '',
    device: '',
    driver: null,
    numaNode: null,
    pf: null,
    virtfns: new Map(),
    netdevs: [],
    problems,
  });
  const dir = readLink(link);
  if (isUnreadable(dir)) {
    problems.push(describe(dir));
    return broken(link);
  }
  // One read for class, vendor, device and driver (the kernel's pci_uevent), instead of four.
  const uevent = readAttr(`${dir}/uevent`);
  let id: RegExpExecArray | null = null;
  let driver: string | null = null;
  if (isUnreadable(uevent)) {
    if (dangles(uevent, dir)) {
      problems.push(`${link} is a dangling link`);
      return broken(dir);
    }
    problems.push(describe(uevent));
  } else {
    const props = parseUevent(uevent);
    const cls = props.get('PCI_CLASS');
    if (cls === undefined || !/^[0-9a-fA-F]{1,6}$/.test(cls)) problems.push(`${dir}/uevent has no valid PCI_CLASS`);
    else if (parseInt(cls, 16) >> 16 !== NETWORK_CLASS && !vdpaParents.has(address)) return null;
    id = PCI_ID.exec(props.get('PCI_ID') ?? '');
    if (!id) problems.push(`${dir}/uevent has no valid PCI_ID`);
    driver = props.get('DRIVER') ?? null;
  }

  let pf = knownPf ?? null;
  if (pf === null) {
    const physfn = readLink(`${dir}/physfn`);
    if (isUnreadable(physfn) && physfn.code !== 'missing') problems.push(describe(physfn));
    pf = isUnreadable(physfn) ? null : leaf(physfn);
  }
  // Only PFs (and plain functions) are listed, to find their virtfnN links; VFs have none.
  const virtfns = new Map(pf === null ? virtfnLinks(dir, optionalNames(dir, problems), (u) => problems.push(describe(u))) : []);
  return {
    address,
    dir,
    vendor: id ? id[1]!.toLowerCase() : '',
    device: id ? id[2]!.toLowerCase() : '',
    driver,
    numaNode: numaAttr(dir, problems),
    pf,
    virtfns,
    netdevs: optionalNames(`${dir}/net`, problems),
    problems,
  };
}

/**
 * A netdev's link state and switch id, and its port name unless the caller knows it (from devlink,
 * from which the kernel derives it). Empty fields where the kernel does not say (legacy mode has no
 * switch id). null when the netdev does not exist.
 */
function readNetdev(dir: string, name: string, physPortName?: string): Representor | null {
  const port = physPortName ?? readAttr(`${dir}/phys_port_name`);
  const switchId = readAttr(`${dir}/phys_switch_id`);
  const operState = readAttr(`${dir}/operstate`);
  const text = (v: string | Unreadable) => (typeof v === 'string' ? v : '');
  const gone = (v: string | Unreadable) => isUnreadable(v) && v.code === 'missing';
  if (gone(switchId) && gone(operState) && (physPortName !== undefined || gone(port))) return null;
  return { name, physPortName: text(port), switchId: text(switchId), operState: text(operState) || 'unknown' };
}

/** A netdev of the node read as a possible representor (`class/net/<name>`); null when it does not exist. */
export function readRepresentor(sysfsRoot: string, name: string): Representor | null {
  if (!name || name.includes('/') || name === '.' || name === '..') return null;
  return readNetdev(`${sysfsRoot}/class/net/${name}`, name);
}

/**
 * Representors and uplinks. With devlink ports, only the netdevs devlink names are read; the sysfs
 * scan of every PF netdev (matching phys_port_name) runs once, when devlink does not answer.
 */
class Representors {
  private readonly vfPorts = new Map<string, DevlinkPort>();
  private readonly uplinkPorts = new Map<string, DevlinkPort>();
  /** `<switch id>/pf<N>vf<M>` → representor; several PFs may share one switch id. */
  private byPort: Map<string, Representor> | null = null;
  private readonly scannedUplinks = new Map<string, Representor>();
  private readonly uplinkCache = new Map<string, Representor | null>();

  constructor(
    private readonly sysfsRoot: string,
    private readonly pfs: ReadonlyMap<string, RawPci>,
    ports: readonly DevlinkPort[],
  ) {
    for (const p of ports) {
      if (p.netdev === null || p.external) continue;
      if (p.flavour === 'pcivf' && p.vfnum !== null) this.vfPorts.set(`${p.device}#${p.vfnum}`, p);
      else if (p.flavour === 'physical') this.uplinkPorts.set(p.device, p);
    }
  }

  /** A netdev named by devlink, read where the PF lists it, else through /sys/class/net. */
  private named(pf: string, name: string, physPortName?: string): Representor | null {
    const raw = this.pfs.get(pf);
    const dir = raw?.netdevs.includes(name) ? `${raw.dir}/net/${name}` : `${this.sysfsRoot}/class/net/${name}`;
    return readNetdev(dir, name, physPortName);
  }

  private scan(): Map<string, Representor> {
    if (this.byPort) return this.byPort;
    this.byPort = new Map();
    for (const pf of this.pfs.values()) {
      for (const name of pf.netdevs) {
        const rep = readNetdev(`${pf.dir}/net/${name}`, name);
        if (!rep || rep.physPortName === '' || rep.switchId === '') continue;
        if (UPLINK_PORT.test(rep.physPortName)) {
          if (!this.scannedUplinks.has(pf.address)) this.scannedUplinks.set(pf.address, rep);
          continue;
        }
        const m = VF_PORT.exec(rep.physPortName);
        // Ports with a controller number belong to another host (a DPU's host side).
        if (m && (m[1] === undefined || m[1] === '0')) this.byPort.set(`${rep.switchId}/pf${m[2]}vf${m[3]}`, rep);
      }
    }
    return this.byPort;
  }

  /** A PF's uplink representor (phys_port_name pN with a switch id), or null in legacy mode. */
  uplink(pf: string): Representor | null {
    let rep = this.uplinkCache.get(pf);
    if (rep !== undefined) return rep;
    const port = this.uplinkPorts.get(`pci/${pf}`);
    const viaDevlink = port?.netdev ? this.named(pf, port.netdev) : null;
    if (viaDevlink && viaDevlink.switchId !== '') rep = viaDevlink;
    else {
      this.scan();
      rep = this.scannedUplinks.get(pf) ?? null;
    }
    this.uplinkCache.set(pf, rep);
    return rep;
  }

  lookup(pf: string, vfIndex: number): RepresentorLookup {
    const port = this.vfPorts.get(`pci/${pf}#${vfIndex}`);
    if (port?.netdev) {
      // The kernel derives phys_port_name from these same devlink attributes.
      const rep = this.named(pf, port.netdev, port.pfnum === null ? undefined : `pf${port.pfnum}vf${vfIndex}`);
      if (rep) return { found: rep, via: 'devlink' };
    }
    const uplink = this.uplink(pf);
    if (!uplink) return { missing: `PF ${pf} has no uplink representor (phys_port_name pN): its eswitch is not in switchdev mode` };
    const pfnum = UPLINK_PORT.exec(uplink.physPortName)?.[1] ?? String(port?.pfnum ?? '?');
    const rep = this.scan().get(`${uplink.switchId}/pf${pfnum}vf${vfIndex}`);
    if (rep) return { found: rep, via: 'sysfs' };
    return { missing: `no representor with phys_port_name pf${pfnum}vf${vfIndex} on switch ${uplink.switchId} (PF ${pf})` };
  }
}

/** The single entry of `<virtio device>/net/`, or null (virtio_net not loaded, or no such device). */
export function virtioNetdev(virtioDevicePath: string): string | null {
  const names = readNames(`${virtioDevicePath}/net`);
  return !isUnreadable(names) && names.length === 1 ? names[0]! : null;
}

/** Where each virtio device lives, from the virtio bus: parent directory → [virtioN]. */
function readVirtioBus(sysfsRoot: string, errors: string[]): Map<string, string[]> {
  const bus = `${sysfsRoot}/bus/virtio/devices`;
  const byParent = new Map<string, string[]>();
  for (const name of busNames(bus, errors)) {
    const target = readLink(`${bus}/${name}`);
    if (isUnreadable(target)) continue;
    const parent = parentOf(target);
    const list = byParent.get(parent);
    if (list) list.push(name);
    else byParent.set(parent, [name]);
  }
  return byParent;
}

function resolveVirtio(
  raw: RawVdpa & { dir: string },
  virtioByParent: ReadonlyMap<string, readonly string[]>,
  virtioBoundOnParent: number,
  sysfsRoot: string,
  problems: string[],
): VirtioEndpoint | null {
  // virtio_vdpa puts virtioN under the vDPA device's DMA device: the device itself (simulator,
  // newer kernels) or its PCI function (mlx5, vp_vdpa). Under the function it cannot be told
  // which of several vDPA devices it belongs to.
  let found = virtioByParent.get(raw.dir) ?? [];
  if (found.length === 0 && raw.pciAddress !== null) {
    found = virtioByParent.get(parentOf(raw.dir)) ?? [];
    if (found.length > 0 && virtioBoundOnParent > 1) {
      problems.push(`shares PCI function ${raw.pciAddress} with other virtio_vdpa devices; its virtio device cannot be told apart`);
      return null;
    }
  }
  if (found.length === 0) {
    problems.push('is bound to virtio_vdpa but has no virtio device on the virtio bus');
    return null;
  }
  if (found.length > 1) {
    problems.push(`has several virtio devices (${found.join(', ')})`);
    return null;
  }
  const device = found[0]!;
  const path = `${sysfsRoot}/bus/virtio/devices/${device}`;
  const netdevs = readNames(`${path}/net`);
  let netdev: string | null = null;
  if (isUnreadable(netdevs) || netdevs.length === 0) problems.push(`has ${device} without a netdev (is the virtio_net module loaded?)`);
  else if (netdevs.length > 1) problems.push(`has ${device} with several netdevs (${netdevs.join(', ')})`);
  else netdev = netdevs[0]!;
  return { device, path, netdev };
}

function resolveVhost(raw: RawVdpa & { dir: string }, devRoot: string, problems: string[]): VhostEndpoint | null {
  const names = readNames(raw.dir);
  if (isUnreadable(names)) {
    problems.push(describe(names));
    return null;
  }
  const dirs = names.filter((e) => VHOST_DIR.test(e));
  if (dirs.length !== 1) {
    problems.push(dirs.length ? `has several vhost devices (${dirs.join(', ')})` : 'is bound to vhost_vdpa but has no vhost-vdpa-N device');
    return null;
  }
  const name = dirs[0]!;
  const path = `${devRoot}/${name}`;
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) problems.push(`has ${name} but ${path} does not exist`);
  else if (!st.isCharacterDevice()) problems.push(`has ${name} but ${path} is not a character device`);
  else {
    // N is reassigned at every boot; a /dev that lags behind sysfs would hand out another device.
    const dev = readAttr(`${raw.dir}/${name}/dev`);
    const rdev = st.rdev;
    const actual = `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00)}`;
    if (isUnreadable(dev)) problems.push(describe(dev));
    else if (dev !== actual) problems.push(`has ${name} (${dev}) but ${path} is ${actual}`);
  }
  return { name, path };
}

function resolveVdpa(raws: readonly RawVdpa[], virtioByParent: ReadonlyMap<string, readonly string[]>, opts: DiscoverOptions): Map<string, VdpaDevice> {
  const virtioBound = new Map<string, number>();
  for (const r of raws) {
    if (r.pciAddress !== null && r.driverName === 'virtio_vdpa') virtioBound.set(r.pciAddress, (virtioBound.get(r.pciAddress) ?? 0) + 1);
  }
  const out = new Map<string, VdpaDevice>();
  for (const raw of raws) {
    let virtio: VirtioEndpoint | null = null;
    let vhost: VhostEndpoint | null = null;
    const { dir, driverName, problems } = raw;
    if (dir !== null) {
      const located = { ...raw, dir };
      if (driverName === null) problems.push('is not bound to a driver');
      else if (driverName === 'virtio_vdpa') {
        virtio = resolveVirtio(located, virtioByParent, virtioBound.get(raw.pciAddress ?? '') ?? 0, opts.sysfsRoot, problems);
      } else if (driverName === 'vhost_vdpa') vhost = resolveVhost(located, opts.devRoot, problems);
      else problems.push(`is bound to ${driverName}, not to virtio_vdpa or vhost_vdpa`);
    }
    out.set(raw.name, {
      name: raw.name,
      mgmtDev: raw.mgmtDev,
      pciAddress: raw.pciAddress,
      driver: driverName === null ? null : (VDPA_DRIVERS[driverName] ?? null),
      driverName,
      virtio,
      vhost,
      problems,
    });
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

/** Link targets are resolved to absolute paths; compare them with absolute roots. */
function absolute(options: DiscoverOptions): DiscoverOptions {
  return { ...options, sysfsRoot: resolve(options.sysfsRoot), devRoot: resolve(options.devRoot) };
}

const indexUnknown = (raw: RawPci): RepresentorLookup => ({ missing: `VF index unknown: no virtfnN link of PF ${raw.pf} points at ${raw.address}` });

function pciFunction(
  raw: RawPci,
  devices: readonly VdpaDevice[],
  vfIndex: number | null,
  uplink: Representor | null,
  representor: RepresentorLookup | null,
): PciFunction {
  return {
    address: raw.address,
    vendor: raw.vendor,
    device: raw.device,
    driver: raw.driver,
    numaNode: raw.numaNode,
    pf: raw.pf,
    vfIndex,
    vfs: [...raw.virtfns].sort((a, b) => a[1] - b[1]).map(([vf]) => vf),
    netdevs: raw.netdevs,
    vdpaDevices: devices.map((d) => d.name),
    uplink,
    representor,
    ...verdict(raw, devices),
  };
}

export function discover(options: DiscoverOptions): Snapshot {
  const opts = absolute(options);
  const sys = opts.sysfsRoot;
  const errors: string[] = [];

  const virtioByParent = readVirtioBus(sys, errors);
  const rawVdpa = readVdpaBus(sys, errors);
  const vdpaParents = new Set(rawVdpa.flatMap((r) => (r.pciAddress === null ? [] : [r.pciAddress])));

  const pciBus = `${sys}/bus/pci/devices`;
  const pci = new Map<string, RawPci>();
  const vfIndex = new Map<string, number>();
  const pfOfVf = new Map<string, string>();
  for (const address of busNames(pciBus, errors)) {
    const raw = readPciFunction(address, `${pciBus}/${address}`, vdpaParents, pfOfVf.get(address));
    if (!raw) continue;
    pci.set(address, raw);
    for (const [vf, index] of raw.virtfns) {
      vfIndex.set(vf, index);
      pfOfVf.set(vf, address);
    }
  }

  // A PF is a function with virtfnN links or one that a VF's physfn names.
  const pfs = new Map<string, RawPci>();
  for (const raw of pci.values()) {
    if (raw.virtfns.size) pfs.set(raw.address, raw);
    if (raw.pf !== null && pci.has(raw.pf)) pfs.set(raw.pf, pci.get(raw.pf)!);
  }
  const representors = new Representors(sys, pfs, opts.devlinkPorts ?? []);

  const vdpa = resolveVdpa(rawVdpa, virtioByParent, opts);
  const byParent = new Map<string, VdpaDevice[]>();
  for (const d of vdpa.values()) {
    if (d.pciAddress === null) continue;
    const list = byParent.get(d.pciAddress);
    if (list) list.push(d);
    else byParent.set(d.pciAddress, [d]);
  }

  const functions = new Map<string, PciFunction>();
  for (const raw of pci.values()) {
    const index = raw.pf === null ? null : (vfIndex.get(raw.address) ?? null);
    const representor = raw.pf === null ? null : index === null ? indexUnknown(raw) : representors.lookup(raw.pf, index);
    const uplinkOf = raw.pf ?? (pfs.has(raw.address) ? raw.address : null);
    const uplink = uplinkOf === null ? null : representors.uplink(uplinkOf);
    functions.set(raw.address, pciFunction(raw, byParent.get(raw.address) ?? [], index, uplink, representor));
  }
  return { functions, vdpa, errors };
}

/*
 * Narrow discovery, for the CNI: the facts of one function (or one vDPA device, or the owner of
 * one representor) as discover() gives them, read from that function, its vDPA devices and their
 * endpoints, and its PF's listing and netdevs, instead of the whole node. Where the narrow reading
 * cannot vouch for the answer discover() would give (a representor that is not under its own
 * PF, as on a card whose PFs share one eswitch), it falls back to discover() and takes its answer.
 */

const VIRTIO_DIR = /^virtio\d+$/;
const NO_VDPA_PARENTS: ReadonlySet<string> = new Set();

/**
 * Whether a bus entry is there, without following it (a dangling link is there). An entry that
 * cannot be looked at is not there: discover() cannot list its bus either.
 */
function present(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/**
 * The virtio devices right under each directory, as the virtio bus places them: what
 * readVirtioBus() would group under those parents, without reading the rest of the bus.
 */
function virtioUnder(sysfsRoot: string, dirs: readonly string[]): Map<string, string[]> {
  const byParent = new Map<string, string[]>();
  for (const dir of dirs) {
    if (byParent.has(dir)) continue;
    const names = readNames(dir);
    const candidates = isUnreadable(names) ? [] : names.filter((n) => VIRTIO_DIR.test(n)).sort();
    byParent.set(dir, candidates.filter((n) => readLink(`${sysfsRoot}/bus/virtio/devices/${n}`) === `${dir}/${n}`));
  }
  return byParent;
}

/** The directories where a vDPA device's virtio device may live (see resolveVirtio). */
function virtioHomes(raws: readonly RawVdpa[]): string[] {
  return raws.flatMap((r) => (r.dir === null || r.driverName !== 'virtio_vdpa' ? [] : r.pciAddress === null ? [r.dir] : [r.dir, parentOf(r.dir)]));
}

/**
 * The vDPA devices whose parent is the function at `fnDir`: its subdirectories that are entries of
 * the vDPA bus pointing back at them. The rest of the bus is not read.
 */
function vdpaOfFunction(sysfsRoot: string, fnDir: string, address: string): RawVdpa[] {
  let children: Dirent[];
  try {
    children = readdirSync(fnDir, { withFileTypes: true });
  } catch {
    // A function that cannot be listed is judged by what readPciFunction() finds.
    return [];
  }
  const bus = `${sysfsRoot}/bus/vdpa/devices`;
  return children
    .filter((e) => e.isDirectory() && present(`${bus}/${e.name}`) && readLink(`${bus}/${e.name}`) === `${fnDir}/${e.name}`)
    .map((e) => e.name)
    .sort()
    .map((name) => readVdpaEntry(sysfsRoot, name))
    .filter((r) => r.pciAddress === address);
}

/** One function and its vDPA devices out of a whole-node snapshot. */
function onlyFunction(s: Snapshot, address: string): Snapshot {
  const fn = s.functions.get(address);
  if (!fn) return { functions: new Map(), vdpa: new Map(), errors: s.errors };
  const vdpa = new Map(fn.vdpaDevices.flatMap((name) => (s.vdpa.has(name) ? [[name, s.vdpa.get(name)!] as const] : [])));
  return { functions: new Map([[address, fn]]), vdpa, errors: s.errors };
}

/**
 * What discover(options) says of the PCI function at `pciAddress` and of its vDPA devices (the
 * snapshot holds that function alone, or nothing when discover() would not list it), read
 * narrowly: the function, its vDPA devices and endpoints, its PF's virtfnN links and netdevs.
 */
export function discoverFunction(options: DiscoverOptions, pciAddress: string): Snapshot {
  const opts = absolute(options);
  const sys = opts.sysfsRoot;
  const address = pciAddress.toLowerCase();
  const errors: string[] = [];
  const link = `${sys}/bus/pci/devices/${address}`;
  // discover() lists the bus, whose entries are addresses: anything else is not on it.
  if (!PCI_ADDRESS.test(address) || !present(link)) return { functions: new Map(), vdpa: new Map(), errors };
  const dir = readLink(link);
  const raws = isUnreadable(dir) ? [] : vdpaOfFunction(sys, dir, address);
  const raw = readPciFunction(address, link, raws.length ? new Set([address]) : NO_VDPA_PARENTS, undefined);
  if (!raw) return { functions: new Map(), vdpa: new Map(), errors };
  const vdpa = resolveVdpa(raws, virtioUnder(sys, virtioHomes(raws)), opts);
  const devices = [...vdpa.values()];

  let index: number | null = null;
  let uplink: Representor | null = null;
  let representor: RepresentorLookup | null = null;
  if (raw.pf !== null) {
    const pf = readPfOf(sys, raw.pf, address);
    index = pf?.index ?? null;
    if (!pf) representor = indexUnknown(raw);
    else if (opts.devlinkPorts?.length) {
      // devlink names representors that sysfs may not: as discover() does, through Representors.
      const full = readPciFunction(pf.address, `${sys}/bus/pci/devices/${pf.address}`, NO_VDPA_PARENTS, undefined)!;
      const representors = new Representors(sys, new Map([[pf.address, full]]), opts.devlinkPorts);
      uplink = representors.uplink(pf.address);
      representor = index === null ? indexUnknown(raw) : representors.lookup(pf.address, index);
    } else {
      const port = portReader(pf);
      uplink = uplinkOf(pf, port);
      representor = index === null ? indexUnknown(raw) : representorOf(pf, port, uplink, index);
    }
    // Not under its own PF: another PF on the same switch may hold it, which only the whole node shows.
    if (representor && 'missing' in representor && uplink !== null && index !== null) return onlyFunction(discover(options), address);
  } else if (raw.virtfns.size) {
    uplink = new Representors(sys, new Map([[address, raw]]), opts.devlinkPorts ?? []).uplink(address);
  }
  return { functions: new Map([[address, pciFunction(raw, devices, index, uplink, representor)]]), vdpa, errors };
}

/** What a VF needs of its PF: where it is, its netdevs, and the N of its virtfnN link that points at the VF. */
interface PfFacts {
  readonly address: string;
  readonly dir: string;
  readonly netdevs: readonly string[];
  readonly index: number | null;
}

/** Bus, device and function as one number (the PCI routing ID); null for a malformed address. */
function routingId(address: string): number | null {
  const m = /:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(address);
  return m ? (parseInt(m[1]!, 16) << 8) + (parseInt(m[2]!, 16) << 3) + Number(m[3]) : null;
}

/**
 * The N of the PF's virtfnN link that points at `vf`, reading few links: VFs sit at a fixed
 * stride from the first one, so virtfn0 and virtfn1 say which link to try. The PF's listing is
 * read only when that guess misses.
 */
function vfIndexOf(pfDir: string, vf: string): number | null {
  const at = (n: number) => {
    const target = readLink(`${pfDir}/virtfn${n}`);
    return isUnreadable(target) ? null : leaf(target);
  };
  const first = at(0);
  if (first === vf) return 0;
  const second = first === null ? null : at(1);
  if (second === vf) return 1;
  const r0 = first === null ? null : routingId(first);
  const r1 = second === null ? null : routingId(second);
  const r = routingId(vf);
  if (r0 !== null && r1 !== null && r !== null && r1 > r0 && (r - r0) % (r1 - r0) === 0) {
    const guess = (r - r0) / (r1 - r0);
    if (guess > 1 && at(guess) === vf) return guess;
  }
  const names = readNames(pfDir);
  const hit = isUnreadable(names) ? undefined : virtfnLinks(pfDir, names).find(([address]) => address === vf);
  return hit ? hit[1] : null;
}

/**
 * The PF of a VF as far as discover() would use it, or null when discover() would not list it as
 * a function (not on the bus, or of another class).
 */
function readPfOf(sysfsRoot: string, pf: string, vf: string): PfFacts | null {
  const link = `${sysfsRoot}/bus/pci/devices/${pf}`;
  if (!PCI_ADDRESS.test(pf) || !present(link)) return null;
  const dir = readLink(link);
  // Unreadable, it is still listed, with no virtfnN links and no netdevs.
  if (isUnreadable(dir)) return { address: pf, dir: link, netdevs: [], index: null };
  const uevent = readAttr(`${dir}/uevent`);
  if (!isUnreadable(uevent)) {
    const cls = parseUevent(uevent).get('PCI_CLASS');
    if (cls !== undefined && /^[0-9a-fA-F]{1,6}$/.test(cls) && parseInt(cls, 16) >> 16 !== NETWORK_CLASS) return null;
  }
  return { address: pf, dir, netdevs: optionalNames(`${dir}/net`, []), index: vfIndexOf(dir, vf) };
}

/** Names that look like VF representors (`enp101s0f0_3`, `enp101s0f0npf0vf3`): tried last for the uplink. */
const REPRESENTOR_LIKE = /(?:_\d+|vf\d+)$/;

/** A netdev's phys_port_name, read once per discoverFunction() call. */
function portReader(pf: PfFacts): (name: string) => string | null {
  const ports = new Map<string, string | null>();
  return (name) => {
    let port = ports.get(name);
    if (port === undefined) {
      const v = readAttr(`${pf.dir}/net/${name}/phys_port_name`);
      port = isUnreadable(v) ? null : v;
      ports.set(name, port);
    }
    return port;
  };
}

/** `names` with those that `first` matches in front, each part in its own order. */
const inFront = (names: readonly string[], first: (n: string) => boolean): string[] => [...names.filter(first), ...names.filter((n) => !first(n))];

/**
 * The PF's uplink as Representors.uplink() finds it by sysfs: its netdev with phys_port_name pN
 * and a switch id (a PF has one). Names that do not look like representors are tried first.
 */
function uplinkOf(pf: PfFacts, port: (name: string) => string | null): Representor | null {
  for (const name of inFront(pf.netdevs, (n) => !REPRESENTOR_LIKE.test(n))) {
    const p = port(name);
    if (p === null || !UPLINK_PORT.test(p)) continue;
    const rep = readNetdev(`${pf.dir}/net/${name}`, name, p);
    if (rep && rep.switchId !== '') return rep;
  }
  return null;
}

/**
 * VF `index`'s representor among its PF's netdevs, as Representors.lookup() pairs them by sysfs
 * (phys_port_name pf<N>vf<index> on the uplink's switch, N the uplink's pN). Names that end in
 * the index are tried first (`enp101s0f0npf0vf3`, `enp101s0f0_3`), so a full PF is not read
 * netdev by netdev.
 */
function representorOf(pf: PfFacts, port: (name: string) => string | null, uplink: Representor | null, index: number): RepresentorLookup {
  if (!uplink) return { missing: `PF ${pf.address} has no uplink representor (phys_port_name pN): its eswitch is not in switchdev mode` };
  const pfnum = UPLINK_PORT.exec(uplink.physPortName)![1]!;
  const vf = String(index);
  const likely = new RegExp(`(?:^|\\D)${vf}$`);
  for (const name of inFront(pf.netdevs, (n) => likely.test(n))) {
    const p = port(name);
    const m = p === null ? null : VF_PORT.exec(p);
    if (!m || (m[1] !== undefined && m[1] !== '0') || m[2] !== pfnum || m[3] !== vf) continue;
    const rep = readNetdev(`${pf.dir}/net/${name}`, name, p!);
    if (rep && rep.switchId === uplink.switchId) return { found: rep, via: 'sysfs' };
  }
  return { missing: `no representor with phys_port_name pf${pfnum}vf${vf} on switch ${uplink.switchId} (PF ${pf.address})` };
}

/** What discover(options) says of the vDPA device `name` (PCI-parented or not), or null when the bus has no such entry. */
export function discoverVdpaDevice(options: DiscoverOptions, name: string): VdpaDevice | null {
  const opts = absolute(options);
  const sys = opts.sysfsRoot;
  if (!name || name.includes('/') || name === '.' || name === '..' || !present(`${sys}/bus/vdpa/devices/${name}`)) return null;
  const raw = readVdpaEntry(sys, name);
  // A PCI parent's other vDPA devices decide whether its virtio device can be told apart.
  if (raw.pciAddress !== null) return discoverFunction(options, raw.pciAddress).vdpa.get(name) ?? null;
  return resolveVdpa([raw], virtioUnder(sys, virtioHomes([raw])), opts).get(name) ?? null;
}

/**
 * The VF whose representor the netdev `name` is, read narrowly: the netdev, the PF whose net/
 * lists it, that PF's virtfnN for the VF number in its phys_port_name, and that VF.
 * undefined when that path does not vouch for an answer.
 */
function narrowOwner(opts: DiscoverOptions, name: string): string | null | undefined {
  const sys = opts.sysfsRoot;
  const rep = readRepresentor(sys, name);
  const m = rep ? VF_PORT.exec(rep.physPortName) : null;
  // discover() pairs only these with VFs by sysfs (see Representors); devlink may name others.
  if (!rep || !m || rep.switchId === '' || (m[1] !== undefined && m[1] !== '0')) return opts.devlinkPorts?.length ? undefined : null;
  const target = readLink(`${sys}/class/net/${name}`);
  if (isUnreadable(target) || leaf(parentOf(target)) !== 'net') return undefined;
  const vf = readLink(`${parentOf(parentOf(target))}/virtfn${m[3]}`);
  if (isUnreadable(vf)) return undefined;
  const fn = discoverFunction(opts, leaf(vf)).functions.get(leaf(vf));
  return fn?.representor && 'found' in fn.representor && fn.representor.found.name === name ? fn.address : undefined;
}

/**
 * For each netdev name, the VF whose representor it is, as discover(options) pairs them; names
 * that are no VF's representor are left out. Read narrowly, with one discover() pass for the
 * names the narrow reading cannot vouch for.
 */
export function representorOwners(options: DiscoverOptions, names: Iterable<string>): Map<string, string> {
  const opts = absolute(options);
  const owners = new Map<string, string>();
  const unsure = new Set<string>();
  for (const name of new Set(names)) {
    const vf = narrowOwner(opts, name);
    if (vf === undefined) unsure.add(name);
    else if (vf !== null) owners.set(name, vf);
  }
  if (unsure.size) {
    for (const fn of discover(options).functions.values()) {
      if (fn.representor && 'found' in fn.representor && unsure.has(fn.representor.found.name)) owners.set(fn.representor.found.name, fn.address);
    }
  }
  return owners;
}

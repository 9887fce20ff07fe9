/**
 * A node's sysfs and /dev trees, written under a temporary root, reproducing what the kernel shows
 * for a ConnectX-6 Dx in SR-IOV + switchdev mode with vDPA devices (see docs/host-layout.md).
 * Only the NIC is fake: give real veth names as the netdevs and the code under test acts on real
 * links while it reads this tree.
 *
 * Layout (under <root>/sys unless noted; PF 0000:65:00.0, VFs from 0000:65:00.2):
 *   devices/pci0000:64/0000:64:00.0/                 root port (class 0x060400), parent of the PFs
 *     <PF>/  vendor 0x15b3, device 0x101d (or as given), class 0x020000, uevent (DRIVER, PCI_CLASS, PCI_ID, …),
 *            numa_node, sriov_totalvfs, sriov_numvfs,
 *            driver → bus/pci/drivers/mlx5_core, subsystem → bus/pci, virtfnN → ../<VF>,
 *            net/<uplink>/ (phys_port_name pN) and, in switchdev mode, net/<representor>/ per VF
 *            (phys_port_name pfMvfN); both with phys_switch_id (shared by the PFs of one card),
 *            operstate, address, mtu, ifindex, carrier. In legacy mode the uplink has no
 *            phys_switch_id (the kernel answers EOPNOTSUPP) and there are no representors.
 *     <VF>/  vendor 0x15b3, device 0x101e, physfn → ../<PF>, driver → mlx5_core, optional
 *            net/<vendor netdev>/ (the VF's own mlx5 netdev),
 *            vdpaN/ (driver → bus/vdpa/drivers/{virtio_vdpa,vhost_vdpa}, driver_override, subsystem),
 *            virtioM/net/<netdev>/ (virtio_vdpa puts virtio under the DMA device: the VF for mlx5),
 *            vdpaN/vhost-vdpa-K/dev "MAJOR:K" (vhost_vdpa's class device)
 *   devices/pci0000:00/0000:00:05.0/  plain virtio-net function (1af4:1041, numa -1), driver vp_vdpa,
 *            no physfn, its vdpaN/ and virtioM/ like a VF's (optional)
 *   devices/vdpasim_net/ and devices/vdpaN/virtioM/net/<netdev>/  the simulator: a root-level vDPA
 *            device with virtio under itself (optional)
 *   bus/pci/devices/<BDF>, bus/vdpa/devices/vdpaN, bus/virtio/devices/virtioM → the device dirs;
 *   bus/{pci,vdpa,virtio}/drivers/<driver>/ with bind, unbind and links back to bound devices;
 *   class/net/<netdev>, class/vhost-vdpa/vhost-vdpa-K → the device dirs
 *   <root>/dev/vhost-vdpa-K  a real character device node (mknod), MAJOR:K as in sysfs
 *
 *   const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio', netdev: 'veth-a', representor: 'veth-b' }] }] });
 *   const snap = discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot });
 *   fx.rebindVdpa(fx.vfs[0].vdpa[0]);  // now vhost, with a new vhost-vdpa-K
 *   fx.cleanup();
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { DevlinkPort } from '../../host/devlink.js';

/** What a VF carries: one vDPA device bound to either driver, an unbound one, none, or two (1:N). */
export type FixtureVdpaType = 'virtio' | 'vhost' | 'unbound' | 'none' | 'two-vdpa';
type Driver = 'virtio' | 'vhost';

export interface FixtureVfSpec {
  /** Default: the PF's `vdpa`, else 'virtio'. 'two-vdpa' makes one virtio and one vhost device. */
  readonly vdpa?: FixtureVdpaType;
  /** Name of the virtio netdev (default `eth<M>` for virtioM); kept across rebinds. */
  readonly netdev?: string;
  /** Name of the VF representor (default `<pf base>_<index>`); only in switchdev mode. */
  readonly representor?: string;
  /** The VF's own vendor netdev next to its virtio netdev: a name, or true for `<pf base>v<index>`. */
  readonly vendorNetdev?: string | boolean;
  /** vDPA device name (default `vdpaN`); the SR-IOV operator uses `vdpa:<VF BDF>`. */
  readonly vdpaName?: string;
}

export interface FixturePfSpec {
  /** A count of default VFs, or one spec per VF. */
  readonly vfs: number | readonly FixtureVfSpec[];
  /** sriov_totalvfs; default max(VF count, 8). */
  readonly totalVfs?: number;
  /** numa_node; default 0, -1 for no affinity. */
  readonly numa?: number;
  /** Eswitch mode; default true (switchdev). */
  readonly switchdev?: boolean;
  /** The default vDPA type of this PF's VFs. */
  readonly vdpa?: FixtureVdpaType;
  /** Uplink netdev name; default `enp101s0f<P>np<P>`. */
  readonly uplink?: string;
  /** PCI device IDs of the PF and its VFs; default 0x101d and 0x101e (ConnectX-6 Dx; ConnectX-7 is 0x1021). */
  readonly device?: number;
  readonly vfDevice?: number;
}

export interface FixtureSpec {
  readonly pfs: readonly FixturePfSpec[];
  /** A vdpasim_net device under /sys/devices (no PCI address). */
  readonly simulator?: { readonly vdpa?: 'virtio' | 'vhost' | 'unbound'; readonly netdev?: string };
  /** A plain PCI function (vp_vdpa in a VM) with its own vDPA device and no PF. */
  readonly plainFunction?: { readonly vdpa?: FixtureVdpaType; readonly netdev?: string };
  /** Where to create the temporary root; default /dev/shm (tmpfs), else os.tmpdir(). */
  readonly tmpDir?: string;
}

/** Facts about one VF as the fixture last wrote them. */
export interface FixtureVf {
  readonly pci: string;
  readonly pf: string;
  readonly index: number;
  readonly numa: number | null;
  /** Names of the VF's vDPA devices, in creation order. */
  readonly vdpa: readonly string[];
  /** Driver of the first vDPA device; null when unbound or none. */
  readonly driver: Driver | null;
  /** `virtioM` of the first vDPA device when bound to virtio. */
  readonly virtio: string | null;
  /** The virtio netdev when bound to virtio. */
  readonly netdev: string | null;
  /** The representor netdev; null when the PF is in legacy mode. */
  readonly representor: string | null;
  /** `<devRoot>/vhost-vdpa-K` when bound to vhost. */
  readonly vhost: string | null;
  readonly vendorNetdev: string | null;
}

export interface FixturePf {
  readonly pci: string;
  readonly pfnum: number;
  readonly uplink: string;
  readonly switchId: string;
  readonly switchdev: boolean;
  readonly numa: number | null;
  readonly vfs: readonly FixtureVf[];
}

/** A vDPA device that is not on a VF (simulator or plain function). */
export interface FixtureDevice {
  readonly pci: string | null;
  readonly vdpa: string;
  readonly driver: Driver | null;
  readonly virtio: string | null;
  readonly netdev: string | null;
  readonly vhost: string | null;
}

export interface Fixture {
  readonly root: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly pfs: readonly FixturePf[];
  readonly vfs: readonly FixtureVf[];
  readonly simulator: FixtureDevice | null;
  readonly plainFunction: FixtureDevice | null;
  /** The vhost char devices' major number. */
  readonly vhostMajor: number;
  vf(pci: string): FixtureVf;
  /** The ports `devlink -j port show` would list for this tree (switchdev PFs only). */
  devlinkPorts(): DevlinkPort[];
  /** Unbind a vDPA device from its driver (its virtio or vhost device goes away). */
  unbindVdpa(name: string): void;
  /** Bind a vDPA device to a driver, unbinding first; new virtioM / vhost-vdpa-K numbers. */
  bindVdpa(name: string, driver: Driver): void;
  /** Bind to the other driver (virtio ↔ vhost; an unbound device goes to virtio). */
  rebindVdpa(name: string): void;
  /** `vdpa dev del`. */
  removeVdpa(name: string): void;
  /** `vdpa dev add` on a PCI function; returns the new device's name. */
  addVdpa(pci: string, driver: Driver | null, name?: string): string;
  /** Raise sriov_numvfs by `count` and create the VFs (with representors in switchdev mode). */
  addVfs(pf: string, count: number, spec?: FixtureVfSpec): FixtureVf[];
  /** Write a netdev's operstate (a representor's or an uplink's). */
  setOperState(netdev: string, state: 'up' | 'down' | 'unknown' | 'lowerlayerdown'): void;
  cleanup(): void;
}

const VHOST_MAJOR = 237;
const SWITCH_ID = 'e8ebd30300a1b2c3';
const PF_BUS = 0x65;

interface VdpaModel {
  readonly name: string;
  readonly dir: string;
  readonly pci: string | null;
  /** Where virtio_vdpa creates virtioM: the PCI function, or the vDPA device itself. */
  readonly dmaDir: string;
  readonly netdev: string | null;
  driver: Driver | null;
  virtio: number | null;
  vhost: number | null;
}

interface VfModel {
  readonly pci: string;
  readonly pf: PfModel;
  readonly index: number;
  readonly dir: string;
  readonly netdev: string | undefined;
  readonly representor: string | null;
  readonly vendorNetdev: string | null;
  readonly vdpa: string[];
}

interface PfModel {
  readonly pci: string;
  readonly pfnum: number;
  readonly dir: string;
  readonly base: string;
  readonly uplink: string;
  readonly switchdev: boolean;
  readonly numa: number;
  readonly totalVfs: number;
  readonly firstVfRid: number;
  readonly spec: FixturePfSpec;
  readonly vfs: VfModel[];
}

/**
 * tmpfs when there is one: in memory like sysfs, and a 254-VF tree builds there in a fraction of
 * the time it takes on a journaling disk filesystem.
 */
function defaultTmpDir(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

function pciAddress(rid: number): string {
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `0000:${hex(rid >> 8, 2)}:${hex((rid >> 3) & 0x1f, 2)}.${rid & 7}`;
}

class FixtureTree implements Fixture {
  readonly root: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly vhostMajor = VHOST_MAJOR;
  private readonly pfModels: PfModel[] = [];
  private readonly vdpaModels = new Map<string, VdpaModel>();
  private readonly netdevDirs = new Map<string, string>();
  private sim: VdpaModel | null = null;
  private plain: VdpaModel | null = null;
  private nextVdpa = 0;
  private nextVirtio = 0;
  private nextVhost = 0;
  private nextIfindex = 10;
  private pendingNodes: string[] = [];

  constructor(spec: FixtureSpec) {
    this.root = mkdtempSync(join(spec.tmpDir ?? defaultTmpDir(), 'vdpa-fixture-'));
    this.sysfsRoot = join(this.root, 'sys');
    this.devRoot = join(this.root, 'dev');
    try {
      this.build(spec);
    } catch (err) {
      this.cleanup();
      throw err;
    }
  }

  // ---- low-level writers ----

  private path(...parts: string[]): string {
    return join(this.sysfsRoot, ...parts);
  }

  private attr(dir: string, name: string, value: string | number): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), `${value}\n`);
  }

  private link(at: string, target: string): void {
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(relative(dirname(at), target), at);
  }

  private unlink(at: string): void {
    rmSync(at, { force: true });
  }

  private driverDir(bus: string, driver: string): string {
    const dir = this.path('bus', bus, 'drivers', driver);
    mkdirSync(dir, { recursive: true });
    this.attr(dir, 'bind', '');
    this.attr(dir, 'unbind', '');
    return dir;
  }

  /** `driver` link in the device, and the driver's link back to it. */
  private bindDriver(bus: string, driver: string, deviceDir: string): void {
    const drv = this.driverDir(bus, driver);
    this.link(join(deviceDir, 'driver'), drv);
    this.link(join(drv, basename(deviceDir)), deviceDir);
  }

  private unbindDriver(deviceDir: string): void {
    const driverLink = join(deviceDir, 'driver');
    let target: string;
    try {
      target = resolve(deviceDir, readlinkSync(driverLink));
    } catch {
      return;
    }
    this.unlink(join(target, basename(deviceDir)));
    unlinkSync(driverLink);
  }

  private netdev(parentDir: string, name: string, extra: Record<string, string> = {}): void {
    const dir = join(parentDir, 'net', name);
    const ifindex = this.nextIfindex++;
    const mac = `02:00:00:00:${((ifindex >> 8) & 0xff).toString(16).padStart(2, '0')}:${(ifindex & 0xff).toString(16).padStart(2, '0')}`;
    const attrs = { ifindex: String(ifindex), address: mac, mtu: '1500', operstate: 'up', carrier: '1', type: '1', ...extra };
    for (const [k, v] of Object.entries(attrs)) this.attr(dir, k, v);
    this.link(join(dir, 'subsystem'), this.path('class', 'net'));
    this.link(this.path('class', 'net', name), dir);
    this.netdevDirs.set(name, dir);
  }

  private removeNetdev(name: string): void {
    const dir = this.netdevDirs.get(name);
    if (!dir) return;
    rmSync(dir, { recursive: true, force: true });
    this.unlink(this.path('class', 'net', name));
    this.netdevDirs.delete(name);
  }

  private pciDevice(dir: string, ids: { vendor: number; device: number; cls: number; numa: number; driver: string }): void {
    const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
    const up = (n: number, w: number) => hex(n, w).toUpperCase();
    this.attr(dir, 'vendor', `0x${hex(ids.vendor, 4)}`);
    this.attr(dir, 'device', `0x${hex(ids.device, 4)}`);
    this.attr(dir, 'subsystem_vendor', `0x${hex(ids.vendor, 4)}`);
    this.attr(dir, 'subsystem_device', '0x0023');
    this.attr(dir, 'class', `0x${hex(ids.cls, 6)}`);
    this.attr(dir, 'numa_node', ids.numa);
    this.attr(dir, 'driver_override', '(null)');
    const [base, sub, prog] = [ids.cls >> 16, (ids.cls >> 8) & 0xff, ids.cls & 0xff].map((n) => up(n, 2));
    // What pci_uevent() prints, after the driver core's DRIVER= line.
    this.attr(
      dir,
      'uevent',
      [
        `DRIVER=${ids.driver}`,
        `PCI_CLASS=${up(ids.cls, 4)}`,
        `PCI_ID=${up(ids.vendor, 4)}:${up(ids.device, 4)}`,
        `PCI_SUBSYS_ID=${up(ids.vendor, 4)}:0023`,
        `PCI_SLOT_NAME=${basename(dir)}`,
        `MODALIAS=pci:v0000${up(ids.vendor, 4)}d0000${up(ids.device, 4)}sv0000${up(ids.vendor, 4)}sd00000023bc${base}sc${sub}i${prog}`,
      ].join('\n'),
    );
    this.link(join(dir, 'subsystem'), this.path('bus', 'pci'));
    this.link(this.path('bus', 'pci', 'devices', basename(dir)), dir);
    this.bindDriver('pci', ids.driver, dir);
  }

  /** Character device nodes are made in one process at the end of each change. */
  private flushNodes(): void {
    if (!this.pendingNodes.length) return;
    mkdirSync(this.devRoot, { recursive: true });
    execFileSync('sh', ['-ec', this.pendingNodes.join('\n')]);
    this.pendingNodes = [];
  }

  // ---- vDPA devices ----

  private createVdpa(parentDir: string | null, pci: string | null, name: string, netdev: string | null): VdpaModel {
    const dir = parentDir ? join(parentDir, name) : this.path('devices', name);
    this.attr(dir, 'driver_override', '(null)');
    this.link(join(dir, 'subsystem'), this.path('bus', 'vdpa'));
    this.link(this.path('bus', 'vdpa', 'devices', name), dir);
    const model: VdpaModel = { name, dir, pci, dmaDir: parentDir ?? dir, netdev, driver: null, virtio: null, vhost: null };
    this.vdpaModels.set(name, model);
    return model;
  }

  private newVdpaName(): string {
    for (;;) {
      const name = `vdpa${this.nextVdpa++}`;
      if (!this.vdpaModels.has(name)) return name;
    }
  }

  private bind(m: VdpaModel, driver: Driver): void {
    this.bindDriver('vdpa', driver === 'virtio' ? 'virtio_vdpa' : 'vhost_vdpa', m.dir);
    m.driver = driver;
    if (driver === 'virtio') {
      const n = this.nextVirtio++;
      const dir = join(m.dmaDir, `virtio${n}`);
      this.attr(dir, 'device', '0x0001');
      this.attr(dir, 'vendor', '0x1af4');
      this.attr(dir, 'status', '0x0000000f');
      this.link(join(dir, 'subsystem'), this.path('bus', 'virtio'));
      this.link(this.path('bus', 'virtio', 'devices', `virtio${n}`), dir);
      this.bindDriver('virtio', 'virtio_net', dir);
      this.netdev(dir, m.netdev ?? `eth${n}`);
      m.virtio = n;
    } else {
      const n = this.nextVhost++;
      const dir = join(m.dir, `vhost-vdpa-${n}`);
      this.attr(dir, 'dev', `${VHOST_MAJOR}:${n}`);
      this.link(join(dir, 'subsystem'), this.path('class', 'vhost-vdpa'));
      this.link(this.path('class', 'vhost-vdpa', `vhost-vdpa-${n}`), dir);
      this.pendingNodes.push(`mknod '${join(this.devRoot, `vhost-vdpa-${n}`)}' c ${VHOST_MAJOR} ${n}`);
      m.vhost = n;
    }
  }

  private unbind(m: VdpaModel): void {
    if (m.virtio !== null) {
      const dir = join(m.dmaDir, `virtio${m.virtio}`);
      for (const [name, ndDir] of this.netdevDirs) if (ndDir.startsWith(`${dir}/`)) this.removeNetdev(name);
      this.unbindDriver(dir);
      rmSync(dir, { recursive: true, force: true });
      this.unlink(this.path('bus', 'virtio', 'devices', `virtio${m.virtio}`));
    }
    if (m.vhost !== null) {
      rmSync(join(m.dir, `vhost-vdpa-${m.vhost}`), { recursive: true, force: true });
      this.unlink(this.path('class', 'vhost-vdpa', `vhost-vdpa-${m.vhost}`));
      this.unlink(join(this.devRoot, `vhost-vdpa-${m.vhost}`));
    }
    this.unbindDriver(m.dir);
    m.driver = null;
    m.virtio = null;
    m.vhost = null;
  }

  private model(name: string): VdpaModel {
    const m = this.vdpaModels.get(name);
    if (!m) throw new Error(`fixture: no vDPA device ${name}`);
    return m;
  }

  // ---- PCI functions ----

  private addVf(pf: PfModel, spec: FixtureVfSpec): VfModel {
    const index = pf.vfs.length;
    if (index >= pf.totalVfs) throw new Error(`fixture: PF ${pf.pci} has sriov_totalvfs ${pf.totalVfs}`);
    const pci = pciAddress(pf.firstVfRid + index);
    const dir = join(dirname(pf.dir), pci);
    this.pciDevice(dir, { vendor: 0x15b3, device: pf.spec.vfDevice ?? 0x101e, cls: 0x020000, numa: pf.numa, driver: 'mlx5_core' });
    this.link(join(dir, 'physfn'), pf.dir);
    this.link(join(pf.dir, `virtfn${index}`), dir);
    const vendorNetdev = spec.vendorNetdev === true ? `${pf.base}v${index}` : spec.vendorNetdev || null;
    if (vendorNetdev) this.netdev(dir, vendorNetdev);
    const representor = pf.switchdev ? (spec.representor ?? `${pf.base}_${index}`) : null;
    if (representor) {
      this.netdev(pf.dir, representor, { phys_port_name: `pf${pf.pfnum}vf${index}`, phys_switch_id: SWITCH_ID });
    }
    const vf: VfModel = { pci, pf, index, dir, netdev: spec.netdev, representor, vendorNetdev, vdpa: [] };
    pf.vfs.push(vf);
    this.attr(pf.dir, 'sriov_numvfs', pf.vfs.length);
    const type = spec.vdpa ?? pf.spec.vdpa ?? 'virtio';
    if (type !== 'none') {
      const first = this.createVdpa(dir, pci, spec.vdpaName ?? this.newVdpaName(), spec.netdev ?? null);
      vf.vdpa.push(first.name);
      if (type === 'virtio' || type === 'two-vdpa') this.bind(first, 'virtio');
      if (type === 'vhost') this.bind(first, 'vhost');
      if (type === 'two-vdpa') {
        const second = this.createVdpa(dir, pci, this.newVdpaName(), null);
        vf.vdpa.push(second.name);
        this.bind(second, 'vhost');
      }
    }
    return vf;
  }

  private build(spec: FixtureSpec): void {
    for (const dir of ['bus/pci/devices', 'bus/vdpa/devices', 'bus/virtio/devices', 'class/net', 'class/vhost-vdpa']) {
      mkdirSync(this.path(dir), { recursive: true });
    }
    mkdirSync(this.devRoot, { recursive: true });
    const rootPort = this.path('devices', 'pci0000:64', '0000:64:00.0');
    this.pciDevice(rootPort, { vendor: 0x8086, device: 0x347a, cls: 0x060400, numa: 0, driver: 'pcieport' });

    // The first VF sits at routing-ID offset 2 from PF 0 (as on a dual-port ConnectX), then VFs of each PF in turn.
    let nextRid = (PF_BUS << 8) + Math.max(2, spec.pfs.length);
    spec.pfs.forEach((pfSpec, p) => {
      const specs = typeof pfSpec.vfs === 'number' ? Array.from({ length: pfSpec.vfs }, () => ({})) : pfSpec.vfs;
      const totalVfs = pfSpec.totalVfs ?? Math.max(specs.length, 8);
      const pci = pciAddress((PF_BUS << 8) + p);
      const base = `enp${PF_BUS}s0f${p}`;
      const pf: PfModel = {
        pci,
        pfnum: p,
        dir: join(rootPort, pci),
        base,
        uplink: pfSpec.uplink ?? `${base}np${p}`,
        switchdev: pfSpec.switchdev ?? true,
        numa: pfSpec.numa ?? 0,
        totalVfs,
        firstVfRid: nextRid,
        spec: pfSpec,
        vfs: [],
      };
      nextRid += totalVfs;
      this.pfModels.push(pf);
      this.pciDevice(pf.dir, { vendor: 0x15b3, device: pfSpec.device ?? 0x101d, cls: 0x020000, numa: pf.numa, driver: 'mlx5_core' });
      this.attr(pf.dir, 'sriov_totalvfs', totalVfs);
      this.attr(pf.dir, 'sriov_numvfs', 0);
      // Legacy mode: the kernel has a port name for the uplink but no switch id.
      this.netdev(pf.dir, pf.uplink, pf.switchdev ? { phys_port_name: `p${p}`, phys_switch_id: SWITCH_ID } : { phys_port_name: `p${p}` });
      for (const vfSpec of specs) this.addVf(pf, vfSpec);
    });

    if (spec.plainFunction) {
      const dir = this.path('devices', 'pci0000:00', '0000:00:05.0');
      this.pciDevice(dir, { vendor: 0x1af4, device: 0x1041, cls: 0x020000, numa: -1, driver: 'vp_vdpa' });
      const type = spec.plainFunction.vdpa ?? 'virtio';
      if (type !== 'none') {
        this.plain = this.createVdpa(dir, '0000:00:05.0', this.newVdpaName(), spec.plainFunction.netdev ?? null);
        if (type === 'virtio' || type === 'vhost') this.bind(this.plain, type);
      }
    }
    if (spec.simulator) {
      this.attr(this.path('devices', 'vdpasim_net'), 'uevent', '');
      this.sim = this.createVdpa(null, null, this.newVdpaName(), spec.simulator.netdev ?? null);
      const type = spec.simulator.vdpa ?? 'virtio';
      if (type !== 'unbound') this.bind(this.sim, type);
    }
    this.flushNodes();
  }

  // ---- facts ----

  private vfFacts(vf: VfModel): FixtureVf {
    const first = vf.vdpa.length ? this.vdpaModels.get(vf.vdpa[0]!) : undefined;
    const d = first ? this.deviceFacts(first) : null;
    return {
      pci: vf.pci,
      pf: vf.pf.pci,
      index: vf.index,
      numa: vf.pf.numa < 0 ? null : vf.pf.numa,
      vdpa: [...vf.vdpa],
      driver: d?.driver ?? null,
      virtio: d?.virtio ?? null,
      netdev: d?.netdev ?? null,
      representor: vf.representor,
      vhost: d?.vhost ?? null,
      vendorNetdev: vf.vendorNetdev,
    };
  }

  private deviceFacts(m: VdpaModel): FixtureDevice {
    return {
      pci: m.pci,
      vdpa: m.name,
      driver: m.driver,
      virtio: m.virtio === null ? null : `virtio${m.virtio}`,
      netdev: m.virtio === null ? null : (m.netdev ?? `eth${m.virtio}`),
      vhost: m.vhost === null ? null : join(this.devRoot, `vhost-vdpa-${m.vhost}`),
    };
  }

  get pfs(): FixturePf[] {
    return this.pfModels.map((pf) => ({
      pci: pf.pci,
      pfnum: pf.pfnum,
      uplink: pf.uplink,
      switchId: SWITCH_ID,
      switchdev: pf.switchdev,
      numa: pf.numa < 0 ? null : pf.numa,
      vfs: pf.vfs.map((vf) => this.vfFacts(vf)),
    }));
  }

  get vfs(): FixtureVf[] {
    return this.pfModels.flatMap((pf) => pf.vfs.map((vf) => this.vfFacts(vf)));
  }

  get simulator(): FixtureDevice | null {
    return this.sim && this.deviceFacts(this.sim);
  }

  get plainFunction(): FixtureDevice | null {
    return this.plain && this.deviceFacts(this.plain);
  }

  vf(pci: string): FixtureVf {
    for (const pf of this.pfModels) for (const vf of pf.vfs) if (vf.pci === pci) return this.vfFacts(vf);
    throw new Error(`fixture: no VF ${pci}`);
  }

  devlinkPorts(): DevlinkPort[] {
    const ports: DevlinkPort[] = [];
    for (const pf of this.pfModels) {
      if (!pf.switchdev) continue;
      const device = `pci/${pf.pci}`;
      const base = { device, controller: null, external: false };
      ports.push({ ...base, port: `${device}/65535`, flavour: 'physical', netdev: pf.uplink, pfnum: null, vfnum: null });
      for (const vf of pf.vfs) {
        ports.push({ ...base, port: `${device}/${vf.index + 1}`, flavour: 'pcivf', netdev: vf.representor, pfnum: pf.pfnum, vfnum: vf.index, controller: 0 });
      }
    }
    return ports;
  }

  // ---- mutators ----

  unbindVdpa(name: string): void {
    this.unbind(this.model(name));
  }

  bindVdpa(name: string, driver: Driver): void {
    const m = this.model(name);
    this.unbind(m);
    this.bind(m, driver);
    this.flushNodes();
  }

  rebindVdpa(name: string): void {
    this.bindVdpa(name, this.model(name).driver === 'virtio' ? 'vhost' : 'virtio');
  }

  removeVdpa(name: string): void {
    const m = this.model(name);
    this.unbind(m);
    rmSync(m.dir, { recursive: true, force: true });
    this.unlink(this.path('bus', 'vdpa', 'devices', name));
    this.vdpaModels.delete(name);
    for (const pf of this.pfModels) for (const vf of pf.vfs) if (vf.vdpa.includes(name)) vf.vdpa.splice(vf.vdpa.indexOf(name), 1);
  }

  addVdpa(pci: string, driver: Driver | null, name?: string): string {
    const vf = this.pfModels.flatMap((pf) => pf.vfs).find((v) => v.pci === pci);
    const dir = vf?.dir ?? (this.plain?.pci === pci ? this.plain.dmaDir : null);
    if (!dir) throw new Error(`fixture: no PCI function ${pci} to add a vDPA device to`);
    const m = this.createVdpa(dir, pci, name ?? this.newVdpaName(), vf?.vdpa.length ? null : (vf?.netdev ?? null));
    vf?.vdpa.push(m.name);
    if (driver) this.bind(m, driver);
    this.flushNodes();
    return m.name;
  }

  addVfs(pfPci: string, count: number, spec: FixtureVfSpec = {}): FixtureVf[] {
    const pf = this.pfModels.find((p) => p.pci === pfPci);
    if (!pf) throw new Error(`fixture: no PF ${pfPci}`);
    const added = Array.from({ length: count }, () => this.addVf(pf, spec));
    this.flushNodes();
    return added.map((vf) => this.vfFacts(vf));
  }

  setOperState(netdev: string, state: 'up' | 'down' | 'unknown' | 'lowerlayerdown'): void {
    const dir = this.netdevDirs.get(netdev);
    if (!dir) throw new Error(`fixture: no netdev ${netdev}`);
    this.attr(dir, 'operstate', state);
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function buildFixture(spec: FixtureSpec): Fixture {
  return new FixtureTree(spec);
}

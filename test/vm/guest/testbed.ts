/**
 * Guest-side provisioning of real kernel objects for the testbed suites: what an operator does to
 * a vDPA node (docs/host-layout.md, "The operator workflow"), done by hand with sysfs, vdpa,
 * devlink and OVS. Each reader here goes to the kernel directly, so the suites can hold the
 * project's code against it. Everything refuses to run outside the testbed guest: it rebinds
 * drivers.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

if (process.env.VDPA_TESTBED !== '1') {
  throw new Error('the testbed suites change kernel state: run them in the guest through hack/vm/run.sh');
}

/** Runs a tool; throws with its stderr on failure. */
export function sh(file: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

const write = (path: string, value: string): void => writeFileSync(path, value);
const attr = (path: string): string => readFileSync(path, 'utf8').trim();
const linkBase = (path: string): string | null => (existsSync(path) ? basename(readlinkSync(path)) : null);

// ---- PCI functions that qemu provides (virtio-net-pci on one hub) --------------------------------

/** The virtio-net PCI functions (vendor 1af4, network class), sorted by address. */
export function virtioNetFunctions(): string[] {
  const dir = '/sys/bus/pci/devices';
  return readdirSync(dir)
    .filter((bdf) => attr(join(dir, bdf, 'vendor')) === '0x1af4' && attr(join(dir, bdf, 'class')).startsWith('0x02'))
    .sort();
}

export const pciDriver = (bdf: string): string | null => linkBase(`/sys/bus/pci/devices/${bdf}/driver`);

function rebindPci(bdf: string, driver: string): void {
  const dev = `/sys/bus/pci/devices/${bdf}`;
  if (pciDriver(bdf) === driver) return;
  if (existsSync(`${dev}/driver`)) write(`${dev}/driver/unbind`, bdf);
  write(`${dev}/driver_override`, driver);
  write(`/sys/bus/pci/drivers/${driver}/bind`, bdf);
}

/** Hands a virtio-net function to vp_vdpa; returns its management device (`pci/<bdf>`). */
export function toVpVdpa(bdf: string): string {
  rebindPci(bdf, 'vp-vdpa');
  return `pci/${bdf}`;
}

/** Gives a function back to virtio-pci (its vDPA devices must be gone). */
export function toVirtioPci(bdf: string): void {
  rebindPci(bdf, 'virtio-pci');
}

/** The MAC qemu gave a function's virtio-net device (hack/vm/run.sh: 52:54:00:12:34:0<slot>). */
export function qemuMac(bdf: string): string {
  return `52:54:00:12:34:${bdf.slice(8, 10)}`;
}

// ---- vDPA devices ----------------------------------------------------------------------------------

export type VdpaBusDriver = 'virtio_vdpa' | 'vhost_vdpa';

/**
 * `vdpa dev add`; a management device that refuses the mac attribute (vp_vdpa: "Some provided
 * attributes are not supported") gets the device without it. Returns whether the MAC was taken.
 */
export function addVdpa(name: string, mgmtdev: string, mac?: string): boolean {
  if (mac) {
    try {
      sh('vdpa', ['dev', 'add', 'mgmtdev', mgmtdev, 'name', name, 'mac', mac]);
      return true;
    } catch (err) {
      if (!/not supported/i.test(String(err))) throw err;
    }
  }
  sh('vdpa', ['dev', 'add', 'mgmtdev', mgmtdev, 'name', name]);
  return false;
}

export function delVdpa(name: string): void {
  if (existsSync(`/sys/bus/vdpa/devices/${name}`)) sh('vdpa', ['dev', 'del', name]);
}

export const vdpaDriver = (name: string): string | null => linkBase(`/sys/bus/vdpa/devices/${name}/driver`);

export function unbindVdpa(name: string): void {
  if (vdpaDriver(name) !== null) write(`/sys/bus/vdpa/devices/${name}/driver/unbind`, name);
}

/** Rebinds a vDPA device the way the operator does: unbind, driver_override, bind. */
export function bindVdpa(name: string, driver: VdpaBusDriver): void {
  if (vdpaDriver(name) === driver) return;
  unbindVdpa(name);
  write(`/sys/bus/vdpa/devices/${name}/driver_override`, driver);
  write(`/sys/bus/vdpa/drivers/${driver}/bind`, name);
}

/** The vDPA device's directory under /sys/devices. */
export const vdpaDir = (name: string): string => realpathSync(`/sys/bus/vdpa/devices/${name}`);

/**
 * The virtio device virtio_vdpa made for a vDPA device, found from the virtio bus: the one whose
 * directory is under the vDPA device or, for a PCI parent, next to it.
 */
export function virtioOf(name: string): { device: string; dir: string; netdev: string | null } | null {
  const dir = vdpaDir(name);
  const parents = new Set([dir]);
  if (/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(basename(dirname(dir)))) parents.add(dirname(dir));
  for (const device of readdirSync('/sys/bus/virtio/devices')) {
    const real = realpathSync(`/sys/bus/virtio/devices/${device}`);
    if (!parents.has(dirname(real))) continue;
    const net = join(real, 'net');
    const names = existsSync(net) ? readdirSync(net) : [];
    return { device, dir: real, netdev: names.length === 1 ? names[0]! : null };
  }
  return null;
}

/** The vhost-vdpa-N class device of a vDPA device and its /dev node's major:minor. */
export function vhostOf(name: string): { name: string; dev: string; path: string; rdev: string | null } | null {
  const dir = vdpaDir(name);
  const entry = readdirSync(dir).find((e) => /^vhost-vdpa-\d+$/.test(e));
  if (!entry) return null;
  const path = `/dev/${entry}`;
  const st = statSync(path, { throwIfNoEntry: false });
  const rdev = st?.isCharacterDevice()
    ? `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | (Math.floor(st.rdev / 4096) & 0xfff00)}`
    : null;
  return { name: entry, dev: attr(join(dir, entry, 'dev')), path, rdev };
}

export interface Link {
  ifname: string;
  address: string;
  mtu: number;
  operstate: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** `ip -j addr show <dev>` in the host netns or a named netns; null when there is no such link. */
export function link(dev: string, netns?: string): Link | null {
  try {
    const out = sh('ip', [...(netns ? ['-n', netns] : []), '-j', 'addr', 'show', 'dev', dev]);
    return (JSON.parse(out) as Link[])[0] ?? null;
  } catch {
    return null;
  }
}

// ---- netdevsim switchdev representors -------------------------------------------------------------

export interface Eswitch {
  /** devlink handle: `netdevsim/netdevsim<id>` */
  handle: string;
  /** VF index → representor netdev, as devlink says. */
  representors: Map<number, string>;
  remove(): void;
}

/** A netdevsim device with `vfs` VFs, its eswitch in switchdev mode. */
export function netdevsim(id: number, vfs: number): Eswitch {
  write('/sys/bus/netdevsim/new_device', `${id} 1`);
  const handle = `netdevsim/netdevsim${id}`;
  write(`/sys/bus/netdevsim/devices/netdevsim${id}/sriov_numvfs`, String(vfs));
  sh('devlink', ['dev', 'eswitch', 'set', handle, 'mode', 'switchdev']);
  const ports = JSON.parse(sh('devlink', ['-j', 'port', 'show'])) as {
    port: Record<string, { flavour: string; vfnum?: number; netdev?: string }>;
  };
  const representors = new Map<number, string>();
  for (const [port, p] of Object.entries(ports.port)) {
    if (port.startsWith(`${handle}/`) && p.flavour === 'pcivf' && p.vfnum !== undefined && p.netdev) {
      representors.set(p.vfnum, p.netdev);
    }
  }
  return { handle, representors, remove: () => write('/sys/bus/netdevsim/del_device', String(id)) };
}

// ---- Open vSwitch on the kernel datapath ----------------------------------------------------------

export const OVS_RUNDIR = '/run/openvswitch';

/**
 * Starts ovsdb-server and ovs-vswitchd on a fresh database under /run (the host's own conf.db is
 * visible through the guest's root and must not be used), at the default socket path so that the
 * CNI and ovs-vsctl find it without options. Then hw-offload and br-int on the kernel datapath.
 */
export function startOvs(): { stop(): void } {
  mkdirSync(OVS_RUNDIR, { recursive: true });
  const db = join(OVS_RUNDIR, 'conf.db');
  sh('ovsdb-tool', ['create', db, '/usr/share/openvswitch/vswitch.ovsschema']);
  sh('ovsdb-server', [
    db,
    `--remote=punix:${OVS_RUNDIR}/db.sock`,
    `--pidfile=${OVS_RUNDIR}/ovsdb-server.pid`,
    `--log-file=${OVS_RUNDIR}/ovsdb-server.log`,
    '--detach',
  ]);
  sh('ovs-vsctl', ['--no-wait', 'init']);
  sh('ovs-vsctl', ['--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:hw-offload=true']);
  sh('ovs-vswitchd', [`--pidfile=${OVS_RUNDIR}/ovs-vswitchd.pid`, `--log-file=${OVS_RUNDIR}/ovs-vswitchd.log`, '--detach']);
  sh('ovs-vsctl', ['--may-exist', 'add-br', 'br-int', '--', 'set', 'Bridge', 'br-int', 'datapath_type=system', 'fail-mode=secure']);
  return {
    stop() {
      for (const daemon of ['ovs-vswitchd', 'ovsdb-server']) {
        const pidfile = join(OVS_RUNDIR, `${daemon}.pid`);
        if (existsSync(pidfile)) sh('ovs-appctl', ['-t', daemon, 'exit']);
      }
    },
  };
}

export const ovsVsctl = (...args: string[]): string => sh('ovs-vsctl', args).trim();

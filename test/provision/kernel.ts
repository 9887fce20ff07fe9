/**
 * A fixture tree with a "kernel" behind it: a Machine whose sysfs writes land in the tree (and
 * fail where the kernel's would: no such driver, no such device) and whose tools (vdpa, devlink,
 * ethtool, modprobe) answer from it. Every write and tool run is RECORDED in order, so tests check
 * exactly what provisioning did, and the tree reacts as the kernel does where the fixture can:
 * sriov_numvfs creates VFs, PCI/vDPA bind and unbind move driver links, vdpa dev add/del create and
 * remove devices (and `vdpa dev config show` reports what they were made with), devlink keeps the
 * eswitch mode and mlx5's flow_steering_mode (refusing smfs in switchdev mode, as mlx5 does).
 * Failures can be injected to test partial runs.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Machine } from '../../host/machine.js';
import type { ProcResult } from '../../host/proc.js';
import { buildFixture, type Fixture, type FixtureSpec } from '../support/fixture.js';

export interface FakeKernelOptions {
  /** Attributes each management device refuses with "Some provided attributes are not supported". */
  readonly refuse?: readonly ('max_vqp' | 'mac' | 'mtu')[];
  /** hw-tc-offload of netdevs at the start (default off for every netdev ethtool is asked about). */
  readonly hwTc?: Readonly<Record<string, boolean>>;
  /** Modules present at the start. */
  readonly modules?: readonly string[];
  /** PFs (devlink handle) with mlx5's flow_steering_mode parameter, and its value at the start. */
  readonly steering?: Readonly<Record<string, string>>;
}

/** A device's net config as `vdpa dev config show` reports it. */
export interface FakeVdpaConfig {
  mac: string;
  mtu: number;
  max_vq_pairs: number;
}

const ok = (stdout = ''): ProcResult => ({ code: 0, signal: null, stdout, stderr: '' });
const err = (stderr: string, code = 1): ProcResult => ({ code, signal: null, stdout: '', stderr });

export class FakeKernel implements Machine {
  readonly fx: Fixture;
  readonly sysfsRoot: string;
  /** `write <path under sysfs> <value>` and `run <tool> <args…>`, in order. */
  readonly ops: string[] = [];
  readonly eswitch = new Map<string, 'legacy' | 'switchdev'>();
  readonly hwTc = new Map<string, boolean>();
  readonly modules: Set<string>;
  readonly steering = new Map<string, string>();
  /** Devices made through `vdpa dev add` (the fixture's own report nothing); tests change them to make drift. */
  readonly vdpaConfig = new Map<string, FakeVdpaConfig>();
  private readonly refuse: Set<string>;
  private readonly defaultDriver = new Map<string, string>();
  /** Makes the matching op fail (once); tests of partial runs. */
  failNext: { match: RegExp; message: string } | null = null;

  constructor(spec: FixtureSpec, opts: FakeKernelOptions = {}) {
    this.fx = buildFixture(spec);
    this.sysfsRoot = this.fx.sysfsRoot;
    this.refuse = new Set(opts.refuse ?? []);
    this.modules = new Set(opts.modules ?? []);
    for (const [k, v] of Object.entries(opts.hwTc ?? {})) this.hwTc.set(k, v);
    for (const [k, v] of Object.entries(opts.steering ?? {})) this.steering.set(k, v);
    for (const m of this.modules) this.load(m);
    const pfs = this.fx.pfs;
    let firstVfRid = 0x6500 + Math.max(2, pfs.length);
    pfs.forEach((pf, p) => {
      this.eswitch.set(`pci/${pf.pci}`, pf.switchdev ? 'switchdev' : 'legacy');
      // The fixture's VF numbering, told the way the kernel tells it (sriov_offset/stride).
      const dir = this.pciDir(pf.pci);
      const total = Number(readFileSync(join(dir, 'sriov_totalvfs'), 'utf8'));
      writeFileSync(join(dir, 'sriov_offset'), `${firstVfRid - (0x6500 + p)}\n`);
      writeFileSync(join(dir, 'sriov_stride'), '1\n');
      writeFileSync(join(dir, 'sriov_vf_device'), `${(spec.pfs[p]!.vfDevice ?? 0x101e).toString(16).padStart(4, '0')}\n`);
      firstVfRid += total;
    });
    for (const vf of this.fx.vfs) this.defaultDriver.set(vf.pci, 'mlx5_core');
  }

  private path(...parts: string[]): string {
    return join(this.sysfsRoot, ...parts);
  }

  pciDir(bdf: string): string {
    return resolve(this.path('bus', 'pci', 'devices'), readlinkSync(this.path('bus', 'pci', 'devices', bdf)));
  }

  /** What the kernel does before any driver binds it: the plain function on virtio-pci. */
  plainFunctionOnVirtioPci(): void {
    const bdf = this.fx.plainFunction!.pci!;
    this.setPciDriver(bdf, 'virtio-pci');
    this.defaultDriver.set(bdf, 'virtio-pci');
  }

  pciDriverOf(bdf: string): string | null {
    const link = join(this.pciDir(bdf), 'driver');
    return existsSync(link) ? basename(readlinkSync(link)) : null;
  }

  /** Moves the driver link (and the uevent DRIVER= line discovery reads). */
  private setPciDriver(bdf: string, driver: string | null): void {
    const dir = this.pciDir(bdf);
    const link = join(dir, 'driver');
    const old = this.pciDriverOf(bdf);
    if (old) {
      rmSync(this.path('bus', 'pci', 'drivers', old, bdf), { force: true });
      unlinkSync(link);
    }
    if (driver) {
      const drv = this.driverDir('pci', driver);
      symlinkSync(relative(dir, drv), link);
      symlinkSync(relative(drv, dir), join(drv, bdf));
    }
    const uevent = readFileSync(join(dir, 'uevent'), 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('DRIVER='));
    writeFileSync(join(dir, 'uevent'), [...(driver ? [`DRIVER=${driver}`] : []), ...uevent].join('\n'));
  }

  private driverDir(bus: string, driver: string): string {
    const dir = this.path('bus', bus, 'drivers', driver);
    mkdirSync(dir, { recursive: true });
    for (const f of ['bind', 'unbind']) if (!existsSync(join(dir, f))) writeFileSync(join(dir, f), '');
    return dir;
  }

  private injected(op: string): string | null {
    if (!this.failNext || !this.failNext.match.test(op)) return null;
    const message = this.failNext.message;
    this.failNext = null;
    return message;
  }

  write(path: string, value: string): void {
    const rel = relative(this.sysfsRoot, path);
    const op = `write ${rel}${value.trim() ? ` ${value.trim()}` : ''}`;
    this.ops.push(op);
    const failure = this.injected(op);
    if (failure) throw new Error(`write "${value}" to ${path}: ${failure}`);
    if (!existsSync(dirname(path))) throw new Error(`write "${value}" to ${path}: ENOENT`);
    writeFileSync(path, value);
    this.react(rel.split('/'), value.trim());
  }

  private react(p: string[], value: string): void {
    const [a, bus, kind, name, attr, sub] = p;
    if (a !== 'bus') return;
    if (bus === 'pci' && kind === 'devices' && attr === 'sriov_numvfs') {
      const have = this.fx.pfs.find((pf) => pf.pci === name)!.vfs.length;
      if (Number(value) > have) {
        for (const vf of this.fx.addVfs(name!, Number(value) - have, { vdpa: 'none' })) this.defaultDriver.set(vf.pci, 'mlx5_core');
      }
      // The fixture cannot remove VFs; the attribute says the count, which is what is read.
      return;
    }
    if (bus === 'pci' && kind === 'devices' && attr === 'driver' && sub === 'unbind') return this.setPciDriver(name!, null);
    if (bus === 'pci' && kind === 'drivers' && attr === 'bind') return this.setPciDriver(value, name!);
    if (bus === 'pci' && kind === 'drivers_probe') {
      const override = readFileSync(join(this.pciDir(value), 'driver_override'), 'utf8').trim();
      return this.setPciDriver(value, override && override !== '(null)' ? override : (this.defaultDriver.get(value) ?? null));
    }
    if (bus === 'vdpa' && kind === 'devices' && attr === 'driver' && sub === 'unbind') return this.fx.unbindVdpa(name!);
    if (bus === 'vdpa' && kind === 'drivers' && attr === 'bind') return this.fx.bindVdpa(value, name === 'vhost_vdpa' ? 'vhost' : 'virtio');
  }

  async run(tool: string, args: readonly string[]): Promise<ProcResult> {
    const op = `run ${tool} ${args.join(' ')}`;
    this.ops.push(op);
    const failure = this.injected(op);
    if (failure) return err(failure);
    const cmd = args.join(' ');
    if (tool === 'devlink') return this.devlink(args[0] === '-j' ? args.slice(1) : args);
    if (tool === 'ethtool') {
      if (args[0] === '-k') return ok(`Features for ${args[1]}:\nrx-checksumming: on\nhw-tc-offload: ${this.hwTc.get(args[1]!) ? 'on' : 'off'}\n`);
      this.hwTc.set(args[1]!, args[3] === 'on');
      return ok();
    }
    // Stands in for a restart command (ovs.restartCommand).
    if (tool === 'true') return ok();
    if (tool === 'modprobe') {
      for (const m of args.slice(1)) this.load(m);
      return ok();
    }
    if (tool === 'vdpa' && cmd === '-j mgmtdev show') return ok(JSON.stringify({ mgmtdev: Object.fromEntries(this.mgmtDevs().map((d) => [d, { supported_classes: ['net'] }])) }));
    if (tool === 'vdpa' && cmd === '-j dev config show') return ok(JSON.stringify({ config: Object.fromEntries([...this.vdpaConfig].map(([n, c]) => [n, { ...c, link: 'up' }])) }));
    if (tool === 'vdpa' && args[0] === 'dev' && args[1] === 'add') {
      const opt = (k: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : null);
      const mgmt = opt('mgmtdev')!;
      if (!this.mgmtDevs().includes(mgmt)) return err(`kernel answers: No such device`);
      if ([...this.refuse].some((a) => args.includes(a))) return err('Some provided attributes are not supported\nkernel answers: Operation not supported');
      const name = opt('name')!;
      this.fx.addVdpa(mgmt.slice(4), 'virtio', name);
      // What a device gets without the attribute: a zero MAC, the Ethernet MTU, one queue pair.
      this.vdpaConfig.set(name, { mac: opt('mac') ?? '00:00:00:00:00:00', mtu: Number(opt('mtu') ?? 1500), max_vq_pairs: Number(opt('max_vqp') ?? 1) });
      return ok();
    }
    if (tool === 'vdpa' && args[0] === 'dev' && args[1] === 'del') {
      this.fx.removeVdpa(args[2]!);
      this.vdpaConfig.delete(args[2]!);
      return ok();
    }
    return err(`fake kernel: no answer for ${op}`);
  }

  /** `devlink dev eswitch show|set <handle> [mode M]`, `devlink dev param show|set <handle> name N [value V cmode runtime]`. */
  private devlink(a: readonly string[]): ProcResult {
    const [, what, verb, handle] = a;
    if (what === 'eswitch') {
      const mode = this.eswitch.get(handle!);
      if (mode === undefined) return err('kernel answers: Operation not supported');
      if (verb === 'show') return ok(JSON.stringify({ dev: { [handle!]: { mode, 'inline-mode': 'none', 'encap-mode': 'basic' } } }));
      this.eswitch.set(handle!, a[5] as 'legacy' | 'switchdev');
      return ok();
    }
    const value = this.steering.get(handle!);
    if (what !== 'param' || a[5] !== 'flow_steering_mode' || value === undefined) return err('kernel answers: Invalid argument');
    if (verb === 'show') return ok(JSON.stringify({ param: { [handle!]: [{ name: a[5], type: 'driver-specific', values: [{ cmode: 'runtime', value }] }] } }));
    if (a[7] === 'smfs' && this.eswitch.get(handle!) === 'switchdev') return err('Error: mlx5_core: Software managed steering is not supported when eswitch offloads enabled.\nkernel answers: Operation not supported');
    this.steering.set(handle!, a[7]!);
    return ok();
  }

  /** A module is a /sys/module directory, and the drivers it registers. */
  private load(m: string): void {
    this.modules.add(m);
    mkdirSync(this.path('module', m), { recursive: true });
    if (m === 'vp_vdpa') this.driverDir('pci', 'vp-vdpa');
    if (m === 'virtio_vdpa' || m === 'vhost_vdpa') this.driverDir('vdpa', m);
  }

  /** VFs on mlx5_core (with mlx5_vdpa loaded) and functions on vp-vdpa are management devices. */
  mgmtDevs(): string[] {
    const out: string[] = [];
    if (this.modules.has('mlx5_vdpa')) for (const vf of this.fx.vfs) if (this.pciDriverOf(vf.pci) === 'mlx5_core') out.push(`pci/${vf.pci}`);
    const plain = this.fx.plainFunction?.pci;
    if (plain && this.pciDriverOf(plain) === 'vp-vdpa') out.push(`pci/${plain}`);
    return out;
  }

  /** The ops since the last call, to check one run at a time. */
  take(): string[] {
    return this.ops.splice(0);
  }

  cleanup(): void {
    this.fx.cleanup();
  }
}

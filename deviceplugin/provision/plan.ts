/**
 * The planner: node facts + policy → the ordered steps that make the node match the policy, or
 * every reason the policy cannot be applied (then nothing is changed). Pure: no reads, no writes.
 * A node that matches the policy plans nothing, which is what makes provisioning idempotent and
 * lets a run that stopped half-way be finished by the next one: each intermediate state (VFs
 * without vDPA devices, a device on the wrong driver, an unbound VF) is one the planner completes.
 *
 * Order: modules; boot files (the udev rules are in place before VFs appear); deletions of our
 * own vDPA devices that must go; per PF the flow steering mode (mlx5 takes it in legacy mode
 * only), VF count, eswitch mode, VF drivers and TC offload; PCI functions onto their vDPA
 * driver; vDPA devices, made again where their mac, mtu or max_vqp drifted; OVS.
 */
import type { VdpaDevice, VdpaDriver } from '../../host/snapshot.js';
import { moduleName } from '../../host/modules.js';
import { vfAddress } from '../../host/sriov.js';
import { bootFiles, bootPaths, bootPolicyText, type BootFile, type BootLayout } from './boot.js';
import type { NodeFacts, DeviceFacts } from './facts.js';
import { FLOW_STEERING_PARAM, OWNED_VDPA_KEY, OVS_HW_OFFLOAD } from './facts.js';
import type { FileState } from '../../host/files.js';
import type { VdpaSpec } from '../../host/vdpa.js';
import type { ProvisionJournalEntry } from './journal.js';
import { macAt, VDPA_NAME_PREFIX, type Policy, type PfPolicy, type VdpaAttrs, type VfGroup } from './policy.js';
import { describeAction, type Action, type ProvisionJournalEffect, type PlanStep } from './steps.js';
import { SOFTWARE_MGMTDEVS, supportedList, vdpaVendor, type VdpaVendor } from './vendors.js';

export interface Plan {
  readonly steps: readonly PlanStep[];
  /** Things the operator should know that are not steps (a restart to do, work left to a later round). */
  readonly notes: readonly string[];
  /** State-file keys whose undo is already in place (teardown): dropped without a step. */
  readonly settled: readonly string[];
}

export class PlanError extends Error {
  override name = 'PlanError';
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
  }
}

const BUS_MODULES: Readonly<Record<VdpaDriver, readonly string[]>> = { virtio: ['virtio_vdpa', 'virtio_net'], vhost: ['vhost_vdpa'] };
const FILE_KEY = 'file:';

/** `--install-boot`: keep the boot unit and rules (install), or only say when the recorded policy is stale. */
export interface BootRequest {
  readonly layout: BootLayout;
  readonly install: boolean;
}

const step = (at: string, action: Action, journal: ProvisionJournalEffect): PlanStep => ({ at, action, description: describeAction(action), journal });
const record = (key: string, undo: Action): ProvisionJournalEffect => ({ record: key, undo });

/** Accumulates steps by phase, problems and notes while the policy is walked once. */
class Planner {
  readonly problems: string[] = [];
  readonly notes: string[] = [];
  readonly modules = new Set<string>();
  readonly deletes: PlanStep[] = [];
  readonly devices: PlanStep[] = [];
  readonly functions: PlanStep[] = [];
  readonly vdpa: PlanStep[] = [];
  readonly ovs: PlanStep[] = [];
  /** vDPA device names the policy wants. */
  readonly wanted = new Set<string>();

  constructor(readonly facts: NodeFacts) {}

  /** A change to something a pod holds is refused, naming the DeviceInfo file that says so. */
  refuseIfAllocated(at: string, pcis: Iterable<string>, change: string): boolean {
    const busy = [...pcis].flatMap((p) => {
      const file = this.facts.allocated.get(p);
      return file ? [`${p} (${file})`] : [];
    });
    if (busy.length) this.problems.push(`${at}: in use by a pool with allocated devices: ${busy.join(', ')}; ${change} would take them away from their pods`);
    return busy.length > 0;
  }

  deleteOwned(at: string, name: string): void {
    if (this.deletes.some((s) => s.action.kind === 'delete-vdpa' && s.action.name === name)) return;
    this.deletes.push(step(at, { kind: 'delete-vdpa', name }, { forget: OWNED_VDPA_KEY + name }));
  }

  /**
   * What differs between a device's config and the spec, leaving out what its management device
   * refused when we made it; "" when nothing does (or the kernel reports nothing).
   */
  private drift(spec: VdpaSpec): string {
    const have = this.facts.vdpaConfig.get(spec.name);
    if (!have) return '';
    const refused = this.facts.refused.get(spec.name) ?? [];
    const differs = (attr: string, want: string | number | null, now: string | number | null) =>
      want !== null && now !== null && want !== now && !refused.includes(attr) ? [`${attr} ${now}, not ${want}`] : [];
    return [...differs('mac', spec.mac, have.mac), ...differs('mtu', spec.mtu, have.mtu), ...differs('max_vqp', spec.maxVqp, have.maxVqp)].join(', ');
  }

  /** One vDPA device as wanted: created, made again where it drifted, or moved to the right bus driver. */
  ensureVdpa(at: string, name: string, mgmtDev: string, type: VdpaDriver, attrs: VdpaAttrs, offset: number, existing: VdpaDevice | undefined, parent: string | null): void {
    this.wanted.add(name);
    for (const m of ['vdpa', ...BUS_MODULES[type]]) this.modules.add(m);
    const spec = { name, mgmtDev, mac: attrs.macBase === null ? null : macAt(attrs.macBase, offset), mtu: attrs.mtu, maxVqp: attrs.maxVqp };
    const made = record(OWNED_VDPA_KEY + name, { kind: 'delete-vdpa', name });
    if (existing) {
      if (existing.mgmtDev !== mgmtDev) {
        this.problems.push(`${at}: vDPA device ${name} exists on ${existing.mgmtDev}, not on ${mgmtDev}`);
        return;
      }
      const drift = this.drift(spec);
      if (drift && !this.facts.owned.has(name)) {
        this.problems.push(`${at}: vDPA device ${name} has ${drift}; provision did not make it, so it does not remake it: delete it and the next run makes it as the policy says`);
        return;
      }
      if (drift && !this.facts.refused.has(name)) {
        this.notes.push(`${at}: vDPA device ${name} has ${drift}; it was made before provision recorded what its management device refuses, so it is left as it is (delete it and the next run makes it again)`);
      } else if (drift) {
        if (parent && this.refuseIfAllocated(at, [parent], `recreating ${name} (it has ${drift})`)) return;
        this.vdpa.push(step(at, { kind: 'recreate-vdpa', spec, driver: type, drift }, made));
        return;
      }
      if (existing.driver === type) return;
      if (parent && this.refuseIfAllocated(at, [parent], `binding ${name} to ${type}_vdpa`)) return;
      this.vdpa.push(step(at, { kind: 'bind-vdpa', name, driver: type }, null));
      return;
    }
    this.vdpa.push(step(at, { kind: 'create-vdpa', spec, driver: type }, made));
  }

  /** vDPA devices on a PCI function that are not the one we want there: ours go, others stop the plan. */
  foreignVdpa(at: string, pci: string, keep: string | null): boolean {
    const others = (this.facts.snapshot.functions.get(pci)?.vdpaDevices ?? []).filter((n) => n !== keep);
    const foreign = others.filter((n) => !this.facts.owned.has(n));
    if (foreign.length) {
      this.problems.push(`${at}: ${pci} carries vDPA device ${foreign.join(', ')}, which this policy did not create (one vDPA device per function); delete it first`);
      return true;
    }
    for (const n of others) this.deleteOwned(at, n);
    return false;
  }

  pf(p: PfPolicy): void {
    const r = this.facts.resolved.get(p.at);
    if (!r || 'missing' in r) {
      this.problems.push(`${p.at}: ${r && 'missing' in r ? r.missing : 'not resolved'}`);
      return;
    }
    const d = this.facts.devices.get(r.handle)!;
    const before = this.problems.length;
    const vendor = this.checkPf(p, d);
    if (this.problems.length > before) return;

    const numVfsNow = d.sriov?.numVfs ?? 0;
    const numVfsChange = p.numVfs !== null && p.numVfs !== numVfsNow;
    const eswitchChange = p.eSwitchMode !== null && p.eSwitchMode !== d.eswitch;
    const target = p.numVfs ?? numVfsNow;
    for (const g of p.vdpa) {
      const missing = g.vfs.filter((vf) => vf >= target);
      if (missing.length) this.problems.push(`${g.at}.vfs: ${d.handle} has ${target} VFs; VF ${missing.join(', ')} does not exist (set ${p.at}.numVfs)`);
    }
    const steering = this.steering(p, d);
    if (this.problems.length > before) return;

    if (numVfsChange || eswitchChange) {
      const change = numVfsChange ? `changing numVfs from ${numVfsNow} to ${p.numVfs}` : `switching the eswitch to ${p.eSwitchMode}`;
      if (this.refuseIfAllocated(p.at, [...(d.pci ? [d.pci] : []), ...d.vfs.values()], change)) return;
      for (const vf of d.vfs.values()) if (this.foreignVdpa(p.at, vf, null)) return;
    }
    if (steering) this.devices.push(steering);
    if (numVfsChange) {
      this.devices.push(step(p.at, { kind: 'set-numvfs', device: d.handle, to: p.numVfs! }, record(`numvfs:${d.handle}`, { kind: 'set-numvfs', device: d.handle, to: numVfsNow })));
    }
    if (eswitchChange) {
      this.devices.push(step(p.at, { kind: 'set-eswitch', device: d.handle, mode: p.eSwitchMode! }, record(`eswitch:${d.handle}`, { kind: 'set-eswitch', device: d.handle, mode: d.eswitch! })));
    }
    this.hwTc(p, d, eswitchChange);
    if (!numVfsChange) this.rebindStrayVfs(p, d);
    if (vendor) for (const g of p.vdpa) this.vfGroup(g, d, vendor, numVfsChange);
  }

  /**
   * flow_steering_mode: as the policy says, else smfs for switchdev where the device has the
   * parameter (mlx5: faster rule insertion for offloaded flows). mlx5 takes it in legacy mode
   * only, so the step goes before the VFs and the switch to switchdev.
   */
  private steering(p: PfPolicy, d: DeviceFacts): PlanStep | null {
    const want = p.flowSteeringMode ?? (p.eSwitchMode === 'switchdev' && d.steering !== null ? 'smfs' : null);
    if (want === null || want === d.steering) return null;
    if (d.steering === null) {
      this.problems.push(`${p.at}.flowSteeringMode: devlink shows no ${FLOW_STEERING_PARAM} parameter on ${d.handle}`);
      return null;
    }
    if (d.eswitch === 'switchdev') {
      const why = `${d.handle} has ${FLOW_STEERING_PARAM} ${d.steering}, which changes in legacy mode only`;
      if (p.flowSteeringMode !== null) this.problems.push(`${p.at}.flowSteeringMode: ${why}; switch the eswitch to legacy first`);
      else this.notes.push(`${p.at}: ${why}; left as it is`);
      return null;
    }
    const action: Action = { kind: 'set-devlink-param', device: d.handle, name: FLOW_STEERING_PARAM, value: want };
    return step(p.at, action, record(`steering:${d.handle}`, { ...action, value: d.steering }));
  }

  /** The PF-level refusals; returns the vDPA vendor when the entry asks for vDPA devices. */
  private checkPf(p: PfPolicy, d: DeviceFacts): VdpaVendor | null {
    if (p.numVfs !== null) {
      if (!d.sriov) this.problems.push(`${p.at}.numVfs: ${d.handle} has no SR-IOV (no sriov_numvfs in ${d.dir})`);
      else if (d.sriov.totalVfs !== null && p.numVfs > d.sriov.totalVfs) {
        this.problems.push(`${p.at}.numVfs: ${p.numVfs} is above sriov_totalvfs ${d.sriov.totalVfs} of ${d.handle}`);
      }
    }
    if (p.eSwitchMode !== null && d.eswitch === null) this.problems.push(`${p.at}.eSwitchMode: devlink shows no eswitch on ${d.handle}`);
    if (!p.vdpa.length) return null;
    if (d.pci === null) {
      this.problems.push(`${p.at}.vdpa: ${d.handle} is not a PCI device; its VFs cannot carry vDPA devices`);
      return null;
    }
    const f = this.facts.snapshot.functions.get(d.pci);
    const vendor = f ? vdpaVendor(f.vendor, f.device) : null;
    if (!vendor) {
      const what = f ? `${f.vendor}:${f.device}${f.driver ? `, driver ${f.driver}` : ''}` : 'unknown device';
      this.problems.push(`${p.at}.vdpa: ${d.pci} (${what}) is of a vendor without vDPA support; supported: ${supportedList()}`);
    }
    return vendor;
  }

  private hwTc(p: PfPolicy, d: DeviceFacts, eswitchChange: boolean): void {
    // On by default in switchdev: representors need it to offload VF traffic.
    const want = p.hwTcOffload ?? (p.eSwitchMode === 'switchdev' ? true : null);
    if (want === null) return;
    if (d.uplink === null) {
      if (eswitchChange) this.notes.push(`${p.at}: the uplink of ${d.handle} appears in switchdev mode; the next round sets its hw-tc-offload`);
      else this.problems.push(`${p.at}.hwTcOffload: ${d.handle} has no uplink netdev`);
      return;
    }
    const now = this.facts.hwTc.get(d.uplink);
    if (now === undefined || now === null) {
      this.problems.push(`${p.at}.hwTcOffload: ethtool shows no hw-tc-offload feature on ${d.uplink}`);
      return;
    }
    if (now === want) return;
    const netdev = d.uplink;
    this.devices.push(step(p.at, { kind: 'set-hw-tc-offload', netdev, on: want }, record(`hwtc:${netdev}`, { kind: 'set-hw-tc-offload', netdev, on: now })));
  }

  /** A VF left without a driver (a run stopped between unbind and bind) gets its own driver back. */
  private rebindStrayVfs(p: PfPolicy, d: DeviceFacts): void {
    const inGroups = new Set(p.vdpa.flatMap((g) => g.vfs));
    for (const [index, vf] of d.vfs) {
      if (!inGroups.has(index) && this.facts.snapshot.functions.get(vf)?.driver === null) {
        this.devices.push(step(p.at, { kind: 'bind-pci', pci: vf, driver: null }, null));
      }
    }
  }

  private vfGroup(g: VfGroup, d: DeviceFacts, vendor: VdpaVendor, newVfs: boolean): void {
    const at = g.at;
    for (const m of vendor.modules) this.modules.add(m);
    const unknown: number[] = [];
    for (const index of g.vfs) {
      const vf = newVfs ? (d.sriov?.offset != null && d.sriov.stride != null ? vfAddress(d.pci!, d.sriov.offset, d.sriov.stride, index) : null) : d.vfs.get(index)!;
      if (vf === null) {
        unknown.push(index);
        continue;
      }
      const fn = newVfs ? undefined : this.facts.snapshot.functions.get(vf);
      const name = `${VDPA_NAME_PREFIX}${vf}`;
      if (fn ? fn.driver !== vendor.pciDriver : vendor.rebind) {
        if (fn && this.refuseIfAllocated(at, [vf], `binding ${vf} to ${vendor.pciDriver}`)) continue;
        if (fn && this.foreignVdpa(at, vf, null)) continue;
        this.functions.push(step(at, { kind: 'bind-pci', pci: vf, driver: vendor.pciDriver }, fn ? record(`pci:${vf}`, { kind: 'bind-pci', pci: vf, driver: null }) : null));
      } else if (fn && this.foreignVdpa(at, vf, name)) continue;
      const existing = fn?.driver === vendor.pciDriver ? this.facts.snapshot.vdpa.get(name) : undefined;
      this.ensureVdpa(at, name, `pci/${vf}`, g.vdpaType, g, index, existing, vf);
    }
    if (unknown.length) {
      this.notes.push(`${at}: ${d.handle} has no sriov_offset/sriov_stride; vDPA devices for VF ${unknown.join(', ')} are planned once the VFs exist`);
    }
  }

  mgmtDev(md: Policy['mgmtDevs'][number]): void {
    for (const m of BUS_MODULES[md.vdpaType]) this.modules.add(m);
    if (!md.mgmtDev.startsWith('pci/')) {
      const module = SOFTWARE_MGMTDEVS[md.mgmtDev];
      if (module) this.modules.add(module);
      else if (!this.facts.mgmtDevs.has(md.mgmtDev)) {
        const known = [...this.facts.mgmtDevs].join(', ') || 'none';
        this.problems.push(`${md.at}.mgmtDev: no management device ${md.mgmtDev} (vdpa mgmtdev show lists: ${known})`);
        return;
      }
      for (let i = 0; i < md.count; i++) {
        const name = `${VDPA_NAME_PREFIX}${md.mgmtDev}:${i}`;
        this.ensureVdpa(md.at, name, md.mgmtDev, md.vdpaType, md, i, this.facts.snapshot.vdpa.get(name), null);
      }
      return;
    }
    const pci = md.mgmtDev.slice(4);
    const fn = this.facts.snapshot.functions.get(pci);
    if (!fn) {
      this.problems.push(`${md.at}.mgmtDev: no network PCI function ${pci}`);
      return;
    }
    if (fn.pf !== null) {
      this.problems.push(`${md.at}.mgmtDev: ${pci} is VF ${fn.vfIndex} of ${fn.pf}; give the PF under pfs with a vdpa range`);
      return;
    }
    const vendor = vdpaVendor(fn.vendor, fn.device);
    if (!vendor) {
      this.problems.push(`${md.at}.mgmtDev: ${pci} (${fn.vendor}:${fn.device}) is of a vendor without vDPA support; supported: ${supportedList()}`);
      return;
    }
    for (const m of vendor.modules) this.modules.add(m);
    const name = `${VDPA_NAME_PREFIX}${pci}`;
    if (fn.driver !== vendor.pciDriver) {
      if (this.refuseIfAllocated(md.at, [pci], `binding ${pci} to ${vendor.pciDriver}`) || this.foreignVdpa(md.at, pci, null)) return;
      this.functions.push(step(md.at, { kind: 'bind-pci', pci, driver: vendor.pciDriver }, record(`pci:${pci}`, { kind: 'bind-pci', pci, driver: null })));
      this.ensureVdpa(md.at, name, md.mgmtDev, md.vdpaType, md, 0, undefined, pci);
      return;
    }
    if (this.foreignVdpa(md.at, pci, name)) return;
    this.ensureVdpa(md.at, name, md.mgmtDev, md.vdpaType, md, 0, this.facts.snapshot.vdpa.get(name), pci);
  }

  ovsHwOffload(o: NonNullable<Policy['ovs']>): void {
    const st = this.facts.ovs.get(o.remote);
    if (!st || 'error' in st) {
      this.problems.push(`ovs.remote: ${st && 'error' in st ? st.error : `${o.remote} not read`}`);
      return;
    }
    const now = st.hwOffload;
    const want = o.hwOffload ? 'true' : now === 'true' ? 'false' : now;
    if (want === now) return;
    const undo: Action = { kind: 'set-ovs', remote: o.remote, key: OVS_HW_OFFLOAD, value: now, restart: o.restartCommand };
    this.ovs.push(step('ovs', { kind: 'set-ovs', remote: o.remote, key: OVS_HW_OFFLOAD, value: want, restart: o.restartCommand }, record(`ovs:${o.remote}:${OVS_HW_OFFLOAD}`, undo)));
    if (!o.restartCommand) this.notes.push('ovs: ovs-vswitchd reads hw-offload when it starts: restart it (or set ovs.restartCommand)');
  }

  /** The boot files as wanted (install), or a note when the recorded policy is not this one. */
  boot(policy: Policy, req: BootRequest): PlanStep[] {
    const paths = bootPaths(req.layout);
    const files = this.facts.files;
    if (!req.install) {
      const recorded = files.get(paths.policy);
      if (this.facts.recorded.has(FILE_KEY + paths.policy) && !(recorded?.kind === 'file' && recorded.text === bootPolicyText(policy))) {
        this.notes.push(`the boot unit replays another policy (${paths.policy}): run with --install-boot to record this one`);
      }
      return [];
    }
    if (req.layout.self === null) {
      this.problems.push('--install-boot: this is not the vdpa-device-plugin executable (a script run by node?), which the boot unit must run');
      return [];
    }
    if (!policy.pfs.length && !policy.mgmtDevs.length) {
      this.notes.push('--install-boot: the policy has no PF or management device to set up at boot (ovsdb-server keeps hw-offload itself)');
      return [];
    }
    const steps: PlanStep[] = [];
    const wanted = bootFiles(policy, this.facts, req.layout, req.layout.self);
    for (const f of wanted) {
      const now = files.get(f.path) ?? { kind: 'absent' };
      if (inShape(f, now, files)) continue;
      if (now.kind !== 'absent' && !this.facts.recorded.has(FILE_KEY + f.path)) {
        this.problems.push(`--install-boot: ${f.path} exists and provision did not write it: move it away (teardown would not know what to put back)`);
        continue;
      }
      const action: Action = 'text' in f ? { kind: 'write-file', path: f.path, text: f.text, mode: f.mode } : 'target' in f ? { kind: 'link-file', path: f.path, target: f.target } : { kind: 'copy-file', from: f.copyOf, to: f.path };
      steps.push(step('boot', action, record(FILE_KEY + f.path, { kind: 'remove-file', path: f.path })));
    }
    // One we wrote and no longer want (no MACs left for the NetworkManager snippet).
    for (const path of Object.values(paths)) {
      if (this.facts.recorded.has(FILE_KEY + path) && !wanted.some((f) => f.path === path)) steps.push(step('boot', { kind: 'remove-file', path }, { forget: FILE_KEY + path }));
    }
    return steps;
  }
}

/** Whether a file already holds what it should; a copy matches its source by size and mtime (to the second). */
function inShape(f: BootFile, now: FileState, files: NodeFacts['files']): boolean {
  if ('text' in f) return now.kind === 'file' && now.text === f.text && now.mode === f.mode;
  if ('target' in f) return now.kind === 'link' && now.target === f.target;
  const src = files.get(f.copyOf);
  return now.kind === 'file' && src?.kind === 'file' && now.size === src.size && Math.trunc(now.mtimeMs / 1000) === Math.trunc(src.mtimeMs / 1000);
}

export function planProvision(policy: Policy, facts: NodeFacts, boot: BootRequest | null = null): Plan {
  const p = new Planner(facts);
  const seen = new Map<string, string>();
  for (const pf of policy.pfs) {
    const r = facts.resolved.get(pf.at);
    if (r && 'handle' in r) {
      const other = seen.get(r.handle);
      if (other) {
        p.problems.push(`${pf.at}: names ${r.handle}, as ${other} does`);
        continue;
      }
      seen.set(r.handle, pf.at);
    }
    p.pf(pf);
  }
  for (const md of policy.mgmtDevs) p.mgmtDev(md);
  if (policy.ovs) p.ovsHwOffload(policy.ovs);
  // Our devices that the policy no longer wants.
  for (const name of facts.owned) {
    const dev = facts.snapshot.vdpa.get(name);
    if (p.wanted.has(name) || !dev) continue;
    if (!p.refuseIfAllocated('policy', dev.pciAddress ? [dev.pciAddress] : [], `deleting ${name}`)) p.deleteOwned('policy', name);
  }
  const files = boot ? p.boot(policy, boot) : [];
  if (p.problems.length) throw new PlanError(p.problems);
  const missing = [...p.modules].filter((m) => !facts.modules.has(moduleName(m))).sort();
  const load = missing.length ? [step('', { kind: 'load-modules', modules: missing }, null)] : [];
  return { steps: [...load, ...files, ...p.deletes, ...p.devices, ...p.functions, ...p.vdpa, ...p.ovs], notes: p.notes, settled: [] };
}

/** Whether an undo action's effect is already there (or its object is gone). */
function inPlace(a: Action, f: NodeFacts): boolean {
  switch (a.kind) {
    case 'delete-vdpa':
      return !f.snapshot.vdpa.has(a.name);
    case 'set-numvfs': {
      const d = f.devices.get(a.device);
      return !d?.sriov || d.sriov.numVfs === a.to;
    }
    case 'set-eswitch': {
      const d = f.devices.get(a.device);
      return !d || d.eswitch === null || d.eswitch === a.mode;
    }
    case 'bind-pci': {
      const fn = f.snapshot.functions.get(a.pci);
      if (!fn) return true;
      return a.driver === null ? fn.driver !== null && (f.overrides.get(a.pci) ?? null) === null : fn.driver === a.driver;
    }
    case 'set-hw-tc-offload': {
      const now = f.hwTc.get(a.netdev);
      return now === undefined || now === null || now === a.on;
    }
    case 'set-ovs': {
      const st = f.ovs.get(a.remote);
      return st !== undefined && 'hwOffload' in st && st.hwOffload === a.value;
    }
    case 'set-devlink-param': {
      const d = f.devices.get(a.device);
      return a.name !== FLOW_STEERING_PARAM || !d || d.steering === null || d.steering === a.value;
    }
    case 'remove-file':
      return (f.files.get(a.path)?.kind ?? 'absent') === 'absent';
    default:
      return true;
  }
}

/** The PCI functions an undo takes away from whoever holds them. */
function touches(a: Action, f: NodeFacts): string[] {
  switch (a.kind) {
    case 'delete-vdpa': {
      const pci = f.snapshot.vdpa.get(a.name)?.pciAddress;
      return pci ? [pci] : [];
    }
    case 'set-numvfs':
    case 'set-eswitch': {
      const d = f.devices.get(a.device);
      return d ? [...(d.pci ? [d.pci] : []), ...d.vfs.values()] : [];
    }
    case 'bind-pci':
      return [a.pci];
    default:
      return [];
  }
}

/** Teardown: the recorded undos, newest first, that are not in place yet; refused while pods hold devices. */
export function planTeardown(journal: readonly ProvisionJournalEntry[], facts: NodeFacts): Plan {
  const p = new Planner(facts);
  const steps: PlanStep[] = [];
  const settled: string[] = [];
  for (const e of [...journal].reverse()) {
    if (inPlace(e.undo, facts)) {
      settled.push(e.key);
      continue;
    }
    if (e.undo.kind === 'set-ovs') {
      const st = facts.ovs.get(e.undo.remote);
      if (st && 'error' in st) p.problems.push(`state ${e.key}: ${st.error}`);
    }
    p.refuseIfAllocated(`state ${e.key}`, touches(e.undo, facts), describeAction(e.undo));
    steps.push(step('teardown', e.undo, { forget: e.key }));
  }
  if (p.problems.length) throw new PlanError(p.problems);
  return { steps, notes: [], settled };
}

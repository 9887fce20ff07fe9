/**
 * The planner: node facts + policy → the ordered steps that make the node match the policy, or
 * every reason the policy cannot be applied (then nothing is changed). Pure: no reads, no writes.
 * A node that matches the policy plans nothing, which is what makes provisioning idempotent and
 * lets a run that stopped half-way be finished by the next one: each intermediate state (VFs
 * without vDPA devices, a device on the wrong driver, an unbound VF) is one the planner completes.
 *
 * Order: modules; deletions of our own vDPA devices that must go; per PF the VF count, eswitch
 * mode, VF drivers and TC offload; PCI functions onto their vDPA driver; vDPA devices; OVS.
 */
import type { VdpaDevice, VdpaDriver } from '../../host/snapshot.js';
import { moduleName } from '../../host/modules.js';
import { vfAddress } from '../../host/sriov.js';
import type { NodeFacts, DeviceFacts } from './facts.js';
import { OWNED_VDPA_KEY, OVS_HW_OFFLOAD } from './facts.js';
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

  /** One vDPA device as wanted: created, or moved to the right bus driver. */
  ensureVdpa(at: string, name: string, mgmtDev: string, type: VdpaDriver, attrs: VdpaAttrs, offset: number, existing: VdpaDevice | undefined, parent: string | null): void {
    this.wanted.add(name);
    for (const m of ['vdpa', ...BUS_MODULES[type]]) this.modules.add(m);
    if (existing) {
      if (existing.mgmtDev !== mgmtDev) {
        this.problems.push(`${at}: vDPA device ${name} exists on ${existing.mgmtDev}, not on ${mgmtDev}`);
        return;
      }
      if (existing.driver === type) return;
      if (parent && this.refuseIfAllocated(at, [parent], `binding ${name} to ${type}_vdpa`)) return;
      this.vdpa.push(step(at, { kind: 'bind-vdpa', name, driver: type }, null));
      return;
    }
    const spec = { name, mgmtDev, mac: attrs.macBase === null ? null : macAt(attrs.macBase, offset), mtu: attrs.mtu, maxVqp: attrs.maxVqp };
    this.vdpa.push(step(at, { kind: 'create-vdpa', spec, driver: type }, record(OWNED_VDPA_KEY + name, { kind: 'delete-vdpa', name })));
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
    p.vdpa.forEach((g, i) => {
      const missing = g.vfs.filter((vf) => vf >= target);
      if (missing.length) this.problems.push(`${p.at}.vdpa[${i}].vfs: ${d.handle} has ${target} VFs; VF ${missing.join(', ')} does not exist (set ${p.at}.numVfs)`);
    });
    if (this.problems.length > before) return;

    if (numVfsChange || eswitchChange) {
      const change = numVfsChange ? `changing numVfs from ${numVfsNow} to ${p.numVfs}` : `switching the eswitch to ${p.eSwitchMode}`;
      if (this.refuseIfAllocated(p.at, [...(d.pci ? [d.pci] : []), ...d.vfs.values()], change)) return;
      for (const vf of d.vfs.values()) if (this.foreignVdpa(p.at, vf, null)) return;
    }
    if (numVfsChange) {
      this.devices.push(step(p.at, { kind: 'set-numvfs', device: d.handle, to: p.numVfs! }, record(`numvfs:${d.handle}`, { kind: 'set-numvfs', device: d.handle, to: numVfsNow })));
    }
    if (eswitchChange) {
      this.devices.push(step(p.at, { kind: 'set-eswitch', device: d.handle, mode: p.eSwitchMode! }, record(`eswitch:${d.handle}`, { kind: 'set-eswitch', device: d.handle, mode: d.eswitch! })));
    }
    this.hwTc(p, d, eswitchChange);
    if (!numVfsChange) this.rebindStrayVfs(p, d);
    if (vendor) p.vdpa.forEach((g, i) => this.vfGroup(`${p.at}.vdpa[${i}]`, g, d, vendor, numVfsChange));
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
    if (p.hwTcOffload === null) return;
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
    if (now === p.hwTcOffload) return;
    const netdev = d.uplink;
    this.devices.push(step(p.at, { kind: 'set-hw-tc-offload', netdev, on: p.hwTcOffload }, record(`hwtc:${netdev}`, { kind: 'set-hw-tc-offload', netdev, on: now })));
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

  private vfGroup(at: string, g: VfGroup, d: DeviceFacts, vendor: VdpaVendor, newVfs: boolean): void {
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
}

export function planProvision(policy: Policy, facts: NodeFacts): Plan {
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
  if (p.problems.length) throw new PlanError(p.problems);
  const missing = [...p.modules].filter((m) => !facts.modules.has(moduleName(m))).sort();
  const load = missing.length ? [step('', { kind: 'load-modules', modules: missing }, null)] : [];
  return { steps: [...load, ...p.deletes, ...p.devices, ...p.functions, ...p.vdpa, ...p.ovs], notes: p.notes, settled: [] };
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

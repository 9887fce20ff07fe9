/**
 * Everything the planner needs to know about the node, read in one go before planning: the
 * discovery snapshot plus what discovery does not cover (VF counts, eswitch modes, TC offload,
 * modules, management devices, allocations, OVS). The planner is a pure function of this value.
 */
import { discover } from '../../host/discover.js';
import { devlinkParam, eswitchMode, hwTcOffload, type EswitchMode } from '../../host/eswitch.js';
import { fileState, type FileState } from '../../host/files.js';
import type { Machine } from '../../host/machine.js';
import { presentModules } from '../../host/modules.js';
import { otherConfig } from '../../host/ovsconfig.js';
import { OvsdbClient } from '../../host/ovsdb.js';
import { DEFAULT_POD_RESOURCES_SOCKET } from '../../host/podresources.js';
import type { Snapshot } from '../../host/snapshot.js';
import { busDeviceDir, readSriov, type SriovState } from '../../host/sriov.js';
import { isUnreadable, readAttr, readNames } from '../../host/sysfs.js';
import { listMgmtDevs, readVdpaConfigs, type VdpaConfig } from '../../host/vdpa.js';
import type { ProvisionJournalEntry } from './journal.js';
import type { PfSelector, Policy } from './policy.js';
import { matchPfs } from './select.js';
import { SOFTWARE_MGMTDEVS } from './vendors.js';
import { heldByPods } from '../inuse.js';

export const OVS_HW_OFFLOAD = 'hw-offload';
export const FLOW_STEERING_PARAM = 'flow_steering_mode';
/** Every module a plan may load; facts say which of them are present. */
export const KNOWN_MODULES = ['vdpa', 'virtio_vdpa', 'vhost_vdpa', 'virtio_net', 'mlx5_vdpa', 'vp_vdpa', ...Object.values(SOFTWARE_MGMTDEVS)];

/** A device with an eswitch and/or SR-IOV: a PCI PF (`pci/<BDF>`) or a netdevsim device. */
export interface DeviceFacts {
  readonly handle: string;
  /** The PF's PCI address; null for non-PCI devices. */
  readonly pci: string | null;
  readonly dir: string;
  /** null when the device has no sriov_numvfs. */
  readonly sriov: SriovState | null;
  /** null when devlink knows no eswitch on it. */
  readonly eswitch: EswitchMode | null;
  /** devlink flow_steering_mode (mlx5); null when the device has no such parameter. */
  readonly steering: string | null;
  /** The uplink netdev (phys_port_name pN, else the device's only netdev); null when none. */
  readonly uplink: string | null;
  /** Existing VFs, index → PCI address (PCI PFs only). */
  readonly vfs: ReadonlyMap<number, string>;
}

export interface NodeFacts {
  readonly snapshot: Snapshot;
  /** Policy PF entry (`pfs[0]`) → its device handle, or why it names no device. */
  readonly resolved: ReadonlyMap<string, { readonly handle: string } | { readonly missing: string }>;
  readonly devices: ReadonlyMap<string, DeviceFacts>;
  /** PCI function → its driver_override, null when none is set. */
  readonly overrides: ReadonlyMap<string, string | null>;
  /** netdev → hw-tc-offload (null: ethtool does not list it). */
  readonly hwTc: ReadonlyMap<string, boolean | null>;
  readonly modules: ReadonlySet<string>;
  readonly mgmtDevs: ReadonlySet<string>;
  /** PCI function a pod holds → what says so: the containers the kubelet lists, or a DeviceInfo file. */
  readonly allocated: ReadonlyMap<string, string>;
  /** OVSDB remote → other_config:hw-offload (null: unset), or why it could not be read. */
  readonly ovs: ReadonlyMap<string, { readonly hwOffload: string | null } | { readonly error: string }>;
  /** Names of the vDPA devices the state file says we created. */
  readonly owned: ReadonlySet<string>;
  /** Of those, the attributes each one's management device refused (records older than drift checks have none). */
  readonly refused: ReadonlyMap<string, readonly string[]>;
  /** `vdpa dev config show`: each device's mac, mtu and max_vqp. */
  readonly vdpaConfig: ReadonlyMap<string, VdpaConfig>;
  /** The state file's keys. */
  readonly recorded: ReadonlySet<string>;
  /** The boot files and executables asked for (GatherOptions.files) and the files the state file may remove. */
  readonly files: ReadonlyMap<string, FileState>;
  /** Things that could not be read but did not stop planning. */
  readonly warnings: readonly string[];
}

export interface GatherOptions {
  readonly devRoot: string;
  readonly devinfoDir: string;
  /** modules.builtin of the running kernel. */
  readonly builtinList: string;
  /** Files whose state the plan needs (the boot files, the running executable). */
  readonly files?: readonly string[];
  /** The kubelet's pod resources API, asked which devices pods hold; default DEFAULT_POD_RESOURCES_SOCKET. */
  readonly podResourcesSocket?: string;
}

export const OWNED_VDPA_KEY = 'vdpa-device:';

/** One device per entry: a vendor selector that matches several is expanded by select.ts first. */
function resolvePf(snapshot: Snapshot, sel: PfSelector): { handle: string } | { missing: string } {
  const r = matchPfs(snapshot, sel);
  if ('missing' in r) return r;
  return r.handles.length === 1 ? { handle: r.handles[0]! } : { missing: `names ${r.handles.length} PFs (${r.handles.join(', ')})` };
}

/** The uplink: phys_port_name `pN`, or the device's only netdev (a legacy-mode PF). */
function uplinkOf(dir: string): string | null {
  const names = readNames(`${dir}/net`);
  if (isUnreadable(names)) return null;
  const port = names.find((n) => /^p\d+$/.test(String(readAttr(`${dir}/net/${n}/phys_port_name`))));
  return port ?? (names.length === 1 ? names[0]! : null);
}

async function deviceFacts(m: Machine, snapshot: Snapshot, handle: string): Promise<DeviceFacts> {
  const pci = handle.startsWith('pci/') ? handle.slice(4) : null;
  const dir = busDeviceDir(m.sysfsRoot, handle);
  const vfs = new Map<number, string>();
  for (const vf of pci ? (snapshot.functions.get(pci)?.vfs ?? []) : []) {
    const index = snapshot.functions.get(vf)?.vfIndex;
    if (index !== null && index !== undefined) vfs.set(index, vf);
  }
  return { handle, pci, dir, sriov: readSriov(dir), eswitch: await eswitchMode(m, handle), steering: await devlinkParam(m, handle, FLOW_STEERING_PARAM), uplink: uplinkOf(dir), vfs };
}

async function ovsHwOffload(remote: string): Promise<{ hwOffload: string | null } | { error: string }> {
  let client: OvsdbClient | null = null;
  try {
    client = await OvsdbClient.connect(remote, { connectTimeoutMs: 5000, requestTimeoutMs: 10_000 });
    return { hwOffload: await otherConfig(client, OVS_HW_OFFLOAD) };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    client?.close();
  }
}

export async function gatherFacts(m: Machine, opts: GatherOptions, policy: Policy | null, journal: readonly ProvisionJournalEntry[]): Promise<NodeFacts> {
  const warnings: string[] = [];
  const snapshot = discover({ sysfsRoot: m.sysfsRoot, devRoot: opts.devRoot });
  warnings.push(...snapshot.errors);

  const resolved = new Map(policy?.pfs.map((p) => [p.at, resolvePf(snapshot, p.select)] as const) ?? []);
  const handles = new Set<string>();
  for (const r of resolved.values()) if ('handle' in r) handles.add(r.handle);
  const netdevs = new Set<string>();
  const pcis = new Set(policy?.mgmtDevs.filter((d) => d.mgmtDev.startsWith('pci/')).map((d) => d.mgmtDev.slice(4)) ?? []);
  const remotes = new Set(policy?.ovs ? [policy.ovs.remote] : []);
  const paths = new Set(opts.files ?? []);
  for (const { undo } of journal) {
    if (undo.kind === 'set-numvfs' || undo.kind === 'set-eswitch' || undo.kind === 'set-devlink-param') handles.add(undo.device);
    else if (undo.kind === 'remove-file') paths.add(undo.path);
    else if (undo.kind === 'set-hw-tc-offload') netdevs.add(undo.netdev);
    else if (undo.kind === 'bind-pci') pcis.add(undo.pci);
    else if (undo.kind === 'set-ovs') remotes.add(undo.remote);
  }

  const devices = new Map<string, DeviceFacts>();
  for (const h of handles) devices.set(h, await deviceFacts(m, snapshot, h));
  for (const p of policy?.pfs ?? []) {
    const r = resolved.get(p.at);
    const uplink = r && 'handle' in r ? devices.get(r.handle)?.uplink : null;
    if ((p.hwTcOffload !== null || p.eSwitchMode === 'switchdev') && uplink) netdevs.add(uplink);
    for (const vf of r && 'handle' in r ? (devices.get(r.handle)?.vfs.values() ?? []) : []) pcis.add(vf);
  }
  const hwTc = new Map<string, boolean | null>();
  for (const n of netdevs) {
    try {
      hwTc.set(n, await hwTcOffload(m, n));
    } catch (err) {
      warnings.push((err as Error).message);
    }
  }
  const overrides = new Map<string, string | null>();
  for (const pci of pcis) {
    const v = readAttr(`${m.sysfsRoot}/bus/pci/devices/${pci}/driver_override`);
    overrides.set(pci, isUnreadable(v) || v === '(null)' || v === '' ? null : v);
  }
  const ovs = new Map<string, { hwOffload: string | null } | { error: string }>();
  for (const remote of remotes) ovs.set(remote, await ovsHwOffload(remote));

  return {
    snapshot,
    resolved,
    devices,
    overrides,
    hwTc,
    modules: presentModules(m.sysfsRoot, opts.builtinList, KNOWN_MODULES),
    mgmtDevs: new Set(await listMgmtDevs(m)),
    allocated: await heldByPods(opts.podResourcesSocket ?? DEFAULT_POD_RESOURCES_SOCKET, opts.devinfoDir, warnings),
    ovs,
    owned: new Set(journal.filter((e) => e.key.startsWith(OWNED_VDPA_KEY)).map((e) => e.key.slice(OWNED_VDPA_KEY.length))),
    refused: new Map(journal.flatMap((e) => (e.key.startsWith(OWNED_VDPA_KEY) && e.refused ? [[e.key.slice(OWNED_VDPA_KEY.length), e.refused] as const] : []))),
    vdpaConfig: await readVdpaConfigs(m),
    recorded: new Set(journal.map((e) => e.key)),
    // Text up to 1 MiB: our own files; the executables are told apart by size and mtime.
    files: new Map([...paths].map((p) => [p, fileState(p, 1 << 20)] as const)),
    warnings,
  };
}

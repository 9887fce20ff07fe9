/**
 * The provisioning policy: what a node should look like (VFs, eswitch mode, vDPA devices and
 * their bus driver, OVS hardware offload), parsed from `unknown` with errors that name the field.
 * A file holds one policy for every node (the top-level form) or named policies, each with a
 * node selector and a priority (select.ts says which apply to a node and how they merge). Shapes
 * follow the SR-IOV network operator's SriovNetworkNodePolicy where it has one (`numVfs`,
 * `eSwitchMode`, `vdpaType`, `nodeSelector`, `priority`, `vendor`/`deviceID`), so a policy reads familiar.
 */
import type { EswitchMode } from '../../host/eswitch.js';
import type { VdpaDriver } from '../../host/snapshot.js';
import { DEFAULT_OVSDB, ovsdbRemoteProblem } from '../../host/ovsdb.js';
import { PCI_ADDRESS } from '../../host/sysfs.js';

/** A PF as the policy names it; `devlink` reaches non-PCI eswitches (netdevsim). */
export type PfSelector =
  | { readonly pciAddress: string }
  | { readonly name: string }
  | { readonly devlink: string }
  /** Every PF with this PCI vendor ID (and device ID; null = any). */
  | { readonly vendor: string; readonly deviceID: string | null };

export const FLOW_STEERING_MODES = ['smfs', 'dmfs', 'hmfs'] as const;
export type FlowSteeringMode = (typeof FLOW_STEERING_MODES)[number];

/** Optional vDPA device attributes; a management device that refuses one gets the device without it. */
export interface VdpaAttrs {
  readonly maxVqp: number | null;
  readonly mtu: number | null;
  /** The first device's MAC; device i gets macBase + i (VF index for VFs). null = the driver's. */
  readonly macBase: string | null;
}

export interface VfGroup extends VdpaAttrs {
  /** `pfs[0].vdpa[1]`: where the group sits, for messages. */
  readonly at: string;
  /** VF indexes, ascending. */
  readonly vfs: readonly number[];
  readonly vdpaType: VdpaDriver;
}

export interface PfPolicy {
  /** `pfs[0]`: where the entry sits, for messages. */
  readonly at: string;
  readonly select: PfSelector;
  /** null = leave the VF count as it is. */
  readonly numVfs: number | null;
  /** null = leave the mode as it is. */
  readonly eSwitchMode: EswitchMode | null;
  /** `ethtool -K <uplink> hw-tc-offload` as written; null = unset (the planner turns it on in switchdev mode). */
  readonly hwTcOffload: boolean | null;
  /** devlink `flow_steering_mode` as written; null = unset (the planner picks smfs for switchdev where the device has it). */
  readonly flowSteeringMode: FlowSteeringMode | null;
  readonly vdpa: readonly VfGroup[];
}

/** vDPA devices on a management device that is not a VF: a whole PCI function (vp_vdpa), the simulator. */
export interface MgmtDevPolicy extends VdpaAttrs {
  readonly at: string;
  /** `pci/0000:00:06.0` or a bare name (`vdpasim_net`). */
  readonly mgmtDev: string;
  /** How many devices; PCI management devices carry exactly one. */
  readonly count: number;
  readonly vdpaType: VdpaDriver;
}

export interface OvsPolicy {
  readonly hwOffload: boolean;
  readonly remote: string;
  /** Run after changing hw-offload (ovs-vswitchd reads it at start); null = only say it is needed. */
  readonly restartCommand: readonly string[] | null;
}

export interface Policy {
  readonly pfs: readonly PfPolicy[];
  readonly mgmtDevs: readonly MgmtDevPolicy[];
  readonly ovs: OvsPolicy | null;
}

/** Which nodes a policy is for: all of the given conditions hold; none given = every node. */
export interface NodeSelector {
  readonly nodeName: string | null;
  readonly matchLabels: ReadonlyMap<string, string>;
}

export interface NodePolicy extends Policy {
  /** null for the file's top-level form. */
  readonly name: string | null;
  readonly nodeSelector: NodeSelector;
  /** 0 is the highest, 99 (the default) the lowest, as in the SR-IOV operator. */
  readonly priority: number;
}

export interface PolicyFile {
  readonly policies: readonly NodePolicy[];
}

export const DEFAULT_PRIORITY = 99;
export const EVERY_NODE: NodeSelector = { nodeName: null, matchLabels: new Map() };

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** The name every vDPA device we create carries (the SR-IOV operator's convention). */
export const VDPA_NAME_PREFIX = 'vdpa:';
/** A kernel cap that holds on every PF we know; sriov_totalvfs is the real limit. */
const MAX_VFS = 1024;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const NETDEV = /^[^\s/:]{1,15}$/;
const DEVLINK_HANDLE = /^[a-z0-9_-]+\/[^\s/]+$/;
const PCI_ID = /^[0-9a-f]{4}$/;
const POLICY_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Kubernetes' syntax for node names and label keys and values.
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
/** `pci/<VF address>`, or the bare name of a management device off the PCI bus (`vdpasim_net`). */
const MGMTDEV = new RegExp(`^(pci/${PCI_ADDRESS.source.slice(1, -1)}|[A-Za-z0-9_.-]+)$`);

type Obj = Readonly<Record<string, unknown>>;

function fail(at: string, message: string): never {
  throw new PolicyError(`${at}: ${message}`);
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? String(v);
  return 'an object';
}

/** `keys` null: any key (a map such as matchLabels). */
function object(v: unknown, at: string, keys: readonly string[] | null): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, `must be an object, got ${shown(v)}`);
  for (const key of Object.keys(v)) {
    if (keys && !keys.includes(key)) fail(`${at}.${key}`, `unknown key (known: ${keys.join(', ')})`);
  }
  return v as Obj;
}

function array(v: unknown, at: string): readonly unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(at, `must be a list, got ${shown(v)}`);
  return v;
}

function integer(v: unknown, at: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(at, `must be a whole number from ${min} to ${max}, got ${shown(v)}`);
  return v;
}

function oneOf<T extends string>(v: unknown, at: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(at, `must be ${values.map((x) => `"${x}"`).join(' or ')}, got ${shown(v)}`);
  return v as T;
}

function matching(v: unknown, at: string, re: RegExp, what: string): string {
  if (typeof v !== 'string' || !re.test(v)) fail(at, `must be ${what}, got ${shown(v)}`);
  return v;
}

function ovsdbRemote(v: unknown, at: string): string {
  const problem = ovsdbRemoteProblem(typeof v === 'string' ? v : '');
  if (problem) fail(at, `${problem}, got ${shown(v)}`);
  return v as string;
}

function bool(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') fail(at, `must be true or false, got ${shown(v)}`);
  return v;
}

/** `"0-3,6"` or a list of indexes → ascending unique indexes. */
function vfIndexes(v: unknown, at: string): number[] {
  const out = new Set<number>();
  if (Array.isArray(v)) v.forEach((x, i) => out.add(integer(x, `${at}[${i}]`, 0, MAX_VFS - 1)));
  else if (typeof v === 'string') {
    for (const part of v.split(',')) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (!m) fail(at, `"${v}" is not a VF range such as "0-3" or "0-3,6"`);
      const [lo, hi] = [Number(m[1]), Number(m[2] ?? m[1])];
      if (hi < lo || hi >= MAX_VFS) fail(at, `"${part.trim()}" is not a range of VF indexes from 0 to ${MAX_VFS - 1}`);
      for (let i = lo; i <= hi; i++) out.add(i);
    }
  } else fail(at, `must be a VF range string ("0-3") or a list of indexes, got ${shown(v)}`);
  if (out.size === 0) fail(at, 'names no VF');
  return [...out].sort((a, b) => a - b);
}

function vdpaAttrs(o: Obj, at: string): VdpaAttrs {
  return {
    maxVqp: o.maxVqp === undefined ? null : integer(o.maxVqp, `${at}.maxVqp`, 1, 0x8000),
    mtu: o.mtu === undefined ? null : integer(o.mtu, `${at}.mtu`, 68, 65535),
    macBase: o.macBase === undefined ? null : unicastMac(o.macBase, `${at}.macBase`),
  };
}

function unicastMac(v: unknown, at: string): string {
  const mac = matching(typeof v === 'string' ? v.toLowerCase() : v, at, MAC, 'a MAC address such as "02:00:00:00:00:00"');
  if (parseInt(mac.slice(0, 2), 16) & 1) fail(at, `"${mac}" is a multicast address`);
  return mac;
}

/** macBase + offset, as 48-bit integers; the caller checked that it does not wrap. */
export function macAt(base: string, offset: number): string {
  const n = BigInt(`0x${base.replaceAll(':', '')}`) + BigInt(offset);
  return n.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

function pciId(v: unknown, at: string): string {
  return matching(typeof v === 'string' ? v.toLowerCase() : v, at, PCI_ID, 'four hex digits such as "15b3"');
}

function pfSelector(o: Obj, at: string): PfSelector {
  const given = (['pciAddress', 'name', 'devlink', 'vendor'] as const).filter((k) => o[k] !== undefined);
  if (given.length !== 1) fail(at, `needs exactly one of pciAddress, name, devlink or vendor${given.length ? ` (got ${given.join(' and ')})` : ''}`);
  if (o.deviceID !== undefined && o.vendor === undefined) fail(`${at}.deviceID`, 'needs vendor');
  if (o.pciAddress !== undefined) return { pciAddress: matching(o.pciAddress, `${at}.pciAddress`, PCI_ADDRESS, 'a PCI address such as "0000:65:00.0"') };
  if (o.name !== undefined) return { name: matching(o.name, `${at}.name`, NETDEV, 'a netdev name') };
  if (o.vendor !== undefined) return { vendor: pciId(o.vendor, `${at}.vendor`), deviceID: o.deviceID === undefined ? null : pciId(o.deviceID, `${at}.deviceID`) };
  return { devlink: matching(o.devlink, `${at}.devlink`, DEVLINK_HANDLE, 'a devlink handle such as "pci/0000:65:00.0" or "netdevsim/netdevsim10"') };
}

function parsePf(v: unknown, at: string): PfPolicy {
  const o = object(v, at, ['pciAddress', 'name', 'devlink', 'vendor', 'deviceID', 'numVfs', 'eSwitchMode', 'hwTcOffload', 'flowSteeringMode', 'vdpa']);
  const select = pfSelector(o, at);
  const numVfs = o.numVfs === undefined ? null : integer(o.numVfs, `${at}.numVfs`, 0, MAX_VFS);
  const eSwitchMode = o.eSwitchMode === undefined ? null : oneOf(o.eSwitchMode, `${at}.eSwitchMode`, ['legacy', 'switchdev'] as const);
  const hwTcOffload = o.hwTcOffload === undefined ? null : bool(o.hwTcOffload, `${at}.hwTcOffload`);
  if (hwTcOffload === true && eSwitchMode !== 'switchdev') fail(`${at}.hwTcOffload`, 'needs eSwitchMode "switchdev": TC offload of VF traffic goes through the representors');
  const flowSteeringMode = o.flowSteeringMode === undefined ? null : oneOf(o.flowSteeringMode, `${at}.flowSteeringMode`, FLOW_STEERING_MODES);
  const taken = new Map<number, number>();
  const vdpa = array(o.vdpa, `${at}.vdpa`).map((g, i): VfGroup => {
    const gat = `${at}.vdpa[${i}]`;
    const go = object(g, gat, ['vfs', 'vdpaType', 'maxVqp', 'mtu', 'macBase']);
    if (go.vfs === undefined) fail(`${gat}.vfs`, 'required');
    if (go.vdpaType === undefined) fail(`${gat}.vdpaType`, 'required');
    const vdpaType = oneOf(go.vdpaType, `${gat}.vdpaType`, ['virtio', 'vhost'] as const);
    if (eSwitchMode !== 'switchdev') fail(`${gat}.vdpaType`, `needs ${at}.eSwitchMode "switchdev" (vDPA VFs are plugged into OVS through their representors)`);
    const vfs = vfIndexes(go.vfs, `${gat}.vfs`);
    for (const vf of vfs) {
      if (numVfs !== null && vf >= numVfs) fail(`${gat}.vfs`, `VF ${vf} is not below numVfs ${numVfs}`);
      const other = taken.get(vf);
      if (other !== undefined) fail(`${gat}.vfs`, `VF ${vf} is also in ${at}.vdpa[${other}]`);
      taken.set(vf, i);
    }
    const attrs = vdpaAttrs(go, gat);
    if (attrs.macBase !== null && BigInt(`0x${attrs.macBase.replaceAll(':', '')}`) + BigInt(vfs[vfs.length - 1]!) > 0xffffffffffffn) {
      fail(`${gat}.macBase`, 'runs past ff:ff:ff:ff:ff:ff for the last VF');
    }
    return { at: gat, vfs, vdpaType, ...attrs };
  });
  return { at, select, numVfs, eSwitchMode, hwTcOffload, flowSteeringMode, vdpa };
}

function parseMgmtDev(v: unknown, at: string): MgmtDevPolicy {
  const o = object(v, at, ['mgmtDev', 'count', 'vdpaType', 'maxVqp', 'mtu', 'macBase']);
  if (o.mgmtDev === undefined) fail(`${at}.mgmtDev`, 'required');
  const mgmtDev = matching(o.mgmtDev, `${at}.mgmtDev`, MGMTDEV, 'a management device as `vdpa mgmtdev show` names it ("pci/0000:00:06.0", "vdpasim_net")');
  const pci = mgmtDev.startsWith('pci/');
  const count = o.count === undefined ? 1 : integer(o.count, `${at}.count`, 1, pci ? 1 : 64);
  if (o.vdpaType === undefined) fail(`${at}.vdpaType`, 'required');
  return { at, mgmtDev, count, vdpaType: oneOf(o.vdpaType, `${at}.vdpaType`, ['virtio', 'vhost'] as const), ...vdpaAttrs(o, at) };
}

function parseOvs(v: unknown, at: string): OvsPolicy {
  const o = object(v, at, ['hwOffload', 'remote', 'restartCommand']);
  if (o.hwOffload === undefined) fail(`${at}.hwOffload`, 'required');
  const remote = o.remote === undefined ? DEFAULT_OVSDB : ovsdbRemote(o.remote, `${at}.remote`);
  let restartCommand: string[] | null = null;
  if (o.restartCommand !== undefined) {
    const cmd = array(o.restartCommand, `${at}.restartCommand`);
    if (cmd.length === 0) fail(`${at}.restartCommand`, 'must name a program, e.g. ["systemctl", "restart", "openvswitch-switch"]');
    restartCommand = cmd.map((a, i) => (typeof a === 'string' && a !== '' ? a : fail(`${at}.restartCommand[${i}]`, `must be a non-empty string, got ${shown(a)}`)));
  }
  return { hwOffload: bool(o.hwOffload, `${at}.hwOffload`), remote, restartCommand };
}

/** Two entries must never claim the same device: the plan would fight itself. */
function checkUnique(policy: Policy): void {
  const seen = new Map<string, string>();
  const claim = (key: string, at: string) => {
    const other = seen.get(key);
    if (other) fail(at, `names the same device as ${other}`);
    seen.set(key, at);
  };
  for (const pf of policy.pfs) claim(selectorKey(pf.select), pf.at);
  for (const m of policy.mgmtDevs) claim(m.mgmtDev, m.at);
}

export function selectorKey(s: PfSelector): string {
  if ('pciAddress' in s) return `pci/${s.pciAddress}`;
  if ('name' in s) return `netdev/${s.name}`;
  if ('vendor' in s) return `vendor/${s.vendor}:${s.deviceID ?? '*'}`;
  return s.devlink;
}

/** pfs, mgmtDevs and ovs of one policy; `prefix` ("" or "<name>.") starts every field path. */
function parseBody(o: Obj, prefix: string, what: string): Policy {
  const policy: Policy = {
    pfs: array(o.pfs, `${prefix}pfs`).map((p, i) => parsePf(p, `${prefix}pfs[${i}]`)),
    mgmtDevs: array(o.mgmtDevs, `${prefix}mgmtDevs`).map((m, i) => parseMgmtDev(m, `${prefix}mgmtDevs[${i}]`)),
    ovs: o.ovs === undefined ? null : parseOvs(o.ovs, `${prefix}ovs`),
  };
  if (!policy.pfs.length && !policy.mgmtDevs.length && !policy.ovs) fail(what, 'sets nothing: give pfs, mgmtDevs or ovs');
  checkUnique(policy);
  return policy;
}

/** The top-level form: one policy for every node. */
export function parsePolicy(v: unknown): Policy {
  return parseBody(object(v, 'policy', ['pfs', 'mgmtDevs', 'ovs']), '', 'policy');
}

function nodeSelector(v: unknown, at: string): NodeSelector {
  if (v === undefined) return EVERY_NODE;
  const o = object(v, at, ['nodeName', 'matchLabels']);
  const labels = new Map<string, string>();
  if (o.matchLabels !== undefined) {
    for (const [k, val] of Object.entries(object(o.matchLabels, `${at}.matchLabels`, null))) {
      if (!LABEL_KEY.test(k)) fail(`${at}.matchLabels`, `${JSON.stringify(k)} is not a label key such as "vdpa-k8s.io/nic"`);
      labels.set(k, matching(val, `${at}.matchLabels.${k}`, LABEL_VALUE, 'a label value'));
    }
  }
  const nodeName = o.nodeName === undefined ? null : matching(o.nodeName, `${at}.nodeName`, NODE_NAME, 'a node name');
  return { nodeName, matchLabels: labels };
}

export function singlePolicyFile(policy: Policy): PolicyFile {
  return { policies: [{ name: null, nodeSelector: EVERY_NODE, priority: DEFAULT_PRIORITY, ...policy }] };
}

/** The top-level form, or `{ policies: [...] }`. */
export function parsePolicyFile(v: unknown): PolicyFile {
  if (typeof v !== 'object' || v === null || !('policies' in v)) return singlePolicyFile(parsePolicy(v));
  const o = object(v, 'policy', ['policies']);
  const list = array(o.policies, 'policies');
  if (!list.length) fail('policies', 'names no policy');
  const names = new Map<string, number>();
  return {
    policies: list.map((p, i): NodePolicy => {
      const at = `policies[${i}]`;
      const po = object(p, at, ['name', 'nodeSelector', 'priority', 'pfs', 'mgmtDevs', 'ovs']);
      if (po.name === undefined) fail(`${at}.name`, 'required');
      const name = matching(po.name, `${at}.name`, POLICY_NAME, 'lower-case letters, digits and "-", such as "cx7-nodes"');
      const other = names.get(name);
      if (other !== undefined) fail(`${at}.name`, `"${name}" is also the name of policies[${other}]`);
      names.set(name, i);
      const priority = po.priority === undefined ? DEFAULT_PRIORITY : integer(po.priority, `${name}.priority`, 0, 99);
      return { name, nodeSelector: nodeSelector(po.nodeSelector, `${name}.nodeSelector`), priority, ...parseBody(po, `${name}.`, name) };
    }),
  };
}

function json(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PolicyError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/** A file in the top-level form only. */
export const parsePolicyText = (text: string, file: string): Policy => parsePolicy(json(text, file));

export const parsePolicyFileText = (text: string, file: string): PolicyFile => parsePolicyFile(json(text, file));

/** `[0, 1, 2, 3, 6]` → `"0-3,6"`. */
function vfRanges(vfs: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < vfs.length; ) {
    let j = i;
    while (j + 1 < vfs.length && vfs[j + 1] === vfs[j]! + 1) j++;
    parts.push(i === j ? `${vfs[i]}` : `${vfs[i]}-${vfs[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

const attrsJson = (a: VdpaAttrs) => ({ ...(a.maxVqp !== null && { maxVqp: a.maxVqp }), ...(a.mtu !== null && { mtu: a.mtu }), ...(a.macBase !== null && { macBase: a.macBase }) });

/** The top-level form of a policy, as parsePolicy reads it back (the boot unit's recorded policy). */
export function policyJson(p: Policy): unknown {
  return {
    pfs: p.pfs.map((pf) => ({
      ...('vendor' in pf.select ? { vendor: pf.select.vendor, ...(pf.select.deviceID !== null && { deviceID: pf.select.deviceID }) } : pf.select),
      ...(pf.numVfs !== null && { numVfs: pf.numVfs }),
      ...(pf.eSwitchMode !== null && { eSwitchMode: pf.eSwitchMode }),
      ...(pf.hwTcOffload !== null && { hwTcOffload: pf.hwTcOffload }),
      ...(pf.flowSteeringMode !== null && { flowSteeringMode: pf.flowSteeringMode }),
      ...(pf.vdpa.length > 0 && { vdpa: pf.vdpa.map((g) => ({ vfs: vfRanges(g.vfs), vdpaType: g.vdpaType, ...attrsJson(g) })) }),
    })),
    mgmtDevs: p.mgmtDevs.map((m) => ({ mgmtDev: m.mgmtDev, count: m.count, vdpaType: m.vdpaType, ...attrsJson(m) })),
    ...(p.ovs && { ovs: { hwOffload: p.ovs.hwOffload, remote: p.ovs.remote, ...(p.ovs.restartCommand && { restartCommand: p.ovs.restartCommand }) } }),
  };
}

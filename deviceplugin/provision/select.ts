/**
 * Which policies of a file apply to this node, and the one policy they add up to on its devices.
 * The node is named by --node (the DaemonSet sets NODE_NAME from the Downward API) and labelled
 * by --node-labels (a file in the Downward API's labels format). Merging follows the SR-IOV
 * operator's rule that the higher priority (lower number) wins, and refuses what it leaves open:
 *   - per device (a PF as its selectors resolve on this node, a management device, the OVS
 *     remote), each setting comes from the highest-priority policy that sets it; a lower one that
 *     sets it otherwise is overridden (a plan note says so);
 *   - a lower-priority vDPA group that shares a VF with a higher one is dropped whole (a note);
 *   - two policies of the same priority that set one thing differently, or claim one VF, are a
 *     conflict: the node is refused, changing nothing, until one of them gets another priority.
 * The result names each PF by its PCI address (or devlink handle), so that the boot unit's
 * recorded copy does not depend on netdev names that switchdev or udev may change.
 */
import type { Snapshot } from '../../host/snapshot.js';
import { PolicyError, type MgmtDevPolicy, type NodePolicy, type OvsPolicy, type PfPolicy, type PfSelector, type Policy, type PolicyFile, type VfGroup } from './policy.js';

export interface NodeIdentity {
  /** null: unknown (no --node, no NODE_NAME). */
  readonly name: string | null;
  /** null: unknown (no --node-labels). */
  readonly labels: ReadonlyMap<string, string> | null;
}

export interface Verdict {
  readonly policy: NodePolicy;
  /** What selected it, or what did not hold. */
  readonly why: string;
}

export interface Selection {
  readonly node: NodeIdentity;
  /** Highest priority first. */
  readonly matched: readonly Verdict[];
  readonly skipped: readonly Verdict[];
  /** The file is in the top-level form: one policy, every node. */
  readonly single: boolean;
}

export interface EffectivePolicy {
  readonly policy: Policy;
  /** Overridden settings, dropped groups, vendor selectors without a match here. */
  readonly notes: readonly string[];
  /** Conflicts at equal priority and merged settings that contradict each other. */
  readonly problems: readonly string[];
}

/** The Downward API's labels format: `key="value"` lines, values quoted as Go quotes them. */
export function parseLabels(text: string, file: string): Map<string, string> {
  const labels = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const m = /^([^=\s]+)=("(?:[^"\\]|\\.)*")$/.exec(line.trim());
    let value: unknown;
    try {
      value = m ? JSON.parse(m[2]!) : undefined;
    } catch {
      value = undefined;
    }
    if (!m || typeof value !== 'string') throw new PolicyError(`${file}:${i + 1}: not a key="value" line: ${JSON.stringify(line)}`);
    labels.set(m[1]!, value);
  });
  return labels;
}

function verdict(p: NodePolicy, node: NodeIdentity): { ok: boolean; why: string } {
  const { nodeName, matchLabels } = p.nodeSelector;
  const held: string[] = [];
  if (nodeName !== null) {
    if (node.name === null) return { ok: false, why: `nodeName is ${nodeName}; this node's name is unknown (--node or NODE_NAME)` };
    if (node.name !== nodeName) return { ok: false, why: `nodeName is ${nodeName}` };
    held.push(`nodeName ${nodeName}`);
  }
  for (const [k, v] of matchLabels) {
    if (node.labels === null) return { ok: false, why: `matchLabels ${k}=${v}; this node's labels are unknown (--node-labels)` };
    const have = node.labels.get(k);
    if (have !== v) return { ok: false, why: `matchLabels ${k}=${v} (the node has ${have === undefined ? `no ${k}` : `${k}=${have}`})` };
    held.push(`${k}=${v}`);
  }
  return { ok: true, why: held.length ? held.join(', ') : 'every node' };
}

export function selectPolicies(file: PolicyFile, node: NodeIdentity): Selection {
  const matched: Verdict[] = [];
  const skipped: Verdict[] = [];
  for (const policy of file.policies) {
    const v = verdict(policy, node);
    (v.ok ? matched : skipped).push({ policy, why: v.why });
  }
  matched.sort((a, b) => a.policy.priority - b.policy.priority || (a.policy.name ?? '').localeCompare(b.policy.name ?? ''));
  return { node, matched, skipped, single: file.policies.length === 1 && file.policies[0]!.name === null };
}

/** The devices a PF selector names on this node. */
export function matchPfs(snapshot: Snapshot, sel: PfSelector): { handles: string[] } | { missing: string } {
  if ('devlink' in sel) return { handles: [sel.devlink] };
  if ('pciAddress' in sel) {
    const f = snapshot.functions.get(sel.pciAddress);
    if (!f) return { missing: `no network PCI function ${sel.pciAddress}` };
    if (f.pf !== null) return { missing: `${sel.pciAddress} is a VF (of ${f.pf}), not a PF` };
    return { handles: [`pci/${sel.pciAddress}`] };
  }
  const pfs = [...snapshot.functions.values()].filter((f) => f.pf === null);
  if ('name' in sel) {
    const f = pfs.find((x) => x.netdevs.includes(sel.name));
    return f ? { handles: [`pci/${f.address}`] } : { missing: `no PF has a netdev named ${sel.name}` };
  }
  const found = pfs.filter((f) => f.vendor === sel.vendor && (sel.deviceID === null || f.device === sel.deviceID)).map((f) => `pci/${f.address}`);
  return found.length ? { handles: found.sort() } : { missing: `no PF with vendor ${sel.vendor}${sel.deviceID === null ? '' : ` and device ${sel.deviceID}`}` };
}

interface Claim<T> {
  readonly entry: T;
  readonly priority: number;
}

/** PF settings compared and overridden one by one. */
type PfSetting = 'numVfs' | 'eSwitchMode' | 'hwTcOffload' | 'flowSteeringMode';

const sameGroup = (a: VfGroup, b: VfGroup) => JSON.stringify({ ...a, at: '' }) === JSON.stringify({ ...b, at: '' });

class Merger {
  readonly notes: string[] = [];
  readonly problems: string[] = [];

  /** The highest-priority value of one setting; a different one is overridden, or a conflict at equal priority. */
  private setting<K extends PfSetting>(claims: readonly Claim<PfPolicy>[], key: K, device: string): PfPolicy[K] {
    let won: Claim<PfPolicy> | null = null;
    for (const c of claims) {
      const v = c.entry[key];
      if (v === null) continue;
      if (!won) {
        won = c;
        continue;
      }
      const w = won.entry[key];
      if (v === w) continue;
      if (c.priority === won.priority) this.problems.push(`${c.entry.at} and ${won.entry.at} set ${key} of ${device} to ${v} and ${w} at the same priority ${c.priority}: give one of them a lower number (a higher priority)`);
      else this.notes.push(`${c.entry.at}: ${key} ${v} of ${device} is overridden by ${won.entry.at} (priority ${won.priority}): ${w}`);
    }
    return won ? won.entry[key] : (null as PfPolicy[K]);
  }

  /** vDPA groups, highest priority first; one that shares a VF with a kept group is dropped (or a conflict). */
  private groups(claims: readonly Claim<PfPolicy>[], device: string): VfGroup[] {
    const kept: VfGroup[] = [];
    const owner = new Map<number, Claim<VfGroup>>();
    for (const c of claims) {
      for (const g of c.entry.vdpa) {
        const vf = g.vfs.find((i) => owner.has(i));
        if (vf === undefined) {
          kept.push(g);
          for (const i of g.vfs) owner.set(i, { entry: g, priority: c.priority });
          continue;
        }
        const other = owner.get(vf)!;
        if (sameGroup(g, other.entry)) continue;
        if (other.priority === c.priority) this.problems.push(`${g.at} and ${other.entry.at} both claim VF ${vf} of ${device} at the same priority ${c.priority}: give one of them a lower number (a higher priority)`);
        else this.notes.push(`${g.at}: dropped on ${device}: VF ${vf} is in ${other.entry.at} (priority ${other.priority})`);
      }
    }
    return kept;
  }

  pf(device: string, claims: readonly Claim<PfPolicy>[], at: string): PfPolicy {
    const merged: PfPolicy = {
      at,
      select: device.startsWith('pci/') ? { pciAddress: device.slice(4) } : { devlink: device },
      numVfs: this.setting(claims, 'numVfs', device),
      eSwitchMode: this.setting(claims, 'eSwitchMode', device),
      hwTcOffload: this.setting(claims, 'hwTcOffload', device),
      flowSteeringMode: this.setting(claims, 'flowSteeringMode', device),
      vdpa: this.groups(claims, device),
    };
    if (claims.length > 1 && merged.eSwitchMode !== 'switchdev') {
      if (merged.vdpa.length) this.problems.push(`${at}: merged, ${device} gets vDPA groups (${merged.vdpa.map((g) => g.at).join(', ')}) but eSwitchMode ${merged.eSwitchMode ?? 'unset'}`);
      if (merged.hwTcOffload === true) this.problems.push(`${at}: merged, ${device} gets hwTcOffload true but eSwitchMode ${merged.eSwitchMode ?? 'unset'}`);
    }
    return merged;
  }

  /** A management device or the OVS settings: all or nothing from the highest priority. */
  whole<T extends { readonly at?: string }>(claims: readonly Claim<T>[], what: string, label: (c: Claim<T>) => string): T {
    const [won, ...rest] = claims;
    const same = (a: T, b: T) => JSON.stringify({ ...a, at: '' }) === JSON.stringify({ ...b, at: '' });
    for (const c of rest) {
      if (same(c.entry, won!.entry)) continue;
      if (c.priority === won!.priority) this.problems.push(`${label(c)} and ${label(won!)} set ${what} differently at the same priority ${c.priority}: give one of them a lower number (a higher priority)`);
      else this.notes.push(`${label(c)}: ${what} is overridden by ${label(won!)} (priority ${won!.priority})`);
    }
    return won!.entry;
  }
}

/** The policies that select the node (highest priority first), merged on this node's devices. */
export function mergePolicies(matched: readonly NodePolicy[], snapshot: Snapshot): EffectivePolicy {
  const m = new Merger();
  // Devices in the order the file first names them; entries that name nothing go to the planner, which says why.
  const order: (string | PfPolicy)[] = [];
  const byDevice = new Map<string, Claim<PfPolicy>[]>();
  for (const p of matched) {
    for (const pf of p.pfs) {
      const r = matchPfs(snapshot, pf.select);
      if ('missing' in r) {
        if ('vendor' in pf.select) m.notes.push(`${pf.at}: ${r.missing} on this node`);
        else order.push(pf);
        continue;
      }
      for (const handle of r.handles) {
        const entry = 'vendor' in pf.select ? { ...pf, at: `${pf.at}@${handle.replace(/^pci\//, '')}` } : pf;
        if (!byDevice.has(handle)) {
          byDevice.set(handle, []);
          order.push(handle);
        }
        byDevice.get(handle)!.push({ entry, priority: p.priority });
      }
    }
  }
  const pfs = order.map((o) => {
    if (typeof o !== 'string') return o;
    const claims = byDevice.get(o)!;
    return m.pf(o, claims, claims.map((c) => c.entry.at).join('+'));
  });

  const mgmt = new Map<string, Claim<MgmtDevPolicy>[]>();
  for (const p of matched) for (const md of p.mgmtDevs) mgmt.set(md.mgmtDev, [...(mgmt.get(md.mgmtDev) ?? []), { entry: md, priority: p.priority }]);
  const mgmtDevs = [...mgmt.values()].map((claims) => m.whole(claims, `management device ${claims[0]!.entry.mgmtDev}`, (c) => c.entry.at));

  const ovsClaims = matched.flatMap((p): Claim<OvsPolicy & { at: string }>[] => (p.ovs ? [{ entry: { ...p.ovs, at: p.name ? `${p.name}.ovs` : 'ovs' }, priority: p.priority }] : []));
  const ovs = ovsClaims.length ? m.whole(ovsClaims, 'ovs', (c) => c.entry.at) : null;
  const ovsPolicy: OvsPolicy | null = ovs && { hwOffload: ovs.hwOffload, remote: ovs.remote, restartCommand: ovs.restartCommand };
  return { policy: { pfs, mgmtDevs, ovs: ovsPolicy }, notes: m.notes, problems: m.problems };
}

export function formatSelection(s: Selection): string {
  if (s.single) return '';
  const who = s.node.name ?? '(unnamed node)';
  const lines = [`node ${who}: ${s.matched.length ? `${s.matched.length} of ${s.matched.length + s.skipped.length} policies apply` : 'no policy applies; nothing to do'}`];
  for (const v of s.matched) lines.push(`  + ${v.policy.name} (priority ${v.policy.priority}): ${v.why}`);
  for (const v of s.skipped) lines.push(`  - ${v.policy.name}: ${v.why}`);
  return `${lines.join('\n')}\n`;
}

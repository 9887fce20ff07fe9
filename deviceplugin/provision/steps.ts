/**
 * What a plan is made of: actions as plain data (printable, storable in the state file), each
 * step with its description and the action that undoes it.
 */
import type { EswitchMode } from '../../host/eswitch.js';
import type { VdpaDriver } from '../../host/snapshot.js';
import type { VdpaSpec } from '../../host/vdpa.js';

export type Action =
  | { readonly kind: 'load-modules'; readonly modules: readonly string[] }
  | { readonly kind: 'set-numvfs'; readonly device: string; readonly to: number }
  | { readonly kind: 'set-eswitch'; readonly device: string; readonly mode: EswitchMode }
  /** A devlink driver parameter in cmode runtime (mlx5's flow_steering_mode). */
  | { readonly kind: 'set-devlink-param'; readonly device: string; readonly name: string; readonly value: string }
  /** driver null: clear driver_override and let the kernel pick the function's own driver. */
  | { readonly kind: 'bind-pci'; readonly pci: string; readonly driver: string | null }
  | { readonly kind: 'set-hw-tc-offload'; readonly netdev: string; readonly on: boolean }
  | { readonly kind: 'create-vdpa'; readonly spec: VdpaSpec; readonly driver: VdpaDriver }
  /** Delete and create again: a device's attributes are fixed at creation. `drift` says what differs. */
  | { readonly kind: 'recreate-vdpa'; readonly spec: VdpaSpec; readonly driver: VdpaDriver; readonly drift: string }
  | { readonly kind: 'bind-vdpa'; readonly name: string; readonly driver: VdpaDriver }
  | { readonly kind: 'delete-vdpa'; readonly name: string }
  | { readonly kind: 'set-ovs'; readonly remote: string; readonly key: string; readonly value: string | null; readonly restart: readonly string[] | null }
  /** Boot files: a unit, rules, the recorded policy, a copy of this executable, a wants link. */
  | { readonly kind: 'write-file'; readonly path: string; readonly text: string; readonly mode: number }
  | { readonly kind: 'copy-file'; readonly from: string; readonly to: string }
  | { readonly kind: 'link-file'; readonly path: string; readonly target: string }
  | { readonly kind: 'remove-file'; readonly path: string };

/**
 * What the state file learns from a step: `record` remembers how to undo it (the first record
 * of a key wins: it holds the state before we touched anything); `forget` drops a record whose
 * object is gone for good (a deleted vDPA device of ours).
 */
export type ProvisionJournalEffect = { readonly record: string; readonly undo: Action } | { readonly forget: string } | null;

export interface PlanStep {
  /** The policy entry the step serves (`pfs[0]`, `mgmtDevs[1]`, `ovs`), or "" for node-wide steps. */
  readonly at: string;
  readonly action: Action;
  readonly description: string;
  readonly journal: ProvisionJournalEffect;
}

export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'load-modules':
      return `load kernel modules ${a.modules.join(', ')}`;
    case 'set-numvfs':
      return `set sriov_numvfs of ${a.device} to ${a.to}`;
    case 'set-eswitch':
      return `put the eswitch of ${a.device} in ${a.mode} mode (its VFs unbound meanwhile, then rebound)`;
    case 'bind-pci':
      return a.driver === null ? `give PCI function ${a.pci} back to its own driver` : `bind PCI function ${a.pci} to ${a.driver}`;
    case 'set-hw-tc-offload':
      return `turn hw-tc-offload ${a.on ? 'on' : 'off'} on ${a.netdev}`;
    case 'set-devlink-param':
      return `set devlink parameter ${a.name} of ${a.device} to ${a.value}`;
    case 'create-vdpa':
    case 'recreate-vdpa': {
      const s = a.spec;
      const attrs = [s.mac && `mac ${s.mac}`, s.mtu && `mtu ${s.mtu}`, s.maxVqp && `max_vqp ${s.maxVqp}`].filter(Boolean).join(', ');
      const what = `vDPA device ${s.name} on ${s.mgmtDev}${attrs ? ` (${attrs})` : ''}, bound to ${a.driver}_vdpa`;
      return a.kind === 'create-vdpa' ? `create ${what}` : `recreate ${what}: it has ${a.drift}`;
    }
    case 'bind-vdpa':
      return `bind vDPA device ${a.name} to ${a.driver}_vdpa`;
    case 'delete-vdpa':
      return `delete vDPA device ${a.name}`;
    case 'set-ovs':
      return `${a.value === null ? `remove OVS other_config:${a.key}` : `set OVS other_config:${a.key}=${a.value}`}${a.restart ? ` and run ${a.restart.join(' ')}` : ''}`;
    case 'write-file':
      return `write ${a.path}`;
    case 'copy-file':
      return `copy ${a.from} to ${a.to}`;
    case 'link-file':
      return `link ${a.path} to ${a.target}`;
    case 'remove-file':
      return `remove ${a.path}`;
  }
}

// ---- parsing (the state file is read back from disk) ----

type Obj = Readonly<Record<string, unknown>>;

class Reader {
  constructor(
    private readonly o: Obj,
    private readonly at: string,
    private readonly fail: (at: string, msg: string) => never,
  ) {}
  str(k: string): string {
    const v = this.o[k];
    return typeof v === 'string' && v !== '' ? v : this.fail(`${this.at}.${k}`, 'must be a non-empty string');
  }
  strOrNull(k: string): string | null {
    return this.o[k] === null ? null : this.str(k);
  }
  num(k: string): number {
    const v = this.o[k];
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : this.fail(`${this.at}.${k}`, 'must be a whole number');
  }
  numOrNull(k: string): number | null {
    return this.o[k] === null ? null : this.num(k);
  }
  bool(k: string): boolean {
    const v = this.o[k];
    return typeof v === 'boolean' ? v : this.fail(`${this.at}.${k}`, 'must be true or false');
  }
  strings(k: string): string[] {
    const v = this.o[k];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) this.fail(`${this.at}.${k}`, 'must be a list of strings');
    return v as string[];
  }
  stringsOrNull(k: string): string[] | null {
    return this.o[k] === null ? null : this.strings(k);
  }
  oneOf<T extends string>(k: string, values: readonly T[]): T {
    const v = this.o[k];
    return (values as readonly unknown[]).includes(v) ? (v as T) : this.fail(`${this.at}.${k}`, `must be ${values.join(' or ')}`);
  }
  obj(k: string): Reader {
    const v = this.o[k];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`${this.at}.${k}`, 'must be an object');
    return new Reader(v as Obj, `${this.at}.${k}`, this.fail);
  }
}

export function readerFor(v: unknown, at: string, fail: (at: string, msg: string) => never): Reader {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'must be an object');
  return new Reader(v as Obj, at, fail);
}

const DRIVERS = ['virtio', 'vhost'] as const;

export function parseAction(v: unknown, at: string, fail: (at: string, msg: string) => never): Action {
  const r = readerFor(v, at, fail);
  const kind = r.oneOf('kind', [
    'load-modules',
    'set-numvfs',
    'set-eswitch',
    'set-devlink-param',
    'bind-pci',
    'set-hw-tc-offload',
    'create-vdpa',
    'recreate-vdpa',
    'bind-vdpa',
    'delete-vdpa',
    'set-ovs',
    'write-file',
    'copy-file',
    'link-file',
    'remove-file',
  ] as const);
  switch (kind) {
    case 'load-modules':
      return { kind, modules: r.strings('modules') };
    case 'set-numvfs':
      return { kind, device: r.str('device'), to: r.num('to') };
    case 'set-eswitch':
      return { kind, device: r.str('device'), mode: r.oneOf('mode', ['legacy', 'switchdev'] as const) };
    case 'bind-pci':
      return { kind, pci: r.str('pci'), driver: r.strOrNull('driver') };
    case 'set-hw-tc-offload':
      return { kind, netdev: r.str('netdev'), on: r.bool('on') };
    case 'set-devlink-param':
      return { kind, device: r.str('device'), name: r.str('name'), value: r.str('value') };
    case 'create-vdpa':
    case 'recreate-vdpa': {
      const s = r.obj('spec');
      const spec = { name: s.str('name'), mgmtDev: s.str('mgmtDev'), mac: s.strOrNull('mac'), mtu: s.numOrNull('mtu'), maxVqp: s.numOrNull('maxVqp') };
      const driver = r.oneOf('driver', DRIVERS);
      return kind === 'create-vdpa' ? { kind, spec, driver } : { kind, spec, driver, drift: r.str('drift') };
    }
    case 'bind-vdpa':
      return { kind, name: r.str('name'), driver: r.oneOf('driver', DRIVERS) };
    case 'delete-vdpa':
      return { kind, name: r.str('name') };
    case 'set-ovs':
      return { kind, remote: r.str('remote'), key: r.str('key'), value: r.strOrNull('value'), restart: r.stringsOrNull('restart') };
    case 'write-file':
      return { kind, path: r.str('path'), text: r.str('text'), mode: r.num('mode') };
    case 'copy-file':
      return { kind, from: r.str('from'), to: r.str('to') };
    case 'link-file':
      return { kind, path: r.str('path'), target: r.str('target') };
    case 'remove-file':
      return { kind, path: r.str('path') };
  }
}

/**
 * Real OVS + OVN for suites: ensureOvn() starts the daemons (hack/ovn/up.sh, reused when
 * already running), and an OvnRun creates logical switches, logical switch ports (as an OVN
 * controller would), network namespaces and veth "representors" under one per-run prefix,
 * then removes all of them in cleanup(). Suites never stop the daemons: others may share them.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { OvsdbClient } from '../../host/ovsdb.js';
import { runProcess, type ProcResult } from '../../host/proc.js';
import { ROOT } from './paths.js';

export const OVSDB_SOCK = 'unix:/var/run/openvswitch/db.sock';
export const BRIDGE = 'br-int';

/** Runs a command to completion with empty stdin; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<ProcResult> {
  return runProcess(cmd, args, { timeoutMs });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

let started: Promise<void> | undefined;

/** Brings OVS + OVN up once per process (idempotent across processes too). */
export function ensureOvn(): Promise<void> {
  started ??= must('bash', [join(ROOT, 'hack', 'ovn', 'up.sh')]).then(() => undefined);
  return started;
}

type OvsJsonValue = string | number | boolean | ['uuid' | 'named-uuid', string] | ['set', unknown[]] | ['map', [unknown, unknown][]];

/** `ovs-vsctl --format=json find <table> name=<name>` as a list of column→value rows. */
async function ovsFind(table: string, name: string, columns: string[]): Promise<Record<string, OvsJsonValue>[]> {
  const out = await must('ovs-vsctl', ['--format=json', `--columns=${columns.join(',')}`, 'find', table, `name=${name}`]);
  const parsed = JSON.parse(out) as { headings: string[]; data: OvsJsonValue[][] };
  return parsed.data.map((row) => Object.fromEntries(parsed.headings.map((h, i) => [h, row[i]!])));
}

function mapOf(v: OvsJsonValue | undefined): Record<string, string> {
  if (!Array.isArray(v) || v[0] !== 'map') throw new Error(`not an OVS map: ${JSON.stringify(v)}`);
  return Object.fromEntries((v[1] as [string, string][]).map(([k, val]) => [k, val]));
}

export interface OvsInterfaceRow {
  readonly externalIds: Record<string, string>;
  readonly type: string;
  readonly error: string | undefined;
}

/** The OVS Interface row named `name` (through ovs-vsctl), or undefined. */
export async function ovsInterface(name: string): Promise<OvsInterfaceRow | undefined> {
  const [row] = await ovsFind('Interface', name, ['external_ids', 'type', 'error']);
  if (!row) return undefined;
  const error = row.error;
  return {
    externalIds: mapOf(row.external_ids),
    type: typeof row.type === 'string' ? row.type : '',
    error: typeof error === 'string' ? error : undefined,
  };
}

export interface OvsPortRow {
  readonly bridge: string;
  readonly otherConfig: Record<string, string>;
  /** Interface names of the port. */
  readonly interfaces: string[];
}

/** The OVS Port row named `name` with its bridge and interface names, or undefined. */
export async function ovsPort(name: string): Promise<OvsPortRow | undefined> {
  const [row] = await ovsFind('Port', name, ['other_config', 'interfaces']);
  if (!row) return undefined;
  const bridge = (await must('ovs-vsctl', ['port-to-br', name])).trim();
  const refs = row.interfaces;
  const uuids = Array.isArray(refs) && refs[0] === 'set' ? (refs[1] as [string, string][]) : [refs as [string, string]];
  const interfaces: string[] = [];
  for (const [, id] of uuids) interfaces.push((await must('ovs-vsctl', ['get', 'Interface', id, 'name'])).trim().replace(/^"|"$/g, ''));
  return { bridge, otherConfig: mapOf(row.other_config), interfaces };
}

export interface Pod {
  readonly netns: string;
  /** Interface name inside the netns. */
  readonly ifname: string;
  /** Host end of the veth pair: stands in for the VF representor. */
  readonly rep: string;
  readonly mac: string;
  /** CIDR, e.g. 10.99.0.2/24. */
  readonly cidr: string;
}

/** Everything one suite run creates, named `<prefix>…`, removed again by cleanup(). */
export class OvnRun {
  /** Short (netdev names have 15 bytes) and random, so concurrent runs never collide. */
  readonly prefix = `o${randomBytes(3).toString('hex').slice(0, 5)}`;
  private counter = 0;
  private readonly switches = new Set<string>();
  private readonly lsps = new Set<string>();
  private readonly namespaces = new Set<string>();
  private readonly links = new Set<string>();
  private readonly bridges = new Set<string>();

  /** A unique name under this run's prefix, e.g. `o3fa1cr2`. */
  name(kind: string): string {
    return `${this.prefix}${kind}${++this.counter}`;
  }

  async createLogicalSwitch(name = this.name('ls')): Promise<string> {
    await must('ovn-nbctl', ['ls-add', name]);
    this.switches.add(name);
    return name;
  }

  async deleteLogicalSwitch(name: string): Promise<void> {
    await must('ovn-nbctl', ['--if-exists', 'ls-del', name]);
    this.switches.delete(name);
  }

  /** `ovn-nbctl lsp-add` + `lsp-set-addresses "<mac> <ip>…"`, as ovnkube-controller does for a pod. */
  async addLogicalPort(ls: string, lsp: string, mac: string, ips: readonly string[]): Promise<void> {
    await must('ovn-nbctl', ['lsp-add', ls, lsp, '--', 'lsp-set-addresses', lsp, [mac, ...ips].join(' ')]);
    this.lsps.add(lsp);
  }

  async removeLogicalPort(lsp: string): Promise<void> {
    await must('ovn-nbctl', ['--if-exists', 'lsp-del', lsp]);
    this.lsps.delete(lsp);
  }

  /** An extra OVS bridge on the userspace datapath (br-int itself belongs to ovn-controller). */
  async createBridge(name = this.name('br')): Promise<string> {
    await must('ovs-vsctl', ['add-br', name, '--', 'set', 'Bridge', name, 'datapath_type=netdev']);
    this.bridges.add(name);
    return name;
  }

  async createNetns(name = this.name('ns')): Promise<string> {
    await must('ip', ['netns', 'add', name]);
    this.namespaces.add(name);
    await must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  async deleteNetns(name: string): Promise<void> {
    await run('ip', ['netns', 'delete', name]);
    this.namespaces.delete(name);
  }

  /** A veth pair in the host: `a` and `b`, both up. Returns the names. */
  async createVeth(a = this.name('va'), b = this.name('vb')): Promise<[string, string]> {
    await must('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    this.links.add(a);
    await must('ip', ['link', 'set', a, 'up']);
    await must('ip', ['link', 'set', b, 'up']);
    return [a, b];
  }

  async deleteLink(name: string): Promise<void> {
    await run('ip', ['link', 'delete', name]);
    this.links.delete(name);
  }

  /**
   * A netns "pod" with `ifname` (created inside the netns, so a pod-side eth0 never touches the
   * host's eth0) carrying mac + cidr, and its veth peer in the host as the representor.
   */
  async createPod(opts: { mac: string; cidr: string; ifname?: string; rep?: string }): Promise<Pod> {
    const netns = await this.createNetns();
    const ifname = opts.ifname ?? 'eth0';
    const rep = opts.rep ?? this.name('r');
    await must('ip', ['link', 'add', rep, 'type', 'veth', 'peer', 'name', ifname, 'netns', netns]);
    this.links.add(rep);
    await must('ip', ['-n', netns, 'link', 'set', ifname, 'address', opts.mac]);
    await must('ip', ['-n', netns, 'addr', 'add', opts.cidr, 'dev', ifname]);
    await must('ip', ['-n', netns, 'link', 'set', ifname, 'up']);
    await must('ip', ['link', 'set', rep, 'up']);
    // OVS's userspace datapath forwards veth frames as they are: make the pod fill in checksums.
    await run('ip', ['netns', 'exec', netns, 'ethtool', '-K', ifname, 'tx', 'off']);
    return { netns, ifname, rep, mac: opts.mac, cidr: opts.cidr };
  }

  /** Removes the run's OVS ports, LSPs, switches, links and namespaces; never the daemons. */
  async cleanup(): Promise<void> {
    for (const b of this.bridges) await run('ovs-vsctl', ['--if-exists', 'del-br', b]);
    this.bridges.clear();
    const ports = (await run('ovs-vsctl', ['--bare', '--columns=name', 'list', 'Port'])).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(this.prefix));
    if (ports.length) await run('ovs-vsctl', ports.flatMap((p) => ['--', '--if-exists', 'del-port', p]));
    for (const lsp of [...this.lsps]) await this.removeLogicalPort(lsp);
    for (const ls of [...this.switches]) await this.deleteLogicalSwitch(ls);
    for (const l of [...this.links]) await this.deleteLink(l);
    for (const ns of [...this.namespaces]) await this.deleteNetns(ns);
  }
}

export interface OvnSuite {
  readonly ovn: OvnRun;
  /** One OVSDB connection for the suite, open between before and after. */
  readonly client: OvsdbClient;
}

/**
 * Hooks a uvu suite up to OVN: before, the daemons are ensured and a client connects; after,
 * the client closes and everything the run created is removed.
 */
export function ovnSuite(hooks: { before(fn: () => Promise<void>): void; after(fn: () => Promise<void>): void }): OvnSuite {
  const ovn = new OvnRun();
  let client: OvsdbClient | undefined;
  hooks.before(async () => {
    await ensureOvn();
    client = await OvsdbClient.connect(OVSDB_SOCK);
  });
  hooks.after(async () => {
    client?.close();
    await ovn.cleanup();
  });
  return {
    ovn,
    get client(): OvsdbClient {
      if (!client) throw new Error('ovnSuite: the OVSDB client is used before the suite started');
      return client;
    },
  };
}

/** `ping` from a pod's netns; resolves with the exit code and output (0 = replies came back). */
export async function ping(from: Pod, ip: string, count = 3): Promise<{ ok: boolean; output: string }> {
  const r = await run('ip', ['netns', 'exec', from.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', ip]);
  return { ok: r.code === 0, output: r.stdout + r.stderr };
}

/** Waits for `pred` to hold, checking every `everyMs`; throws `what` after `timeoutMs`. */
export async function eventually(pred: () => Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

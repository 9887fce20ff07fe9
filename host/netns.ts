/**
 * iproute2 in the host or inside a network namespace given by path. Commands are argv arrays;
 * several run in one `ip -batch -` process (a netns switch and a process start cost more than
 * the netlink calls themselves).
 */
import { readFileSync, statfsSync } from 'node:fs';
import { runProcess, systemTool } from './proc.js';

/** A network namespace path (`/run/netns/x`, `/proc/123/ns/net`); null is the plugin's own (the host). */
export type Netns = string | null;

/** The plugin's own network namespace as a path other processes can open. */
export const HOST_NETNS = `/proc/${process.pid}/ns/net`;

const IP = systemTool('ip');
const NSENTER = systemTool('nsenter');
const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export class IpError extends Error {
  constructor(
    readonly command: readonly string[],
    readonly stderr: string,
    readonly netns: Netns,
  ) {
    super(`ip ${command.join(' ')}${netns ? ` (in ${netns})` : ''}: ${stderr.trim() || 'failed'}`);
    this.name = 'IpError';
  }

  /** The name (or address) the command needed to create is taken. */
  get exists(): boolean {
    return /exists|in use/i.test(this.stderr);
  }

  get noDevice(): boolean {
    return /Cannot find device|does not exist|No such device/i.test(this.stderr);
  }
}

/** True when `path` is a bind-mounted netns (nsfs) or a `/proc/<pid>/ns/net` link. */
export function isNetworkNamespace(path: string): boolean {
  try {
    const type = statfsSync(path).type;
    return type === NSFS_MAGIC || (type === PROC_SUPER_MAGIC && /\/ns\/net$/.test(path));
  } catch {
    return false;
  }
}

/** `ip -n` for netns under /run/netns (one exec fewer than nsenter), nsenter for other paths. */
function argv(netns: Netns, ipArgs: readonly string[]): [string, string[]] {
  if (!netns) return [IP, [...ipArgs]];
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns)?.[1];
  return named ? [IP, ['-n', named, ...ipArgs]] : [NSENTER, [`--net=${netns}`, IP, ...ipArgs]];
}

/**
 * An argument as an `ip -batch` line needs it: words split on whitespace unless quoted, and
 * everything after `#` is a comment even inside quotes. null when it cannot be written.
 */
function batchArg(arg: string): string | null {
  if (/[#\\\n\r]/.test(arg)) return null;
  if (arg !== '' && !/[\s"']/.test(arg)) return arg;
  if (!arg.includes('"')) return `"${arg}"`;
  if (!arg.includes("'")) return `'${arg}'`;
  return null;
}

export type IpCommand = readonly string[];

/** Commands for one netns; `ip` runs them in order and stops at the first failure. */
export interface IpBatch {
  readonly netns: Netns;
  readonly commands: readonly IpCommand[];
}

const SH = systemTool('sh');

/** The failing command of a batch, from ip's "Command failed -:N" line. */
function batchFailure(batch: IpBatch, stderr: string): IpError {
  const line = Number(/Command failed -:(\d+)/.exec(stderr)?.[1] ?? 0);
  const failed = batch.commands[line - 1] ?? ['-batch', '-'];
  return new IpError(failed, stderr.replace(/\n?Command failed -:\d+\s*$/, ''), batch.netns);
}

/**
 * Runs batches one after the other, stopping at the first failure (thrown as an IpError). Several
 * batches run under one `sh`: starting a process from Node costs more than the netlink calls
 * themselves, and forking the small shell is cheap. Commands that `ip -batch` cannot carry run
 * one process each.
 */
export async function ipBatches(batches: readonly IpBatch[]): Promise<void> {
  const todo = batches.filter((b) => b.commands.length > 0);
  const lines = todo.map((b) => b.commands.map((c) => c.map(batchArg)));
  if (lines.some((b) => b.some((l) => l.includes(null)))) {
    for (const b of todo) {
      for (const command of b.commands) {
        const [file, args] = argv(b.netns, command);
        const r = await runProcess(file, args);
        if (r.code !== 0) throw new IpError(command, r.stderr, b.netns);
      }
    }
    return;
  }
  const text = (i: number) => lines[i]!.map((l) => l.join(' ')).join('\n') + '\n';
  if (todo.length === 1) {
    const [file, args] = argv(todo[0]!.netns, ['-batch', '-']);
    const r = await runProcess(file, args, { input: text(0) });
    if (r.code !== 0) throw batchFailure(todo[0]!, r.stderr);
    return;
  }
  // Each batch reads its own here-document; exit 100+i names the batch that failed.
  const script = todo
    .map((b, i) => {
      const [file, args] = argv(b.netns, ['-batch', '-']);
      return `${[file, ...args].join(' ')} <<'VDPA_EOF' || exit ${100 + i}\n${text(i)}VDPA_EOF`;
    })
    .join('\n');
  const r = await runProcess(SH, ['-c', script]);
  if (r.code === 0) return;
  const failed = todo[(r.code ?? 0) - 100];
  throw failed ? batchFailure(failed, r.stderr) : new IpError(['-batch', '-'], r.stderr, null);
}

/** Runs the commands in order and stops at the first failure, which it throws as an IpError. */
export function ip(netns: Netns, commands: readonly IpCommand[]): Promise<void> {
  return ipBatches([{ netns, commands }]);
}

/**
 * One process for a change and a look: runs `batch` (its failure is returned, not thrown), then
 * lists the links of `listIn`.
 */
export async function ipThenListLinks(batch: IpBatch, listIn: Netns): Promise<{ error: IpError | null; links: Link[] }> {
  const lines = batch.commands.map((c) => c.map(batchArg));
  if (lines.some((l) => l.includes(null))) {
    const error = await ipBatches([batch]).then(
      () => null,
      (err: unknown) => {
        if (err instanceof IpError) return err;
        throw err;
      },
    );
    return { error, links: await listLinks(listIn) };
  }
  const [file, args] = argv(batch.netns, ['-batch', '-']);
  const [listFile, listArgs] = argv(listIn, ['-j', 'link', 'show']);
  const change = lines.length ? `${[file, ...args].join(' ')} <<'VDPA_EOF' || echo "VDPA_BATCH_FAILED" >&2\n${lines.map((l) => l.join(' ')).join('\n')}\nVDPA_EOF\n` : '';
  const r = await runProcess(SH, ['-c', `${change}exec ${[listFile, ...listArgs].join(' ')}`]);
  const failedBatch = r.stderr.includes('VDPA_BATCH_FAILED');
  if (r.code !== 0) throw new IpError(['-j', 'link', 'show'], r.stderr, listIn);
  const parsed: unknown = JSON.parse(r.stdout || '[]');
  return {
    error: failedBatch ? batchFailure(batch, r.stderr.replace(/\n?VDPA_BATCH_FAILED\s*/, '')) : null,
    links: (Array.isArray(parsed) ? parsed : []).map(toLink),
  };
}

async function ipJson(netns: Netns, args: readonly string[]): Promise<unknown[]> {
  const [file, argList] = argv(netns, ['-j', ...args]);
  const r = await runProcess(file, argList);
  if (r.code !== 0) throw new IpError(['-j', ...args], r.stderr, netns);
  const parsed: unknown = JSON.parse(r.stdout || '[]');
  return Array.isArray(parsed) ? parsed : [];
}

export interface Link {
  readonly ifindex: number;
  readonly name: string;
  readonly mac: string;
  readonly mtu: number;
  /** IFLA_IFALIAS; "" when unset. */
  readonly alias: string;
  /** Administratively up. */
  readonly up: boolean;
}

const rec = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

function toLink(raw: unknown): Link {
  const o = rec(raw);
  const flags = Array.isArray(o.flags) ? o.flags : [];
  return {
    ifindex: num(o.ifindex),
    name: str(o.ifname),
    mac: str(o.address),
    mtu: num(o.mtu),
    alias: str(o.ifalias),
    up: flags.includes('UP'),
  };
}

/** Every link of the netns, or just the one named `dev` (IpError with noDevice when it is missing). */
const IFF_UP = 0x1;

/**
 * One link of the plugin's own netns read from the kernel's /sys/class/net (not a fixture root:
 * these are the live attributes of a real netdev): no process to start. null when absent.
 */
export function readHostLink(name: string): Link | null {
  const dir = `/sys/class/net/${name}`;
  try {
    const attr = (a: string) => readFileSync(`${dir}/${a}`, 'utf8').trim();
    return {
      ifindex: Number(attr('ifindex')),
      name,
      mac: attr('address'),
      mtu: Number(attr('mtu')),
      alias: attr('ifalias'),
      up: (Number(attr('flags')) & IFF_UP) !== 0,
    };
  } catch {
    return null;
  }
}

export async function listLinks(netns: Netns, dev?: string): Promise<Link[]> {
  return (await ipJson(netns, dev ? ['link', 'show', 'dev', dev] : ['link', 'show'])).map(toLink);
}

export interface Address {
  readonly family: 4 | 6;
  readonly address: string;
  readonly prefix: number;
}

/** Global-scope addresses of one link. */
export async function listAddresses(netns: Netns, dev: string): Promise<Address[]> {
  const links = await ipJson(netns, ['addr', 'show', 'dev', dev, 'scope', 'global']);
  return links.flatMap((l) => {
    const infos = rec(l).addr_info;
    // ip prints an empty object for each address the scope filter drops.
    return (Array.isArray(infos) ? infos : []).map(rec).flatMap((o): Address[] =>
      typeof o.local === 'string' ? [{ family: o.family === 'inet6' ? 6 : 4, address: o.local, prefix: num(o.prefixlen) }] : [],
    );
  });
}

export interface Route {
  /** `default` or a CIDR as ip prints it (host routes without `/32`). */
  readonly dst: string;
  readonly gateway: string;
  readonly family: 4 | 6;
  readonly table: string;
}

/** Unicast routes through one link, all tables. */
export async function listRoutes(netns: Netns, dev: string): Promise<Route[]> {
  const read = async (family: 4 | 6) =>
    (await ipJson(netns, [`-${family}`, 'route', 'show', 'table', 'all', 'dev', dev]))
      .map(rec)
      .filter((r) => r.type === undefined || r.type === 'unicast')
      .map((r): Route => ({ dst: str(r.dst), gateway: str(r.gateway), family, table: str(r.table) || 'main' }));
  const [v4, v6] = await Promise.all([read(4), read(6)]);
  return [...v4, ...v6];
}

/** Runs `fn` with a fresh, empty network namespace that is removed afterwards. */
export async function withTempNetns<T>(prefix: string, fn: (path: string) => Promise<T>): Promise<T> {
  const name = `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await ip(null, [['netns', 'add', name]]);
  try {
    return await fn(`/run/netns/${name}`);
  } finally {
    await ip(null, [['netns', 'del', name]]);
  }
}

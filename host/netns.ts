/**
 * iproute2 in the host or inside a network namespace given by path. Commands are argv arrays;
 * several run in one `ip -batch -` process (a netns switch and a process start cost more than
 * the netlink calls themselves).
 */
import { readFileSync, readlinkSync, statfsSync } from 'node:fs';
import { bun } from './bun.js';
import { runProcess, systemTool } from './proc.js';
import { runRtnl } from './rtnl.js';

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

/** One word for `sh`: single-quoted, so nothing in it (`$(…)`, backquotes, globs) is expanded. */
const shWord = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;

/** A here-document delimiter that no line of `body` equals. */
function delimiter(body: string): string {
  const lines = new Set(body.split('\n'));
  let d = 'VDPA_EOF';
  while (lines.has(d)) d += '_';
  return d;
}

/** `ip … -batch -` reading `text` from a quoted here-document, as one line of a script. */
function batchLine(netns: Netns, text: string, flags: readonly string[], onFail: string): string {
  const [file, args] = argv(netns, [...flags, '-batch', '-']);
  const d = delimiter(text);
  return `${[file, ...args].map(shWord).join(' ')} <<'${d}' || ${onFail}\n${text}${d}`;
}

/** The failing command of a batch, from ip's "Command failed -:N" line. */
function batchFailure(batch: IpBatch, stderr: string): IpError {
  const line = Number(/Command failed -:(\d+)/.exec(stderr)?.[1] ?? 0);
  const failed = batch.commands[line - 1] ?? ['-batch', '-'];
  return new IpError(failed, stderr.replace(/\n?Command failed -:\d+\s*$/, ''), batch.netns);
}

const batchText = (lines: readonly (readonly (string | null)[])[]): string => lines.map((l) => l.join(' ')).join('\n') + '\n';

/**
 * Runs batches one after the other, stopping at the first failure (thrown as an IpError), and
 * returns what the last batch printed (`-j`: a `link show` in it prints JSON). On Node several
 * batches run under one `sh`: starting a process from Node costs more than the netlink calls
 * themselves, and forking the small shell is cheap; Bun starts each `ip` directly. Every word given to the shell is single-quoted and every
 * batch travels in a quoted here-document, so no path or name reaches the shell as code.
 * Commands that `ip -batch` cannot carry run one process each.
 */
export interface IpOptions {
  /**
   * false: `ip` processes even on Bun. Netlink from this process blocks its event loop for as
   * long as the kernel takes (a netns move takes it tens of milliseconds), which a caller running
   * other I/O beside the batch (OVSDB) does not want.
   */
  readonly inProcess?: boolean;
}

export async function ipBatches(batches: readonly IpBatch[], opts: IpOptions = {}): Promise<string> {
  const todo = batches.filter((b) => b.commands.length > 0);
  const lines = todo.map((b) => b.commands.map((c) => c.map(batchArg)));
  if (lines.some((b) => b.some((l) => l.includes(null)))) {
    let out = '';
    for (const b of todo) {
      for (const command of b.commands) {
        const [file, args] = argv(b.netns, ['-j', ...command]);
        const r = await runProcess(file, args);
        if (r.code !== 0) throw new IpError(command, r.stderr, b.netns);
        out = r.stdout;
      }
    }
    return out;
  }
  if (todo.length === 0) return '';
  // On Bun each batch is netlink messages from this process (host/rtnl.ts) where it can be, else
  // one `ip` after the other, no shell between: Bun starts processes cheaply.
  if (todo.length === 1 || bun) {
    let out = '';
    for (const [i, b] of todo.entries()) {
      const direct = bun && opts.inProcess !== false ? runRtnl(b.netns, b.commands) : null;
      if (direct !== null) {
        out = direct;
        continue;
      }
      const [file, args] = argv(b.netns, ['-j', '-batch', '-']);
      const r = await runProcess(file, args, { input: batchText(lines[i]!) });
      if (r.code !== 0) throw batchFailure(b, r.stderr);
      out = r.stdout;
    }
    return out;
  }
  // Exit 100+i names the batch that failed; only the last batch's output is kept.
  const script = todo.map((b, i) => batchLine(b.netns, batchText(lines[i]!), i === todo.length - 1 ? ['-j'] : [], `exit ${100 + i}`)).join('\n');
  const r = await runProcess(SH, ['-c', script], {});
  if (r.code === 0) return r.stdout;
  const failed = todo[(r.code ?? 0) - 100];
  throw failed ? batchFailure(failed, r.stderr) : new IpError(['-batch', '-'], r.stderr, null);
}

/** Runs the commands in order and stops at the first failure, which it throws as an IpError. */
export async function ip(netns: Netns, commands: readonly IpCommand[], opts: IpOptions = {}): Promise<void> {
  await ipBatches([{ netns, commands }], opts);
}

/**
 * One process for a change and a look: runs `batch` (its failure is returned, not thrown), then
 * lists the links of `listIn` with their details (parent device).
 */
export async function ipThenListLinks(batch: IpBatch, listIn: Netns): Promise<{ error: IpError | null; links: Link[] }> {
  const lines = batch.commands.map((c) => c.map(batchArg));
  // On Bun no shell: the change and the look each on their own (host/rtnl.ts, else `ip`).
  if (bun || lines.some((l) => l.includes(null))) {
    const error = await ipBatches([batch]).then(
      () => null,
      (err: unknown) => {
        if (err instanceof IpError) return err;
        throw err;
      },
    );
    return { error, links: await listLinks(listIn) };
  }
  const [listFile, listArgs] = argv(listIn, ['-d', '-j', 'link', 'show']);
  const change = lines.length ? `${batchLine(batch.netns, batchText(lines), [], 'echo "VDPA_BATCH_FAILED" >&2')}\n` : '';
  const r = await runProcess(SH, ['-c', `${change}exec ${[listFile, ...listArgs].map(shWord).join(' ')}`]);
  const failedBatch = r.stderr.includes('VDPA_BATCH_FAILED');
  if (r.code !== 0) throw new IpError(['-d', '-j', 'link', 'show'], r.stderr, listIn);
  const parsed: unknown = JSON.parse(r.stdout || '[]');
  return {
    error: failedBatch ? batchFailure(batch, r.stderr.replace(/\n?VDPA_BATCH_FAILED\s*/, '')) : null,
    links: (Array.isArray(parsed) ? parsed : []).map(toLink),
  };
}

/** The links a `-j` batch's `link show` lines printed (one JSON array per line). */
export function linksPrinted(stdout: string): Link[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('['))
    .flatMap((l) => {
      const parsed: unknown = JSON.parse(l);
      return Array.isArray(parsed) ? parsed.map(toLink) : [];
    });
}

async function ipJson(netns: Netns, args: readonly string[]): Promise<unknown[]> {
  const direct = bun && args[0] === '-d' ? runRtnl(netns, [args.slice(1)], ['-d']) : null;
  if (direct !== null) {
    const parsed: unknown = JSON.parse(direct || '[]');
    return Array.isArray(parsed) ? parsed : [];
  }
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
  /**
   * The device the netdev sits on (`ip -d` parentbus/parentdev; the sysfs `device` link), e.g.
   * `virtio/virtio3` for a vDPA VF's virtio netdev; null for virtual links such as veth. Moving
   * the link between namespaces keeps it, and nothing inside a pod can change or forge it.
   */
  readonly parent: string | null;
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
    parent: typeof o.parentbus === 'string' && typeof o.parentdev === 'string' ? `${o.parentbus}/${o.parentdev}` : null,
  };
}

const IFF_UP = 0x1;
const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/**
 * One link of the plugin's own netns read from the kernel's /sys/class/net (not a fixture root:
 * these are the live attributes of a real netdev): no process to start. null when absent.
 */
export function readHostLink(name: string): Link | null {
  if (!name || name.includes('/') || name === '.' || name === '..') return null;
  const dir = `/sys/class/net/${name}`;
  let parent: string | null = null;
  try {
    parent = `${basename(readlinkSync(`${dir}/device/subsystem`))}/${basename(readlinkSync(`${dir}/device`))}`;
  } catch {
    // A virtual link: no device below it.
  }
  try {
    const attr = (a: string) => readFileSync(`${dir}/${a}`, 'utf8').trim();
    return {
      parent,
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

/** Every link of the netns, or just the one named `dev` (IpError with noDevice when it is missing). */
export async function listLinks(netns: Netns, dev?: string): Promise<Link[]> {
  return (await ipJson(netns, ['-d', 'link', 'show', ...(dev ? ['dev', dev] : [])])).map(toLink);
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

/**
 * rtnetlink in the process, for the Bun-built CNI: the `ip` commands host/netns.ts issues, sent
 * as netlink messages on a NETLINK_ROUTE socket, instead of one `ip` process per batch (about
 * 4 ms each here, most of it exec and dynamic linking, twice per ADD and per DEL). A socket for
 * another netns is opened inside it: setns(2) on this thread, socket(2), setns back, with nothing
 * in between; the socket stays in that netns. Messages are those iproute2 sends for the same
 * command (one RTM_NEWLINK per `link set`, with the link found by name first).
 *
 * Only the command forms host/netns.ts builds are understood (`runRtnl` returns null for the
 * rest, which then go to `ip` as before), and only on Bun (bun:ffi); Node always runs `ip`.
 * Failures become IpErrors with iproute2's wording, so callers tell them apart the same way.
 */
import { closeSync, openSync } from 'node:fs';
import { bun } from './bun.js';
import { IpError, type IpCommand, type Netns } from './netns.js';

// ---- libc through bun:ffi --------------------------------------------------------------------

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number;
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  errno(): number;
}

interface BunFfiLib {
  symbols: {
    socket(d: number, t: number, p: number): number;
    send(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
    recv(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
    setns(fd: number, t: number): number;
    close(fd: number): number;
    __errno_location(): number;
  };
}

interface BunFfi {
  dlopen(lib: string, symbols: Record<string, { args: string[]; returns: string }>): BunFfiLib;
  read: { i32(ptr: number, offset?: number): number };
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (!bun) return null;
  try {
    const ffi = process.getBuiltinModule('bun:ffi') as BunFfi | undefined;
    if (!ffi) return null;
    const { symbols: s } = ffi.dlopen('libc.so.6', {
      socket: { args: ['i32', 'i32', 'i32'], returns: 'i32' },
      send: { args: ['i32', 'ptr', 'u64', 'i32'], returns: 'i64' },
      recv: { args: ['i32', 'ptr', 'u64', 'i32'], returns: 'i64' },
      setns: { args: ['i32', 'i32'], returns: 'i32' },
      close: { args: ['i32'], returns: 'i32' },
      __errno_location: { args: [], returns: 'ptr' },
    });
    libc = {
      socket: (d, t, p) => s.socket(d, t, p),
      send: (fd, buf, len, flags) => Number(s.send(fd, buf, len, flags)),
      recv: (fd, buf, len, flags) => Number(s.recv(fd, buf, len, flags)),
      setns: (fd, t) => s.setns(fd, t),
      close: (fd) => s.close(fd),
      errno: () => ffi.read.i32(s.__errno_location(), 0),
    };
  } catch {
    libc = null;
  }
  return libc;
}

// ---- netlink constants -----------------------------------------------------------------------

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const CLONE_NEWNET = 0x40000000;

const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_EXT_MASK = 29;
const IFLA_PARENT_DEV_NAME = 56;
const IFLA_PARENT_DEV_BUS_NAME = 57;
const RTEXT_FILTER_VF = 1;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RT_SCOPE_LINK = 253;
const RT_TABLE_MAIN = 254;

const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;

/** What iproute2 prints for the errors these commands meet (strerror's words). */
const ERRNO_TEXT: Readonly<Record<number, string>> = {
  1: 'Operation not permitted',
  2: 'No such file or directory',
  3: 'No such process',
  13: 'Permission denied',
  16: 'Device or resource busy',
  17: 'File exists',
  19: 'No such device',
  22: 'Invalid argument',
  34: 'Numerical result out of range',
  95: 'Operation not supported',
  98: 'Address already in use',
  99: 'Cannot assign requested address',
  101: 'Network is unreachable',
};
const errnoText = (e: number): string => ERRNO_TEXT[e] ?? `errno ${e}`;

// ---- messages --------------------------------------------------------------------------------

const align4 = (n: number): number => (n + 3) & ~3;

/** A netlink message under construction: header, fixed part, attributes. */
class Message {
  private readonly parts: Buffer[] = [];

  constructor(
    private readonly type: number,
    private readonly flags: number,
    fixed: Buffer,
  ) {
    this.parts.push(fixed);
  }

  attr(type: number, data: Buffer): this {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + data.length, 0);
    head.writeUInt16LE(type, 2);
    this.parts.push(head, data, Buffer.alloc(align4(data.length) - data.length));
    return this;
  }

  u32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return this.attr(type, b);
  }

  /** A string with its terminating NUL, as iproute2 sends names. */
  str(type: number, v: string): this {
    return this.attr(type, Buffer.concat([Buffer.from(v), Buffer.alloc(1)]));
  }

  bytes(seq: number): Buffer {
    const body = Buffer.concat(this.parts);
    const head = Buffer.alloc(16);
    head.writeUInt32LE(16 + body.length, 0);
    head.writeUInt16LE(this.type, 4);
    head.writeUInt16LE(this.flags, 6);
    head.writeUInt32LE(seq, 8);
    return Buffer.concat([head, body]);
  }
}

function ifinfo(index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

interface Attrs {
  readonly map: Map<number, Buffer>;
}

function parseAttrs(buf: Buffer, from: number, to: number): Attrs {
  const map = new Map<number, Buffer>();
  let at = from;
  while (at + 4 <= to) {
    const len = buf.readUInt16LE(at);
    if (len < 4) break;
    map.set(buf.readUInt16LE(at + 2) & 0x3fff, buf.subarray(at + 4, at + len));
    at += align4(len);
  }
  return { map };
}

const cstr = (b: Buffer | undefined): string => {
  if (!b) return '';
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
};

/** A link as `ip -j link show` prints it (the fields host/netns.ts reads). */
interface LinkJson {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  ifalias?: string;
  parentbus?: string;
  parentdev?: string;
}

function linkOf(buf: Buffer, at: number, end: number, details: boolean): LinkJson {
  const index = buf.readInt32LE(at + 16 + 4);
  const flags = buf.readUInt32LE(at + 16 + 8);
  const { map } = parseAttrs(buf, at + 32, end);
  const mtu = map.get(IFLA_MTU);
  const mac = map.get(IFLA_ADDRESS);
  const alias = cstr(map.get(IFLA_IFALIAS));
  const link: LinkJson = {
    ifindex: index,
    ifname: cstr(map.get(IFLA_IFNAME)),
    flags: [...(flags & IFF_UP ? ['UP'] : []), ...(flags & IFF_LOWER_UP ? ['LOWER_UP'] : [])],
    mtu: mtu ? mtu.readUInt32LE(0) : 0,
  };
  if (mac) link.address = [...mac].map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (alias) link.ifalias = alias;
  const bus = map.get(IFLA_PARENT_DEV_BUS_NAME);
  const dev = map.get(IFLA_PARENT_DEV_NAME);
  if (details && bus && dev) {
    link.parentbus = cstr(bus);
    link.parentdev = cstr(dev);
  }
  return link;
}

// ---- the socket ------------------------------------------------------------------------------

/** Thrown inside a batch: the message the kernel refused, with its errno. */
class NetlinkError extends Error {
  constructor(readonly errno: number) {
    super(`RTNETLINK answers: ${errnoText(errno)}`);
  }
}

class Rtnl {
  private seq = 1;
  private readonly buf = Buffer.alloc(64 * 1024);

  private constructor(
    private readonly c: Libc,
    private readonly fd: number,
  ) {}

  /** A NETLINK_ROUTE socket in `netns` (null: this thread's own); null when one cannot be had. */
  static open(c: Libc, netns: Netns): Rtnl | null {
    const fresh = () => c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (netns === null) {
      const fd = fresh();
      return fd < 0 ? null : new Rtnl(c, fd);
    }
    let target: number;
    let home: number;
    try {
      target = openSync(netns, 'r');
    } catch {
      return null;
    }
    try {
      home = openSync('/proc/thread-self/ns/net', 'r');
    } catch {
      closeSync(target);
      return null;
    }
    try {
      if (c.setns(target, CLONE_NEWNET) !== 0) return null;
      const fd = fresh();
      // Back before anything else runs on this thread; a thread that cannot go back is not usable.
      if (c.setns(home, CLONE_NEWNET) !== 0) throw new Error('cannot return to the netns of the CNI after opening a netlink socket');
      return fd < 0 ? null : new Rtnl(c, fd);
    } finally {
      closeSync(target);
      closeSync(home);
    }
  }

  close(): void {
    this.c.close(this.fd);
  }

  /** Sends one request and collects the replies: the messages of a dump, or none for an ACK. */
  request(msg: Message, dump = false): { buf: Buffer; at: number; end: number }[] {
    const seq = this.seq++;
    const out = msg.bytes(seq);
    if (this.c.send(this.fd, out, out.length, 0) !== out.length) throw new NetlinkError(this.c.errno());
    const replies: { buf: Buffer; at: number; end: number }[] = [];
    for (;;) {
      const n = this.c.recv(this.fd, this.buf, this.buf.length, 0);
      if (n < 0) throw new NetlinkError(this.c.errno());
      const chunk = Buffer.from(this.buf.subarray(0, n));
      let at = 0;
      while (at + 16 <= n) {
        const len = chunk.readUInt32LE(at);
        const type = chunk.readUInt16LE(at + 4);
        if (len < 16 || chunk.readUInt32LE(at + 8) !== seq) {
          at += align4(Math.max(len, 16));
          continue;
        }
        if (type === NLMSG_ERROR) {
          const err = -chunk.readInt32LE(at + 16);
          if (err !== 0) throw new NetlinkError(err);
          return replies;
        }
        if (type === NLMSG_DONE) return replies;
        replies.push({ buf: chunk, at, end: at + len });
        if (!dump) return replies;
        at += align4(len);
      }
    }
  }

  /** ifindex of a link by name, or IpError "Cannot find device" as `ip` says it. */
  indexOf(name: string, command: IpCommand, netns: Netns): number {
    try {
      const [reply] = this.request(new Message(RTM_GETLINK, NLM_F_REQUEST, ifinfo(0)).str(IFLA_IFNAME, name).u32(IFLA_EXT_MASK, RTEXT_FILTER_VF));
      if (reply) return reply.buf.readInt32LE(reply.at + 16 + 4);
    } catch (err) {
      if (!(err instanceof NetlinkError) || err.errno !== 19) throw err;
    }
    throw new IpError(command, `Cannot find device "${name}"`, netns);
  }

  links(details: boolean, name?: string): LinkJson[] {
    if (name !== undefined) {
      const [reply] = this.request(new Message(RTM_GETLINK, NLM_F_REQUEST, ifinfo(0)).str(IFLA_IFNAME, name).u32(IFLA_EXT_MASK, RTEXT_FILTER_VF));
      return reply ? [linkOf(reply.buf, reply.at, reply.end, details)] : [];
    }
    return this.request(new Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, ifinfo(0)).u32(IFLA_EXT_MASK, RTEXT_FILTER_VF), true).map((r) =>
      linkOf(r.buf, r.at, r.end, details),
    );
  }
}

// ---- commands --------------------------------------------------------------------------------

/** One command as netlink work; null when it is not a form this module knows. */
type Step = (nl: Rtnl, netns: Netns) => string | null;

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
const DECIMAL = /^\d+$/;

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

/** `link set dev X [netns PATH] [name N] [address M] [mtu N] [alias A] [up|down]`. */
function linkSet(cmd: IpCommand): Step | null {
  if (cmd[0] !== 'link' || cmd[1] !== 'set' || cmd[2] !== 'dev' || cmd[3] === undefined) return null;
  const dev = cmd[3];
  const set: { netns?: string; name?: string; mac?: string; mtu?: number; alias?: string; up?: boolean } = {};
  for (let i = 4; i < cmd.length; i++) {
    const word = cmd[i]!;
    const value = cmd[i + 1];
    if (word === 'up' || word === 'down') set.up = word === 'up';
    else if (value === undefined) return null;
    else if (word === 'netns' && value.startsWith('/')) (set.netns = value), i++;
    else if (word === 'name') (set.name = value), i++;
    else if (word === 'address' && MAC.test(value)) (set.mac = value), i++;
    else if (word === 'mtu' && DECIMAL.test(value)) (set.mtu = Number(value)), i++;
    else if (word === 'alias') (set.alias = value), i++;
    else return null;
  }
  return (nl, netns) => {
    const index = nl.indexOf(dev, cmd, netns);
    const msg = new Message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, ifinfo(index, set.up ? IFF_UP : 0, set.up === undefined ? 0 : IFF_UP));
    let nsFd: number | null = null;
    try {
      if (set.netns !== undefined) {
        try {
          nsFd = openSync(set.netns, 'r');
        } catch (err) {
          throw new IpError(cmd, `Invalid "netns" value "${set.netns}": ${(err as Error).message}`, netns);
        }
        msg.u32(IFLA_NET_NS_FD, nsFd);
      }
      if (set.name !== undefined) msg.str(IFLA_IFNAME, set.name);
      if (set.mac !== undefined) msg.attr(IFLA_ADDRESS, macBytes(set.mac));
      if (set.mtu !== undefined) msg.u32(IFLA_MTU, set.mtu);
      if (set.alias !== undefined) msg.attr(IFLA_IFALIAS, Buffer.from(set.alias));
      nl.request(msg);
    } finally {
      if (nsFd !== null) closeSync(nsFd);
    }
    return null;
  };
}

/** `link show [dev X]`, printed as `ip -j` prints it. */
function linkShow(cmd: IpCommand, details: boolean): Step | null {
  if (cmd[0] !== 'link' || cmd[1] !== 'show') return null;
  if (cmd.length === 2) return (nl) => JSON.stringify(nl.links(details));
  if (cmd.length === 4 && cmd[2] === 'dev') {
    const dev = cmd[3]!;
    return (nl, netns) => {
      nl.indexOf(dev, cmd, netns);
      return JSON.stringify(nl.links(details, dev));
    };
  }
  return null;
}

interface Prefix {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
  readonly len: number;
}

function ipBytes(ip: string): { family: 4 | 6; bytes: Buffer } | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    const parts = ip.split('.').map(Number);
    return parts.every((p) => p <= 255) ? { family: 4, bytes: Buffer.from(parts) } : null;
  }
  if (!ip.includes(':') || /[^0-9a-fA-F:]/.test(ip)) return null;
  const halves = ip.split('::');
  if (halves.length > 2) return null;
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const head = words(halves[0]!);
  const tail = halves.length === 2 ? words(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) return null;
  const all = [...head, ...Array<string>(Math.max(fill, 0)).fill('0'), ...tail];
  if (all.some((w) => w.length === 0 || w.length > 4)) return null;
  const bytes = Buffer.alloc(16);
  all.forEach((w, i) => bytes.writeUInt16BE(parseInt(w, 16), i * 2));
  return { family: 6, bytes };
}

function prefixOf(text: string): Prefix | null {
  const slash = text.indexOf('/');
  const ip = ipBytes(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return null;
  const max = ip.family === 4 ? 32 : 128;
  const len = slash < 0 ? max : Number(text.slice(slash + 1));
  return Number.isInteger(len) && len >= 0 && len <= max && (slash < 0 || DECIMAL.test(text.slice(slash + 1))) ? { ...ip, len } : null;
}

const familyByte = (f: 4 | 6): number => (f === 4 ? 2 : 10);

/** `addr add CIDR dev X [nodad]`. */
function addrAdd(cmd: IpCommand): Step | null {
  if (cmd[0] !== 'addr' || cmd[1] !== 'add' || cmd[3] !== 'dev' || cmd[4] === undefined) return null;
  const p = prefixOf(cmd[2] ?? '');
  const nodad = cmd[5] === 'nodad';
  if (!p || !p.bytes || cmd.length > (nodad ? 6 : 5)) return null;
  const dev = cmd[4];
  return (nl, netns) => {
    const index = nl.indexOf(dev, cmd, netns);
    const fixed = Buffer.alloc(8);
    fixed.writeUInt8(familyByte(p.family), 0);
    fixed.writeUInt8(p.len, 1);
    fixed.writeUInt32LE(index, 4);
    const msg = new Message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, fixed).attr(IFA_LOCAL, p.bytes).attr(IFA_ADDRESS, p.bytes);
    if (nodad) msg.u32(IFA_FLAGS, IFA_F_NODAD);
    nl.request(msg);
    return null;
  };
}

/** `route add DST [via GW] dev X [metric N] [table N] [mtu N] [advmss N] [scope N]`. */
function routeAdd(cmd: IpCommand): Step | null {
  if (cmd[0] !== 'route' || cmd[1] !== 'add' || cmd[2] === undefined) return null;
  const dst = cmd[2] === 'default' ? null : prefixOf(cmd[2]);
  if (cmd[2] !== 'default' && !dst) return null;
  let gw: ReturnType<typeof ipBytes> = null;
  let dev: string | undefined;
  const num: Record<string, number> = {};
  for (let i = 3; i < cmd.length; i += 2) {
    const word = cmd[i]!;
    const value = cmd[i + 1];
    if (value === undefined) return null;
    if (word === 'via') {
      gw = ipBytes(value);
      if (!gw) return null;
    } else if (word === 'dev') dev = value;
    else if (['metric', 'table', 'mtu', 'advmss', 'scope'].includes(word) && DECIMAL.test(value)) num[word] = Number(value);
    else return null;
  }
  const family = dst?.family ?? gw?.family;
  if (dev === undefined || family === undefined || (gw && gw.family !== family)) return null;
  const oif = dev;
  return (nl, netns) => {
    const index = nl.indexOf(oif, cmd, netns);
    const table = num.table ?? RT_TABLE_MAIN;
    const fixed = Buffer.alloc(12);
    fixed.writeUInt8(familyByte(family), 0);
    fixed.writeUInt8(dst?.len ?? 0, 1);
    fixed.writeUInt8(table < 256 ? table : 0, 4);
    fixed.writeUInt8(RTPROT_BOOT, 5);
    // As iproute2: a unicast route without a gateway has link scope unless one is given.
    fixed.writeUInt8(num.scope ?? (gw ? 0 : RT_SCOPE_LINK), 6);
    fixed.writeUInt8(RTN_UNICAST, 7);
    const msg = new Message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, fixed);
    if (dst) msg.attr(RTA_DST, dst.bytes);
    if (gw) msg.attr(RTA_GATEWAY, gw.bytes);
    msg.u32(RTA_OIF, index);
    if (num.metric !== undefined) msg.u32(RTA_PRIORITY, num.metric);
    msg.u32(RTA_TABLE, table);
    if (num.mtu !== undefined || num.advmss !== undefined) {
      const metrics = new Message(0, 0, Buffer.alloc(0));
      if (num.mtu !== undefined) metrics.u32(RTAX_MTU, num.mtu);
      if (num.advmss !== undefined) metrics.u32(RTAX_ADVMSS, num.advmss);
      msg.attr(RTA_METRICS, metrics.bytes(0).subarray(16));
    }
    nl.request(msg);
    return null;
  };
}

function stepOf(cmd: IpCommand, details: boolean): Step | null {
  return linkSet(cmd) ?? linkShow(cmd, details) ?? addrAdd(cmd) ?? routeAdd(cmd);
}

/**
 * Runs `commands` in `netns` as `ip [flags] -batch` would, stopping at the first failure (thrown
 * as an IpError naming that command) and returning what the `link show` commands printed, one
 * JSON array a line; null, having done nothing, when this cannot: not on Bun, no FFI, a netns
 * that cannot be entered, or a command of a form it does not know.
 */
export function runRtnl(netns: Netns, commands: readonly IpCommand[], flags: readonly string[] = []): string | null {
  const c = loadLibc();
  if (!c) return null;
  const details = flags.includes('-d');
  const steps = commands.map((cmd) => stepOf(cmd, details));
  if (steps.some((s) => s === null)) return null;
  const nl = Rtnl.open(c, netns);
  if (!nl) return null;
  const printed: string[] = [];
  try {
    steps.forEach((step, i) => {
      try {
        const out = step!(nl, netns);
        if (out !== null) printed.push(out);
      } catch (err) {
        if (err instanceof NetlinkError) throw new IpError(commands[i]!, err.message, netns);
        throw err;
      }
    });
  } finally {
    nl.close();
  }
  return printed.map((l) => `${l}\n`).join('');
}

/**
 * A small OVSDB client (RFC 7047 JSON-RPC over a unix or TCP stream): transact, monitor,
 * monitor_cond, echo. ovsdb-server frames nothing: messages are JSON values written back to
 * back, so the reader splits the byte stream itself.
 */
import { bun } from './bun.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---- OVSDB values (RFC 7047 §5.1) -------------------------------------------------------

export type OvsUuid = ['uuid', string];
export type OvsNamedUuid = ['named-uuid', string];
export type OvsAtom = string | number | boolean | OvsUuid | OvsNamedUuid;
export type OvsSet = ['set', OvsAtom[]];
export type OvsMap = ['map', [OvsAtom, OvsAtom][]];
export type OvsValue = OvsAtom | OvsSet | OvsMap;
export type Row = Record<string, OvsValue>;

export const uuid = (id: string): OvsUuid => ['uuid', id];
export const namedUuid = (name: string): OvsNamedUuid => ['named-uuid', name];
export const ovsSet = (atoms: readonly OvsAtom[]): OvsSet => ['set', [...atoms]];
export const ovsMap = (entries: Readonly<Record<string, string>>): OvsMap => ['map', Object.entries(entries)];

/** The members of a set column; OVSDB sends a one-element set as the bare atom. */
export function setAtoms(v: OvsValue | undefined): OvsAtom[] {
  if (v === undefined) return [];
  if (Array.isArray(v) && v[0] === 'set') return v[1];
  if (Array.isArray(v) && v[0] === 'map') throw new TypeError('expected an OVSDB set, got a map');
  return [v as OvsAtom];
}

/** A string→string map column (external_ids, other_config, options…). */
export function stringMap(v: OvsValue | undefined): Record<string, string> {
  if (v === undefined) return {};
  if (!Array.isArray(v) || v[0] !== 'map') throw new TypeError(`expected an OVSDB map, got ${JSON.stringify(v)}`);
  return Object.fromEntries(
    v[1].map(([k, val]) => {
      if (typeof k !== 'string' || typeof val !== 'string') {
        throw new TypeError(`expected a string map, got entry ${JSON.stringify([k, val])}`);
      }
      return [k, val];
    }),
  );
}

/** The UUID string of a uuid atom (a `_uuid` column or a reference). */
export function uuidOf(v: OvsValue | undefined): string {
  if (Array.isArray(v) && v[0] === 'uuid' && typeof v[1] === 'string') return v[1];
  throw new TypeError(`expected an OVSDB uuid, got ${JSON.stringify(v)}`);
}

/** UUID strings of a set-of-references column (Bridge.ports, Port.interfaces). */
export const uuidsOf = (v: OvsValue | undefined): string[] => setAtoms(v).map(uuidOf);

/** A scalar string column, or undefined when absent or an empty optional. */
export function stringOf(v: OvsValue | undefined): string | undefined {
  const [first] = setAtoms(v);
  return typeof first === 'string' ? first : undefined;
}

/**
 * Applies a monitor_cond `modify` diff to a map column (ovsdb-server(7), update2): a key absent
 * before is added, a key with the same value is removed, a key with another value is updated.
 */
export function applyMapDiff(old: Readonly<Record<string, string>>, diff: OvsValue | undefined): Record<string, string> {
  const next = { ...old };
  for (const [k, v] of Object.entries(stringMap(diff))) {
    if (Object.hasOwn(next, k) && next[k] === v) delete next[k];
    else next[k] = v;
  }
  return next;
}

function decodeAtom(j: Json, where: string): OvsAtom {
  if (typeof j === 'string' || typeof j === 'number' || typeof j === 'boolean') return j;
  if (Array.isArray(j) && j.length === 2 && typeof j[1] === 'string' && (j[0] === 'uuid' || j[0] === 'named-uuid')) {
    return [j[0], j[1]];
  }
  throw new OvsdbProtocolError(`${where}: malformed OVSDB atom ${JSON.stringify(j)}`);
}

function decodeValue(j: Json, where: string): OvsValue {
  if (Array.isArray(j) && j.length === 2 && Array.isArray(j[1])) {
    if (j[0] === 'set') return ['set', j[1].map((a) => decodeAtom(a, where))];
    if (j[0] === 'map') {
      return [
        'map',
        j[1].map((pair): [OvsAtom, OvsAtom] => {
          if (!Array.isArray(pair) || pair.length !== 2) {
            throw new OvsdbProtocolError(`${where}: malformed OVSDB map entry ${JSON.stringify(pair)}`);
          }
          return [decodeAtom(pair[0]!, where), decodeAtom(pair[1]!, where)];
        }),
      ];
    }
  }
  return decodeAtom(j, where);
}

function decodeRow(j: Json | undefined, where: string): Row {
  if (!isObject(j)) throw new OvsdbProtocolError(`${where}: expected a row object, got ${JSON.stringify(j)}`);
  return Object.fromEntries(Object.entries(j).map(([col, v]) => [col, decodeValue(v, `${where}.${col}`)]));
}

// ---- Operations (RFC 7047 §5.2) ----------------------------------------------------------

export type ConditionFunction = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'includes' | 'excludes';
export type Condition = [column: string, fn: ConditionFunction, value: OvsValue];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type Mutation = [column: string, mutator: Mutator, value: OvsValue];

export interface InsertOp { op: 'insert'; table: string; row: Row; 'uuid-name'?: string }
export interface SelectOp { op: 'select'; table: string; where: Condition[]; columns?: string[] }
export interface UpdateOp { op: 'update'; table: string; where: Condition[]; row: Row }
export interface MutateOp { op: 'mutate'; table: string; where: Condition[]; mutations: Mutation[] }
export interface DeleteOp { op: 'delete'; table: string; where: Condition[] }
export interface WaitOp {
  op: 'wait';
  table: string;
  where: Condition[];
  columns: string[];
  until: '==' | '!=';
  rows: Row[];
  /** Milliseconds the server may wait for the condition; 0 (default) makes it an assertion. */
  timeout?: number;
}
export interface CommentOp { op: 'comment'; comment: string }
export interface AssertOp { op: 'assert'; lock: string }
export type Operation = InsertOp | SelectOp | UpdateOp | MutateOp | DeleteOp | WaitOp | CommentOp | AssertOp;

export interface InsertResult { uuid: string }
export interface SelectResult { rows: Row[] }
export interface CountResult { count: number }
export type EmptyResult = Record<string, never>;

export type ResultOf<O extends Operation> = O extends InsertOp
  ? InsertResult
  : O extends SelectOp
    ? SelectResult
    : O extends UpdateOp | MutateOp | DeleteOp
      ? CountResult
      : EmptyResult;
export type TransactResults<Ops extends readonly Operation[]> = { -readonly [K in keyof Ops]: ResultOf<Ops[K]> };

/** A short human form of an operation for error messages: `wait Bridge where name == "br-int"`. */
export function describeOperation(op: Operation): string {
  if (op.op === 'comment' || op.op === 'assert') return op.op;
  const where =
    'where' in op && op.where.length
      ? ` where ${op.where.map(([c, f, v]) => `${c} ${f} ${JSON.stringify(v)}`).join(' and ')}`
      : '';
  return `${op.op} ${op.table}${where}`;
}

/** An operation the server refused, or a commit that failed (constraint, referential integrity). */
export class OvsdbError extends Error {
  override name = 'OvsdbError';
  constructor(
    readonly db: string,
    /** `error` member, e.g. "constraint violation", "timed out". */
    readonly error: string,
    readonly details: string | undefined,
    /** Index of the failed operation; undefined when the commit itself failed. */
    readonly opIndex: number | undefined,
    readonly operation: Operation | undefined,
    opCount: number,
  ) {
    const what =
      opIndex === undefined
        ? 'failed to commit'
        : `failed at operation ${opIndex + 1} of ${opCount} (${describeOperation(operation!)})`;
    super(`OVSDB transaction on ${db} ${what}: ${error}${details ? `: ${details}` : ''}`);
  }
}

/** The connection broke, timed out, or the server spoke something that is not OVSDB JSON-RPC. */
export class OvsdbProtocolError extends Error {
  override name = 'OvsdbProtocolError';
}

function decodeResult(op: Operation, r: { [key: string]: Json }, where: string): InsertResult | SelectResult | CountResult | EmptyResult {
  switch (op.op) {
    case 'insert':
      return { uuid: uuidOf(decodeValue(r.uuid ?? null, `${where}.uuid`)) };
    case 'select': {
      const rows = r.rows;
      if (!Array.isArray(rows)) throw new OvsdbProtocolError(`${where}: select result has no rows`);
      return { rows: rows.map((row, i) => decodeRow(row, `${where}.rows[${i}]`)) };
    }
    case 'update':
    case 'mutate':
    case 'delete':
      if (typeof r.count !== 'number') throw new OvsdbProtocolError(`${where}: ${op.op} result has no count`);
      return { count: r.count };
    default:
      return {};
  }
}

// ---- Monitors (RFC 7047 §4.1.5, ovsdb-server(7) monitor_cond) ---------------------------

export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}
export interface MonitorCondRequest extends MonitorRequest {
  where?: Condition[];
}

/** `update` (monitor): `new` is the whole monitored row; `old` holds the changed columns. */
export interface RowUpdate {
  old?: Row;
  new?: Row;
}
/** `update2` (monitor_cond): `modify` carries a diff, see applyMapDiff. */
export type RowUpdate2 = { kind: 'initial' | 'insert'; row: Row } | { kind: 'modify'; diff: Row } | { kind: 'delete' };

export type TableUpdates<U> = Record<string, Record<string, U>>;

export interface Monitor {
  readonly id: string;
  /** Stops the notifications (monitor_cancel); a no-op once the connection is gone. */
  cancel(): Promise<void>;
}

function decodeUpdates<U>(j: Json | undefined, where: string, row: (u: Json, at: string) => U): TableUpdates<U> {
  if (!isObject(j)) throw new OvsdbProtocolError(`${where}: expected table updates`);
  return Object.fromEntries(
    Object.entries(j).map(([table, rows]) => {
      if (!isObject(rows)) throw new OvsdbProtocolError(`${where}.${table}: expected row updates`);
      return [table, Object.fromEntries(Object.entries(rows).map(([id, u]) => [id, row(u, `${where}.${table}.${id}`)]))];
    }),
  );
}

function decodeRowUpdate(u: Json, at: string): RowUpdate {
  if (!isObject(u)) throw new OvsdbProtocolError(`${at}: expected a row update`);
  const out: RowUpdate = {};
  if (u.old !== undefined) out.old = decodeRow(u.old, `${at}.old`);
  if (u.new !== undefined) out.new = decodeRow(u.new, `${at}.new`);
  return out;
}

function decodeRowUpdate2(u: Json, at: string): RowUpdate2 {
  if (isObject(u)) {
    if (u.initial !== undefined) return { kind: 'initial', row: decodeRow(u.initial, `${at}.initial`) };
    if (u.insert !== undefined) return { kind: 'insert', row: decodeRow(u.insert, `${at}.insert`) };
    if (u.modify !== undefined) return { kind: 'modify', diff: decodeRow(u.modify, `${at}.modify`) };
    if ('delete' in u) return { kind: 'delete' };
  }
  throw new OvsdbProtocolError(`${at}: malformed update2 row ${JSON.stringify(u)}`);
}

// ---- Stream framing ----------------------------------------------------------------------

const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c;
const isJsonSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Splits a byte stream of concatenated JSON objects/arrays into one text per value, across
 * chunk boundaries. Tracks strings and escapes so braces inside strings don't count; works on
 * bytes, so a multi-byte UTF-8 character split between chunks is joined before decoding.
 */
export class JsonStreamSplitter {
  private pending: Buffer[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;

  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = this.depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
        continue;
      }
      if (this.depth === 0) {
        if (isJsonSpace(b)) continue;
        if (b !== OPEN_BRACE && b !== OPEN_BRACKET) {
          throw new OvsdbProtocolError(`unexpected byte 0x${b.toString(16)} between JSON-RPC messages`);
        }
        start = i;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--this.depth === 0) {
          this.pending.push(chunk.subarray(start, i + 1));
          out.push(Buffer.concat(this.pending).toString('utf8'));
          this.pending = [];
          start = -1;
        }
      }
    }
    if (start >= 0) this.pending.push(chunk.subarray(start));
    return out;
  }
}

// ---- The client --------------------------------------------------------------------------

/** Where ovsdb-server listens on a standard install; the default of every OVSDB remote we take. */
export const DEFAULT_OVSDB = 'unix:/var/run/openvswitch/db.sock';

export interface OvsdbClientOptions {
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** Default timeout of each request; default 30000 (ovs-vsctl's --timeout in ovn-kubernetes). */
  requestTimeoutMs?: number;
}

interface Pending {
  method: string;
  resolve(result: Json): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

type MonitorHandler = (method: string, updates: Json | undefined) => void;

function isObject(j: Json | undefined): j is { [key: string]: Json } {
  return typeof j === 'object' && j !== null && !Array.isArray(j);
}

type RemoteTarget = { path: string } | { host: string; port: number };

/**
 * `unix:/path`, `tcp:host:port`, `tcp:[v6]:port`; null for anything else. A unix path must be
 * absolute: OVS's own tools read a relative one against their run directory, we would read it
 * against whatever directory we were started in.
 */
function remoteTarget(remote: string): RemoteTarget | null {
  if (/^unix:\/./.test(remote)) return { path: remote.slice(5) };
  const tcp = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(remote);
  return tcp ? { host: tcp[1] ?? tcp[2]!, port: Number(tcp[3]) } : null;
}

/**
 * What is wrong with the syntax of an OVSDB remote, or null when the client can connect to it.
 * Callers that read a remote from a config file put the field's name in front of the answer.
 */
export function ovsdbRemoteProblem(remote: string): string | null {
  return remoteTarget(remote) ? null : 'must be unix:/<path> or tcp:<host>:<port>';
}

export function parseRemote(remote: string): RemoteTarget {
  const target = remoteTarget(remote);
  if (!target) throw new TypeError(`unsupported OVSDB remote "${remote}": ${ovsdbRemoteProblem(remote)}`);
  return target;
}

/** The byte stream under a client: node:net on Node, Bun.connect on Bun (no Node streams there). */
interface Transport {
  write(text: string): void;
  destroy(): void;
}

interface TransportEvents {
  data(chunk: Buffer): void;
  error(err: Error): void;
  close(): void;
}

/** A connection being made; abort() drops it, even once it has been made. */
interface Opening {
  readonly ready: Promise<Transport>;
  abort(): void;
}

function openNodeTransport(target: RemoteTarget, events: TransportEvents): Opening {
  // Loaded on first use: a call that never talks to OVSDB does not pay for node:net.
  const socket = process.getBuiltinModule('node:net').connect(target);
  const ready = new Promise<Transport>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => events.data(chunk));
      socket.on('error', (err) => events.error(err));
      socket.on('close', () => events.close());
      resolve({ write: (text) => void socket.write(text), destroy: () => socket.destroy() });
    });
  });
  return { ready, abort: () => socket.destroy() };
}

function openBunTransport(target: RemoteTarget, events: TransportEvents): Opening {
  let aborted = false;
  // What the kernel did not take yet, sent again on drain; writes queue behind it, in order.
  let backlog: Buffer = Buffer.alloc(0);
  const send = (socket: { write(data: Uint8Array): number }, data: Buffer) => {
    backlog = backlog.length ? Buffer.concat([backlog, data]) : data;
    while (backlog.length) {
      const n = socket.write(backlog);
      if (n <= 0) break;
      backlog = backlog.subarray(n);
    }
  };
  const where = 'path' in target ? { unix: target.path } : { hostname: target.host, port: target.port };
  const connecting = bun!.connect({
    ...where,
    socket: {
      data: (_s, chunk) => events.data(chunk),
      drain: (s) => send(s, Buffer.alloc(0)),
      close: () => events.close(),
      error: (_s, err) => events.error(err),
    },
  });
  const ready = connecting.then((socket): Transport => {
    if (aborted) socket.terminate();
    return { write: (text) => send(socket, Buffer.from(text)), destroy: () => socket.terminate() };
  });
  return {
    ready,
    abort: () => {
      aborted = true;
      connecting.then((s) => s.terminate(), () => undefined);
    },
  };
}

export class OvsdbClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly monitors = new Map<string, MonitorHandler>();
  private readonly closeListeners = new Set<(err: Error) => void>();
  private closedWith: Error | undefined;
  private readonly splitter = new JsonStreamSplitter();
  private transport: Transport | null = null;

  private constructor(
    readonly remote: string,
    private readonly requestTimeoutMs: number,
  ) {}

  private readonly events: TransportEvents = {
    data: (chunk) => {
      try {
        for (const text of this.splitter.push(chunk)) this.dispatch(JSON.parse(text) as Json);
      } catch (err) {
        this.fail(new OvsdbProtocolError(`OVSDB ${this.remote}: ${(err as Error).message}`));
      }
    },
    error: (err) => this.fail(new OvsdbProtocolError(`OVSDB connection to ${this.remote} failed: ${err.message}`)),
    close: () => this.fail(new OvsdbProtocolError(`OVSDB connection to ${this.remote} closed`)),
  };

  static connect(remote: string = DEFAULT_OVSDB, opts: OvsdbClientOptions = {}): Promise<OvsdbClient> {
    const target = parseRemote(remote);
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    const client = new OvsdbClient(remote, opts.requestTimeoutMs ?? 30_000);
    const opening = (bun ? openBunTransport : openNodeTransport)(target, client.events);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        opening.abort();
        reject(new OvsdbProtocolError(`timed out connecting to OVSDB at ${remote} after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      opening.ready.then(
        (transport) => {
          clearTimeout(timer);
          client.transport = transport;
          resolve(client);
        },
        (err: Error) => {
          clearTimeout(timer);
          reject(new OvsdbProtocolError(`cannot connect to OVSDB at ${remote}: ${err.message}`));
        },
      );
    });
  }

  /** Runs operations as one atomic transaction; the first refused operation becomes an OvsdbError. */
  async transact<const Ops extends readonly Operation[]>(
    db: string,
    ops: Ops,
    opts: { timeoutMs?: number } = {},
  ): Promise<TransactResults<Ops>> {
    const reply = await this.request('transact', [db, ...(ops as readonly Operation[] as unknown as Json[])], opts.timeoutMs);
    if (!Array.isArray(reply)) throw new OvsdbProtocolError(`OVSDB ${this.remote}: transact reply is not an array`);
    const results = ops.map((op, i) => {
      const r = reply[i];
      if (!isObject(r)) throw new OvsdbProtocolError(`OVSDB ${this.remote}: no result for operation ${i + 1}`);
      if (typeof r.error === 'string') {
        throw new OvsdbError(db, r.error, typeof r.details === 'string' ? r.details : undefined, i, op, ops.length);
      }
      return decodeResult(op, r, `transact result[${i}]`);
    });
    const commit = reply[ops.length];
    if (isObject(commit) && typeof commit.error === 'string') {
      throw new OvsdbError(db, commit.error, typeof commit.details === 'string' ? commit.details : undefined, undefined, undefined, ops.length);
    }
    return results as TransactResults<Ops>;
  }

  /**
   * monitor (RFC 7047): `onUpdate` first receives the initial contents, then every `update`
   * notification, in order; the promise resolves once the server has accepted the monitor.
   */
  monitor(db: string, requests: Record<string, MonitorRequest>, onUpdate: (u: TableUpdates<RowUpdate>) => void): Promise<Monitor> {
    return this.startMonitor('monitor', 'update', db, requests, (j, at) => onUpdate(decodeUpdates(j, at, decodeRowUpdate)));
  }

  /** monitor_cond (server-side `where` filter): initial contents and `update2` notifications. */
  monitorCond(
    db: string,
    requests: Record<string, MonitorCondRequest>,
    onUpdate: (u: TableUpdates<RowUpdate2>) => void,
  ): Promise<Monitor> {
    return this.startMonitor('monitor_cond', 'update2', db, requests, (j, at) => onUpdate(decodeUpdates(j, at, decodeRowUpdate2)));
  }

  async echo(...params: Json[]): Promise<Json[]> {
    const r = await this.request('echo', params);
    if (!Array.isArray(r)) throw new OvsdbProtocolError(`OVSDB ${this.remote}: echo reply is not an array`);
    return r;
  }

  async listDbs(): Promise<string[]> {
    const r = await this.request('list_dbs', []);
    if (!Array.isArray(r) || !r.every((d): d is string => typeof d === 'string')) {
      throw new OvsdbProtocolError(`OVSDB ${this.remote}: list_dbs reply is not a list of names`);
    }
    return r;
  }

  /** Called once when the connection ends for any reason (including close()). */
  onClose(listener: (err: Error) => void): () => void {
    if (this.closedWith) {
      const err = this.closedWith;
      queueMicrotask(() => listener(err));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): void {
    this.fail(new OvsdbProtocolError(`OVSDB connection to ${this.remote} closed by the client`));
  }

  private async startMonitor(
    method: 'monitor' | 'monitor_cond',
    notification: 'update' | 'update2',
    db: string,
    requests: Record<string, MonitorRequest | MonitorCondRequest>,
    deliver: (updates: Json | undefined, at: string) => void,
  ): Promise<Monitor> {
    const id = `m${this.nextId++}`;
    const handler: MonitorHandler = (m, updates) => {
      if (m === notification) deliver(updates, `${notification} ${id}`);
    };
    this.monitors.set(id, handler);
    try {
      await this.request(method, [db, id, requests as unknown as Json], undefined, (result) =>
        // Delivered before any later notification of this monitor can be dispatched.
        deliver(result, `${method} ${id} initial`),
      );
    } catch (err) {
      this.monitors.delete(id);
      throw err;
    }
    return {
      id,
      cancel: async () => {
        if (!this.monitors.delete(id) || this.closed) return;
        await this.request('monitor_cancel', [id]);
      },
    };
  }

  private request(method: string, params: Json[], timeoutMs?: number, onResult?: (result: Json) => void): Promise<Json> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    const ms = timeoutMs ?? this.requestTimeoutMs;
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new OvsdbProtocolError(`OVSDB ${method} on ${this.remote} timed out after ${ms} ms`));
      }, ms);
      this.pending.set(id, {
        method,
        resolve: (result) => {
          onResult?.(result);
          resolve(result);
        },
        reject,
        timer,
      });
      this.transport!.write(JSON.stringify({ method, params, id }));
    });
  }

  private dispatch(msg: Json): void {
    if (!isObject(msg)) throw new Error(`JSON-RPC message is not an object: ${JSON.stringify(msg)}`);
    const { id, method, params } = msg;
    if (typeof method === 'string') {
      const args = Array.isArray(params) ? params : [];
      if (method === 'echo' && id !== null && id !== undefined) {
        // The server's keepalive: an unanswered echo makes it drop the connection.
        this.transport!.write(JSON.stringify({ id, result: args, error: null }));
      } else if ((method === 'update' || method === 'update2') && typeof args[0] === 'string') {
        this.monitors.get(args[0])?.(method, args[1]);
      }
      return;
    }
    if (typeof id !== 'number') return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const error = msg.error;
    if (error !== null && error !== undefined) {
      const text = isObject(error)
        ? [error.error, error.details].filter((s) => typeof s === 'string').join(': ')
        : JSON.stringify(error);
      p.reject(new OvsdbProtocolError(`OVSDB ${p.method} on ${this.remote} failed: ${text}`));
      return;
    }
    try {
      p.resolve(msg.result ?? null);
    } catch (err) {
      p.reject(err as Error);
    }
  }

  private fail(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.transport?.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.monitors.clear();
    for (const l of this.closeListeners) l(err);
    this.closeListeners.clear();
  }
}

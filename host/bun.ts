/**
 * The few parts of Bun's own API the CNI uses when it runs as the Bun-built executable; `bun` is
 * null on Node (the device plugin, the test suites). Bun also runs node:child_process and
 * node:net code, but through a layer of Node streams that costs a CNI call more than the
 * processes it starts and the OVSDB round trips it makes; Bun.spawn, Bun.connect and a direct
 * flock(2) do not (host/proc.ts, host/ovsdb.ts, host/lock.ts).
 */

export interface BunSubprocess {
  readonly pid: number;
  /** Resolves with the exit code once the process is gone. */
  readonly exited: Promise<number>;
  /** null while running, and when a signal ended it. */
  readonly exitCode: number | null;
  /** The name of the signal that ended it, or null. */
  readonly signalCode: string | null;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  kill(signal?: string | number): void;
}

type BunStdio = 'pipe' | 'ignore' | 'inherit' | number | Uint8Array;

export interface BunSpawnOptions {
  readonly cmd: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** [stdin, stdout, stderr, …further file descriptors the child gets as 3, 4, …]. */
  readonly stdio: readonly BunStdio[];
}

interface BunHasher {
  update(data: string): BunHasher;
  digest(encoding: 'hex'): string;
}

export interface BunSocket {
  /** How many bytes the kernel took; the rest is the caller's to send on drain. */
  write(data: Uint8Array): number;
  terminate(): void;
}

export interface BunSocketHandlers {
  data(socket: BunSocket, chunk: Buffer): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket): void;
  error(socket: BunSocket, err: Error): void;
}

export type BunConnectOptions = ({ readonly unix: string } | { readonly hostname: string; readonly port: number }) & {
  readonly socket: BunSocketHandlers;
};

export interface BunRuntime {
  spawn(opts: BunSpawnOptions): BunSubprocess;
  /** A stream socket (unix or TCP); rejects when it cannot connect. */
  connect(opts: BunConnectOptions): Promise<BunSocket>;
  readonly CryptoHasher: new (algorithm: 'sha256') => BunHasher;
}

export const bun: BunRuntime | null = (globalThis as { Bun?: BunRuntime }).Bun ?? null;

/** A stream's bytes as UTF-8 text. */
export const textOf = (stream: ReadableStream<Uint8Array>): Promise<string> => new Response(stream).text();

interface BunFfi {
  dlopen(lib: string, symbols: { flock: { args: ['i32', 'i32']; returns: 'i32' } }): { symbols: { flock(fd: number, op: number): number } };
}

let libcFlock: ((fd: number, op: number) => number) | null | undefined;

/**
 * flock(2) from libc through bun:ffi, or null (not on Bun, or libc cannot be opened). The
 * answer is -1 on any failure: bun:ffi does not report errno.
 */
export function flockSyscall(): ((fd: number, op: number) => number) | null {
  if (libcFlock !== undefined) return libcFlock;
  libcFlock = null;
  if (!bun) return null;
  try {
    const ffi = process.getBuiltinModule('bun:ffi') as BunFfi | undefined;
    const lib = ffi?.dlopen('libc.so.6', { flock: { args: ['i32', 'i32'], returns: 'i32' } });
    if (lib) libcFlock = (fd, op) => lib.symbols.flock(fd, op);
  } catch {
    // No FFI here: flock(1) does it.
  }
  return libcFlock;
}

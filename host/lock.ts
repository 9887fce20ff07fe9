/**
 * Per-key mutual exclusion between processes (the CNI takes one per VF, provisioning one for
 * itself).
 *
 * The lock is flock(2) on a file in a directory only root can write:
 *   <scope>/locks/<key>.lock        (locks/ mode 0700, lock files mode 0600)
 * so no other uid can open the file, let alone lock it (an abstract unix socket, which this used
 * to be, can be bound by any uid). A flock(2) lock belongs to the open file description and the
 * kernel drops it when the last descriptor is closed, so a holder killed with SIGKILL never
 * leaves a stale lock. Nothing in it depends on the JavaScript runtime (no socket names that one
 * runtime pads and another does not): every build and every runtime that locks the same path
 * excludes the others, and so does `flock(1)` from a shell.
 *
 * Node has no flock(), so util-linux's flock(1) takes it for us on our own descriptor, passed to
 * it as fd 3: once it has locked it and exited, we hold the lock through our descriptor until we
 * close it (release) or die. On Bun (the CNI executable) the first, non-blocking try is flock(2)
 * itself, through bun:ffi. A busy lock is waited for by a second flock(1) with a timeout, so
 * nobody polls. The holder writes its pid into the file so a waiter can say whom it waits for;
 * `lslocks` shows the live holders.
 */
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { bun, flockSyscall, textOf } from './bun.js';
import { sha256Hex } from './hash.js';
import { systemTool } from './proc.js';

export interface Lock {
  readonly name: string;
  release(): Promise<void>;
}

export class LockTimeoutError extends Error {
  constructor(
    readonly key: string,
    readonly holder: string,
  ) {
    super(`timed out waiting for the lock on ${key}${holder ? ` (held by pid ${holder})` : ''}`);
    this.name = 'LockTimeoutError';
  }
}

export interface LockOptions {
  /** The directory whose locks/ subdirectory holds the lock files (created when missing). */
  readonly scope: string;
  readonly timeoutMs: number;
  /** Told once when the lock is busy, with the holder's pid ("" when it has not written it yet). */
  readonly onWait?: (holderPid: string) => void;
}

const FLOCK = systemTool('flock');

/**
 * Linux's O_CLOEXEC (node:fs does not export it). libuv sets it anyway; saying it keeps any
 * runtime from leaking the descriptor into the tools we run, which would hold the lock after us.
 */
const O_CLOEXEC = 0o2000000;

/** Keys are PCI addresses and plain words; anything else is named by its hash. */
function fileName(key: string): string {
  return /^[\w.:-]{1,200}$/.test(key) && !key.startsWith('.') ? `${key}.lock` : `sha256-${sha256Hex(key)}.lock`;
}

/** Creates `<scope>/locks` (mode 0700) and refuses one that another uid could write into. */
function lockDir(scope: string): string {
  const dir = join(scope, 'locks');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const me = process.getuid?.() ?? 0;
  const refuse = (why: string) => new Error(`lock directory ${dir} ${why}; refusing to use it`);
  if (!st.isDirectory()) throw refuse('is not a directory');
  if (st.uid !== 0 && st.uid !== me) throw refuse(`is owned by uid ${st.uid}`);
  if (st.mode & 0o022) throw refuse(`is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`);
  return dir;
}

/** The file that holds the lock on `key` (its directory is created and checked). */
export function lockPath(scope: string, key: string): string {
  return join(lockDir(scope), fileName(key));
}

function openLockFile(path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | O_CLOEXEC, 0o600);
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`lock file ${path} is not a regular file`);
  }
  return fd;
}

/** The pid the holder wrote, or "" (not written yet, or not one of ours). */
function holderOf(fd: number): string {
  const buf = Buffer.alloc(24);
  const text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString().trim();
  return /^\d+$/.test(text) ? text : '';
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** What flock(1)'s exit says: 0 locked, 1 busy (-n, or -w ran out), anything else a failure. */
function flockOutcome(code: number | null, signal: string | null, stderr: string): 'locked' | 'busy' {
  if (code === 0) return 'locked';
  if (code === 1) return 'busy';
  throw new Error(`${FLOCK} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`);
}

/** flock(1) on our descriptor: "locked" (we hold it now) or "busy" (-n, or -w ran out). */
async function flock(fd: number, args: readonly string[]): Promise<'locked' | 'busy'> {
  const argv = ['-x', ...args, '3'];
  if (bun) {
    const runtime = bun;
    const child = (() => {
      try {
        return runtime.spawn({ cmd: [FLOCK, ...argv], stdio: ['ignore', 'ignore', 'pipe', fd] });
      } catch (err) {
        throw new Error(`cannot run ${FLOCK}: ${(err as Error).message}`);
      }
    })();
    const [stderr] = await Promise.all([textOf(child.stderr), child.exited]);
    return flockOutcome(child.exitCode, child.signalCode, stderr);
  }
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(FLOCK, argv, { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new Error(`cannot run ${FLOCK}: ${err.message}`)));
    child.on('close', (code, signal) => {
      try {
        resolve(flockOutcome(code, signal, stderr));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/**
 * The first, non-blocking try. On Bun flock(2) itself (bun:ffi), which saves starting flock(1)
 * on every call; it is the same lock on the same open file description either way.
 */
function tryLock(fd: number): Promise<'locked' | 'busy'> {
  const syscall = flockSyscall();
  if (!syscall) return flock(fd, ['-n']);
  // -1 is EWOULDBLOCK but for a descriptor error that flock(1) then reports.
  return syscall(fd, LOCK_EX | LOCK_NB) === 0 ? Promise.resolve('locked') : flock(fd, ['-n']);
}

export async function acquireLock(key: string, opts: LockOptions): Promise<Lock> {
  const deadline = Date.now() + opts.timeoutMs;
  const fd = openLockFile(lockPath(opts.scope, key));
  try {
    if ((await tryLock(fd)) === 'busy') {
      opts.onWait?.(holderOf(fd));
      const seconds = Math.max(0, deadline - Date.now()) / 1000;
      if ((await flock(fd, ['-w', seconds.toFixed(3)])) === 'busy') throw new LockTimeoutError(key, holderOf(fd));
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let held = true;
  return {
    name: key,
    // Closing drops the lock. The file stays: unlinking it would let a waiter that opened the
    // old file and a newcomer that creates a new one both "hold" the lock.
    release: async () => {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}

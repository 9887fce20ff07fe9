/**
 * Per-key mutual exclusion between processes (the CNI takes one per VF).
 *
 * The lock is a listening unix socket in the abstract namespace. The kernel frees the name when
 * its holder exits for any reason, kill -9 included, so a crashed plugin never leaves a stale
 * lock for the next one to judge and steal. Waiters connect to the holder and wake up when the
 * connection closes; nobody polls. Abstract names are scoped by network namespace; CNI plugins
 * always run in the host's (they must see the host's devices), so all callers share the lock.
 * `ss -xlp | grep vdpa-k8s` shows who holds what.
 */
import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

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
  /** Separates independent users of the same keys (the state directory, so test runs never collide). */
  readonly scope: string;
  readonly timeoutMs: number;
  /** Told once when the lock is busy, with the holder's pid. */
  readonly onWait?: (holderPid: string) => void;
}

/** The abstract socket name for a key (at most 107 bytes). */
export function lockName(scope: string, key: string): string {
  const s = createHash('sha256').update(scope).digest('hex').slice(0, 12);
  return `\0vdpa-k8s/${s}/${key}`.slice(0, 107);
}

/** Waiters connect and learn the holder's pid; their wait ends when the connection closes. */
function listen(name: string, waiters: Set<Socket>): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      waiters.add(sock);
      sock.on('close', () => waiters.delete(sock));
      sock.on('error', () => undefined);
      sock.write(`${process.pid}\n`);
    });
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(null) : reject(err)));
    server.listen({ path: name }, () => resolve(server));
  });
}

/**
 * Resolves when the holder is gone (or was already gone), with its pid when it said it; tells
 * `onHolder` that pid as soon as it arrives, while the wait is still on.
 */
function waitForHolder(name: string, deadline: number, onHolder: (pid: string) => void): Promise<{ holder: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    let holder = '';
    const sock: Socket = createConnection({ path: name });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ holder, timedOut: true });
    }, Math.max(0, deadline - Date.now()));
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      holder += d.trim();
      if (d.endsWith('\n')) onHolder(holder);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ holder, timedOut: false });
    });
  });
}

export async function acquireLock(key: string, opts: LockOptions): Promise<Lock> {
  const name = lockName(opts.scope, key);
  const deadline = Date.now() + opts.timeoutMs;
  let told = false;
  for (;;) {
    const waiters = new Set<Socket>();
    const server = await listen(name, waiters);
    if (server) {
      return {
        name: key,
        release: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            for (const s of waiters) s.destroy();
          }),
      };
    }
    // A closed connection means "released or died": try again (another waiter may win).
    const { holder, timedOut } = await waitForHolder(name, deadline, (pid) => {
      if (told) return;
      told = true;
      opts.onWait?.(pid);
    });
    if (timedOut || Date.now() >= deadline) throw new LockTimeoutError(key, holder);
  }
}

/**
 * Runs a host tool to completion; with host/lock.ts (which hands flock(1) a descriptor) the only
 * places host/ starts child processes. On Bun (the CNI executable) through Bun.spawn; on Node
 * through node:child_process, loaded on first use.
 */
import { existsSync } from 'node:fs';
import { bun, textOf } from './bun.js';

export interface ProcResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ProcOptions {
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

/** Never rejects on a non-zero exit; rejects only when the program cannot be started. */
export function runProcess(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return bun ? runWithBun(file, args, opts) : runWithNode(file, args, opts);
}

async function runWithBun(file: string, args: readonly string[], opts: ProcOptions): Promise<ProcResult> {
  const child = bun!.spawn({ cmd: [file, ...args], env: opts.env ?? process.env, stdio: [Buffer.from(opts.input ?? ''), 'pipe', 'pipe'] });
  const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
  try {
    const [stdout, stderr] = await Promise.all([textOf(child.stdout), textOf(child.stderr), child.exited]);
    return { code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null, stdout, stderr };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function runWithNode(file: string, args: readonly string[], opts: ProcOptions): Promise<ProcResult> {
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that exits without reading stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * The absolute path of a system tool: runtimes call plugins with a minimal (or no) PATH, so the
 * usual sbin/bin directories are tried before PATH.
 */
export function systemTool(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return name;
}

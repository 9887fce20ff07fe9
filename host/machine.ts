/**
 * The node's writable side as provisioning sees it: sysfs attribute writes and host tools. One
 * narrow interface, so that the same host code runs against the kernel and, in tests, against a
 * fixture tree whose "kernel" records every write and reacts to it.
 */
import { writeFileSync } from 'node:fs';
import { runProcess, systemTool, type ProcResult } from './proc.js';

export interface Machine {
  /** Where sysfs is read and written (`/sys`, or a fixture's). */
  readonly sysfsRoot: string;
  /** One write(2) of `value` to a sysfs attribute; throws HostError naming the path. */
  write(path: string, value: string): void;
  /** Runs a host tool (`vdpa`, `devlink`, `ethtool`, `modprobe`) to completion; never throws on exit codes. */
  run(tool: string, args: readonly string[]): Promise<ProcResult>;
}

export class HostError extends Error {
  override name = 'HostError';
}

/** A tool's failure in one line: its stderr, else its exit status. */
export function toolFailure(tool: string, args: readonly string[], r: ProcResult): string {
  const why = r.stderr.trim().split('\n').filter(Boolean).pop() ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
  return `${tool} ${args.join(' ')}: ${why}`;
}

/** Runs a tool and returns its stdout; HostError with its stderr when it fails. */
export async function mustRun(m: Machine, tool: string, args: readonly string[]): Promise<string> {
  const r = await m.run(tool, args);
  if (r.code !== 0) throw new HostError(toolFailure(tool, args, r));
  return r.stdout;
}

export function realMachine(sysfsRoot = '/sys', timeoutMs = 60_000): Machine {
  return {
    sysfsRoot,
    write(path, value) {
      try {
        // sysfs takes one write per value; writeFileSync issues exactly one for short strings.
        writeFileSync(path, value);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new HostError(`write "${value}" to ${path}: ${e.code ?? e.message}`);
      }
    },
    run: (tool, args) => runProcess(systemTool(tool), args, { timeoutMs }),
  };
}

import { runProcess, type ProcResult } from '../../host/proc.js';

export type ExecResult = ProcResult;

/** Runs a command to completion with the given stdin; never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return runProcess(cmd, args, { timeoutMs: 60_000, ...opts });
}

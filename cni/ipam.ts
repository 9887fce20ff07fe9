/**
 * Delegated IPAM: the plugin named by `ipam.type`, found in CNI_PATH, run with our environment
 * (CNI_COMMAND set to the verb) and the whole network config on stdin, as libcni runs plugins.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../host/log.js';
import { runProcess } from '../host/proc.js';
import { Decoder } from './decode.js';
import { CniError, ErrorCode } from './errors.js';
import type { CniEnv } from './netconf.js';
import { parseResult, type Result } from './result.js';

export interface IpamCall {
  readonly type: string;
  readonly env: CniEnv;
  /** The network config exactly as we received it. */
  readonly stdin: string;
  /** Where the plugin's stderr goes. */
  readonly log: Logger;
}

/** The plugin's executable; ADD calls this before touching the host. */
export const ipamPlugin = (call: IpamCall): string => findPlugin(call.type, call.env.path);

function findPlugin(type: string, path: readonly string[]): string {
  if (path.length === 0) throw new CniError(ErrorCode.InvalidEnv, `CNI_PATH: required to find the IPAM plugin "${type}"`);
  for (const dir of path) {
    const file = join(dir, type);
    try {
      accessSync(file, constants.X_OK);
      // A directory is "executable" too: only a regular file is a plugin.
      if (statSync(file).isFile()) return file;
    } catch {
      // Not in this directory; try the next.
    }
  }
  throw new CniError(ErrorCode.InvalidConfig, `ipam.type: no executable "${type}" in CNI_PATH (${path.join(':')})`);
}

/** The plugin's error reply as a CniError with its own code, or a generic one when it sent none. */
function failure(type: string, verb: string, stdout: string, stderr: string, code: number | null): CniError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string') {
      return new CniError(e.code, `ipam ${type} ${verb}: ${e.msg}`, typeof e.details === 'string' ? e.details : '');
    }
  } catch {
    // Not a CNI error reply: report what it printed.
  }
  return new CniError(ErrorCode.Internal, `ipam ${type} ${verb} failed (exit ${code})`, (stderr || stdout).trim());
}

async function exec(call: IpamCall, verb: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS'): Promise<string> {
  const file = findPlugin(call.type, call.env.path);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: call.env.containerId,
    CNI_NETNS: call.env.netns,
    CNI_IFNAME: call.env.ifname,
    CNI_PATH: call.env.path.join(':'),
  };
  const r = await runProcess(file, [], { env, input: call.stdin });
  if (r.stderr.trim()) call.log[r.code === 0 ? 'info' : 'warn']('IPAM plugin stderr', { ipam: call.type, verb, stderr: r.stderr.trim() });
  if (r.code !== 0) throw failure(call.type, verb, r.stdout, r.stderr, r.code);
  return r.stdout;
}

export async function ipamAdd(call: IpamCall): Promise<Result> {
  const out = await exec(call, 'ADD');
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CniError(ErrorCode.DecodeFailure, `ipam ${call.type} ADD: result is not JSON`, out.slice(0, 200));
  }
  return parseResult(parsed, `ipam ${call.type} result`, new Decoder(ErrorCode.DecodeFailure));
}

export const ipamDel = async (call: IpamCall): Promise<void> => void (await exec(call, 'DEL'));
export const ipamCheck = async (call: IpamCall): Promise<void> => void (await exec(call, 'CHECK'));
export const ipamGc = async (call: IpamCall): Promise<void> => void (await exec(call, 'GC'));
export const ipamStatus = async (call: IpamCall): Promise<void> => void (await exec(call, 'STATUS'));

/**
 * Attachment state files: what one CNI ADD changed on the host, the single source of truth for
 * DEL and GC. Written atomically (temp file, rename) before the first host change, updated as
 * each step begins, removed after the last undo. Not fsynced: the state serves a DEL or GC after
 * the writer died, and a killed process leaves the page cache intact; a power loss takes every
 * netns and pod the state describes with it, and DEL without a (readable) state goes by OVS rows
 * and netdev marks. An fsync per step cost ADD a millisecond or more each on this machine's disk.
 *   <stateDir>/attachments/<containerID>@<ifname>.json
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { sha256Hex } from './hash.js';
import type { VdpaDriver } from './snapshot.js';

/** Host changes an ADD makes, in order (cni/steps/ holds each one's do and undo). */
export const ATTACH_STEPS = ['ipam', 'lsp', 'port', 'netdev', 'representor'] as const;
export type AttachStep = (typeof ATTACH_STEPS)[number];

/** What a pod cannot change about a netdev (cni/steps/netdev.ts). */
export interface NetdevIdentity {
  readonly ifindex: number;
  readonly parent: string | null;
}

export interface AttachmentState {
  /** The network config's name: GC of one network acts only on its own attachments. */
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
  readonly netns: string;
  readonly pciAddress: string;
  readonly driver: VdpaDriver;
  /** The virtio netdev's name in the host before ADD; null for vhost. */
  readonly netdev: string | null;
  /** Its IFLA_IFALIAS, MAC and MTU before ADD, restored on DEL. */
  readonly netdevAlias: string;
  readonly netdevMac: string | null;
  readonly netdevMtu: number | null;
  /** Where it is, once moved into the pod: DEL finds it by this, never by a name or alias. */
  readonly netdevIdentity: NetdevIdentity | null;
  /** The IFLA_IFALIAS ADD gives it, so DEL can find it wherever it ended up. */
  readonly mark: string;
  readonly representor: string | null;
  /** The representor's MTU before ADD (ADD sets the pod's MTU on it), restored on DEL. */
  readonly representorMtu: number | null;
  /** The Logical_Switch_Port vdpa-cni created (ovn.mode "managed"), and the NB database it is in. */
  readonly lsp: { readonly name: string; readonly nbdb: string } | null;
  /** "" when the attachment has no OVS port. */
  readonly bridge: string;
  readonly ifaceId: string | null;
  /** Steps begun, in order (a step is listed before its host change starts). */
  readonly steps: readonly AttachStep[];
  readonly createdAt: string;
}

export class StateError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'StateError';
  }
}

const dirOf = (stateDir: string) => join(stateDir, 'attachments');

/** File names stay well below the kernel's 255 bytes, with room for the temporary suffix. */
const MAX_BASE_BYTES = 200;

export function statePath(stateDir: string, containerId: string, ifname: string): string {
  // Container IDs never contain "@"; interface names may contain almost anything but "/".
  const base = `${containerId}@${encodeURIComponent(ifname)}`;
  const name = Buffer.byteLength(base) <= MAX_BASE_BYTES ? base : `sha256-${sha256Hex(base)}`;
  return join(dirOf(stateDir), `${name}.json`);
}

const TEMP = /^(.+\.json)\.(\d+)\.tmp$/;

function parseState(file: string, text: string): AttachmentState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new StateError(file, 'not valid JSON');
  }
  const o = v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  const need = (key: string, ok: (x: unknown) => boolean) => {
    if (!ok(o[key])) throw new StateError(file, `${key}: missing or of the wrong type`);
  };
  const isStr = (x: unknown) => typeof x === 'string';
  const strOrNull = (x: unknown) => typeof x === 'string' || x === null;
  for (const k of ['containerId', 'ifname', 'netns', 'pciAddress', 'netdevAlias', 'mark', 'bridge', 'createdAt']) {
    need(k, isStr);
  }
  for (const k of ['netdev', 'representor', 'ifaceId']) need(k, strOrNull);
  // Written by every ADD since the network and identity were recorded; absent in older files.
  const opt = (key: string, ok: (x: unknown) => boolean) => o[key] === undefined || need(key, ok);
  const numOrNull = (x: unknown) => x === null || (typeof x === 'number' && Number.isInteger(x) && x > 0);
  opt('network', isStr);
  opt('lsp', (x) => x === null || (typeof x === 'object' && typeof (x as Record<string, unknown>).name === 'string' && typeof (x as Record<string, unknown>).nbdb === 'string'));
  for (const k of ['netdevMac']) opt(k, strOrNull);
  for (const k of ['netdevMtu', 'representorMtu']) opt(k, numOrNull);
  opt('netdevIdentity', (x) => {
    if (x === null) return true;
    const id = x && typeof x === 'object' ? (x as Record<string, unknown>) : null;
    return id !== null && numOrNull(id.ifindex) && id.ifindex !== null && strOrNull(id.parent);
  });
  need('driver', (x) => x === 'virtio' || x === 'vhost');
  need('steps', (x) => Array.isArray(x) && x.every((s) => (ATTACH_STEPS as readonly unknown[]).includes(s)));
  const defaults = { network: '', netdevMac: null, netdevMtu: null, netdevIdentity: null, representorMtu: null, lsp: null };
  return { ...defaults, ...o } as unknown as AttachmentState;
}

/** The state of one attachment, or null when there is none. Throws StateError when unreadable. */
export function readState(stateDir: string, containerId: string, ifname: string): AttachmentState | null {
  const file = statePath(stateDir, containerId, ifname);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(file, (err as Error).message);
  }
  return parseState(file, text);
}

export function writeState(stateDir: string, state: AttachmentState): void {
  const file = statePath(stateDir, state.containerId, state.ifname);
  mkdirSync(dirOf(stateDir), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state, null, 1) + '\n');
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Removes the state and any temporary copy a call killed mid-write left of it. */
export function removeState(stateDir: string, containerId: string, ifname: string): void {
  const file = statePath(stateDir, containerId, ifname);
  rmSync(file, { force: true });
  for (const name of readNames(dirOf(stateDir))) {
    if (TEMP.exec(name)?.[1] === basename(file)) rmSync(join(dirOf(stateDir), name), { force: true });
  }
}

function readNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes temporary state copies whose writer is dead (killed inside the atomic write); returns them. */
export function removeStaleTempFiles(stateDir: string): string[] {
  const removed: string[] = [];
  for (const name of readNames(dirOf(stateDir))) {
    const pid = TEMP.exec(name)?.[2];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    rmSync(join(dirOf(stateDir), name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** Every readable state; unreadable files are reported, not thrown, so one bad file never blocks GC. */
export function listStates(stateDir: string): { states: AttachmentState[]; errors: StateError[] } {
  let names: string[];
  try {
    names = readdirSync(dirOf(stateDir)).filter((n) => n.endsWith('.json'));
  } catch {
    return { states: [], errors: [] };
  }
  const states: AttachmentState[] = [];
  const errors: StateError[] = [];
  for (const name of names) {
    const file = join(dirOf(stateDir), name);
    try {
      states.push(parseState(file, readFileSync(file, 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      errors.push(err instanceof StateError ? err : new StateError(file, (err as Error).message));
    }
  }
  return { states, errors };
}

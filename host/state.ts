/**
 * Attachment state files: what one CNI ADD changed on the host, the single source of truth for
 * DEL and GC. Written atomically (temp file, fsync, rename) before the first host change, updated
 * as each step begins, removed after the last undo.
 *   <stateDir>/attachments/<containerID>@<ifname>.json
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { VdpaDriver } from './snapshot.js';

/** Host changes an ADD makes, in order (cni/steps/ holds each one's do and undo). */
export const ATTACH_STEPS = ['ipam', 'port', 'netdev', 'representor'] as const;
export type AttachStep = (typeof ATTACH_STEPS)[number];

export interface AttachmentState {
  readonly containerId: string;
  readonly ifname: string;
  readonly netns: string;
  readonly pciAddress: string;
  readonly driver: VdpaDriver;
  /** The virtio netdev's name in the host before ADD; null for vhost. */
  readonly netdev: string | null;
  /** Its IFLA_IFALIAS before ADD, restored on DEL. */
  readonly netdevAlias: string;
  /** The IFLA_IFALIAS ADD gives it, so DEL can find it wherever it ended up. */
  readonly mark: string;
  readonly representor: string | null;
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

export function statePath(stateDir: string, containerId: string, ifname: string): string {
  // Container IDs never contain "@"; interface names may contain almost anything but "/".
  return join(dirOf(stateDir), `${containerId}@${encodeURIComponent(ifname)}.json`);
}

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
  need('driver', (x) => x === 'virtio' || x === 'vhost');
  need('steps', (x) => Array.isArray(x) && x.every((s) => (ATTACH_STEPS as readonly unknown[]).includes(s)));
  return o as unknown as AttachmentState;
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
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export function removeState(stateDir: string, containerId: string, ifname: string): void {
  rmSync(statePath(stateDir, containerId, ifname), { force: true });
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

/**
 * Plain files on the host's own filesystem (systemd units, udev rules, a copy of our executable):
 * what is at a path, and writing, linking, copying and removing without a reader ever seeing a
 * half-written file.
 */
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HostError } from './machine.js';

export type FileState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'link'; readonly target: string }
  /** `text` up to the size asked for (null above it): size and mtime tell a copy of a large file from its source. */
  | { readonly kind: 'file'; readonly text: string | null; readonly size: number; readonly mtimeMs: number; readonly mode: number }
  /** A directory, a device, …: never ours to replace. */
  | { readonly kind: 'other' };

export function fileState(path: string, maxText: number): FileState {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return { kind: 'absent' };
    throw new HostError(`${path}: ${(err as Error).message}`);
  }
  if (st.isSymbolicLink()) return { kind: 'link', target: readlinkSync(path) };
  if (!st.isFile()) return { kind: 'other' };
  return { kind: 'file', text: st.size <= maxText ? readFileSync(path, 'utf8') : null, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
}

function replace(path: string, make: (tmp: string) => void): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    make(tmp);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new HostError(`${path}: ${(err as Error).message}`);
  }
}

export function writeTextFile(path: string, text: string, mode: number): void {
  replace(path, (tmp) => {
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode);
  });
}

/** An executable copy whose size and mtime match the source's (to the microsecond or so: utimes takes seconds as a float). */
export function copyExecutable(from: string, to: string): void {
  const src = statSync(from);
  replace(to, (tmp) => {
    copyFileSync(from, tmp);
    chmodSync(tmp, 0o755);
    utimesSync(tmp, src.atimeMs / 1000, src.mtimeMs / 1000);
  });
}

export function symlinkTo(path: string, target: string): void {
  replace(path, (tmp) => symlinkSync(target, tmp));
}

export function removeFile(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch (err) {
    throw new HostError(`${path}: ${(err as Error).message}`);
  }
}

/**
 * Small synchronous readers for sysfs. Discovery reads hundreds of tiny files in one pass, so these
 * avoid the extra fstat of readFileSync and never throw: a file that cannot be read comes back as
 * an Unreadable value that says why, and the caller turns it into a device's reason.
 */
import { closeSync, openSync, readSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { normalize } from 'node:path';

/** A PCI function's name in sysfs (domain:bus:device.function; domains above ffff exist, e.g. VMD). */
export const PCI_ADDRESS = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** A PF's link to its VF number N: `virtfnN` → `../<VF address>`. */
const VIRTFN = /^virtfn(\d+)$/;

/** Why a sysfs file, link or directory could not be read: `missing`, `EIO`, `EACCES`, … */
export interface Unreadable {
  readonly path: string;
  readonly code: string;
}

export function isUnreadable(x: unknown): x is Unreadable {
  return typeof x === 'object' && x !== null && 'code' in x && 'path' in x;
}

export function describe(u: Unreadable): string {
  return u.code === 'missing' ? `${u.path} is missing` : `cannot read ${u.path} (${u.code})`;
}

function failure(path: string, err: unknown): Unreadable {
  const code = (err as NodeJS.ErrnoException).code;
  return { path, code: code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : (code ?? String(err)) };
}

// sysfs attributes are at most one page; a shared buffer keeps the hot loop allocation-free.
const buffer = Buffer.allocUnsafe(4096);

/** A sysfs attribute with its trailing newline trimmed. */
export function readAttr(path: string): string | Unreadable {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return failure(path, err);
  }
  try {
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.toString('utf8', 0, n).trim();
  } catch (err) {
    return failure(path, err);
  } finally {
    closeSync(fd);
  }
}

export function readNames(dir: string): string[] | Unreadable {
  try {
    return readdirSync(dir);
  } catch (err) {
    return failure(dir, err);
  }
}

/**
 * Where a sysfs link points, resolved against the link's directory. sysfs links are relative and
 * their directories are real, so this is what realpath would say, without walking each component.
 * `path` must be absolute and normalized.
 */
export function readLink(path: string): string | Unreadable {
  let target: string;
  try {
    target = readlinkSync(path);
  } catch (err) {
    return failure(path, err);
  }
  // Fast path for the kernel's form, `../../../devices/…`: drop one directory per leading `../`.
  let dir = parentOf(path);
  let i = 0;
  while (target.startsWith('../', i)) {
    dir = parentOf(dir);
    i += 3;
  }
  const rest = target.slice(i);
  if (!target.startsWith('/') && !/(^|\/)\.\.?(\/|$)|\/\/|^\//.test(rest)) return rest ? `${dir}/${rest}` : dir;
  return normalize(target.startsWith('/') ? target : `${parentOf(path)}/${target}`);
}

/** The last component of a path (path.basename without its argument checks; hot in discovery). */
export function leaf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The directory part of an absolute, normalized path. */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash > 0 ? path.slice(0, slash) : '/';
}

/** Whether a path exists; only asked on error paths, to tell a dangling link from a missing file. */
export function exists(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false }) !== undefined;
}

/**
 * The VFs a PF's `virtfnN` links point at, as [VF address, N], in the order of `names` (the
 * listing of `pfDir`, which the caller reads and judges). A link that cannot be read is left out
 * and handed to `unreadable`.
 */
export function virtfnLinks(pfDir: string, names: readonly string[], unreadable?: (u: Unreadable) => void): [string, number][] {
  const vfs: [string, number][] = [];
  for (const name of names) {
    const n = VIRTFN.exec(name);
    if (!n) continue;
    const target = readLink(`${pfDir}/${name}`);
    if (isUnreadable(target)) unreadable?.(target);
    else vfs.push([leaf(target), Number(n[1])]);
  }
  return vfs;
}

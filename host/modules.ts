/** Kernel modules: which are present (loaded or built in), and loading more with modprobe. */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { mustRun, type Machine } from './machine.js';

/** Module names compare with "-" and "_" alike, as modprobe does. */
export const moduleName = (name: string): string => name.replaceAll('-', '_');

export function defaultBuiltinList(): string {
  return `/lib/modules/${release()}/modules.builtin`;
}

/**
 * Present modules: `/sys/module/<name>` (loaded ones, and built-ins with parameters) plus the
 * built-in list (built-ins without parameters have no directory but need no loading either).
 */
export function presentModules(sysfsRoot: string, builtinList: string, names: readonly string[]): Set<string> {
  let builtin = new Set<string>();
  try {
    builtin = new Set(
      readFileSync(builtinList, 'utf8')
        .split('\n')
        .map((p) => moduleName(p.slice(p.lastIndexOf('/') + 1).replace(/\.ko$/, ''))),
    );
  } catch {
    // No list: only /sys/module says what is there.
  }
  return new Set(names.map(moduleName).filter((n) => builtin.has(n) || existsSync(`${sysfsRoot}/module/${n}`)));
}

export async function loadModules(m: Machine, names: readonly string[]): Promise<void> {
  if (names.length) await mustRun(m, 'modprobe', ['-a', ...names]);
}

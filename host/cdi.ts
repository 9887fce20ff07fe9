/**
 * CDI specs (Container Device Interface): one JSON file per kind (`vendor/class`) in a spec
 * directory such as /var/run/cdi, which container runtimes read to inject the devices a container
 * is given as `vendor/class=name`. Replaced by a rename, so a runtime never reads half of one.
 */
import { join } from 'node:path';
import { removeFile, writeTextFile } from './files.js';

export interface CdiDeviceNode {
  /** In the container. */
  readonly path: string;
  /** On the host, when it differs from `path`. */
  readonly hostPath?: string;
  readonly permissions?: string;
}

export interface CdiMount {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly options?: readonly string[];
}

export interface CdiDevice {
  readonly name: string;
  readonly containerEdits: { readonly deviceNodes?: readonly CdiDeviceNode[]; readonly mounts?: readonly CdiMount[] };
}

export interface CdiSpec {
  readonly cdiVersion: string;
  readonly kind: string;
  readonly devices: readonly CdiDevice[];
}

/**
 * The lowest spec version that has every field used, as CDI asks (runtimes refuse a version
 * newer than they know): 0.3.0, or 0.5.0 once a device node has a hostPath.
 */
export function cdiVersionFor(devices: readonly CdiDevice[]): string {
  return devices.some((d) => d.containerEdits.deviceNodes?.some((n) => n.hostPath !== undefined)) ? '0.5.0' : '0.3.0';
}

/** `<dir>/<vendor>-<class>.json`. */
export function cdiSpecPath(dir: string, kind: string): string {
  return join(dir, `${kind.replace('/', '-')}.json`);
}

export function writeCdiSpec(dir: string, spec: CdiSpec): string {
  const path = cdiSpecPath(dir, spec.kind);
  writeTextFile(path, `${JSON.stringify(spec, null, 2)}\n`, 0o644);
  return path;
}

export function removeCdiSpec(dir: string, kind: string): void {
  removeFile(cdiSpecPath(dir, kind));
}

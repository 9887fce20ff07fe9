/**
 * CDI mode (--cdi, as the incumbent's --use-cdi): one spec of kind vdpa-k8s.io/vdpa with a device
 * per vhost VF of every pool, named by its PCI address and carrying its /dev/vhost-vdpa-N node.
 * Allocate then names those devices (cdi_devices) instead of returning DeviceSpecs, and the
 * runtime injects the node. A virtio VF has nothing for a runtime to inject (the CNI moves its
 * netdev), so it has no CDI device: CDI refuses a device without edits.
 */
import { cdiSpecPath, cdiVersionFor, removeCdiSpec, writeCdiSpec, type CdiDevice, type CdiSpec } from '../host/cdi.js';
import type { Logger } from '../host/log.js';
import type { VdpaEndpoint } from '../host/snapshot.js';
import type { Pool } from './pools.js';

export const CDI_KIND = 'vdpa-k8s.io/vdpa';

/** The fully qualified name the runtime resolves: `vdpa-k8s.io/vdpa=0000:65:00.4`. */
export function cdiDeviceName(id: string): string {
  return `${CDI_KIND}=${id}`;
}

/** Whether an endpoint has something for the runtime to inject, and so a CDI device. */
export function hasCdiDevice(ep: VdpaEndpoint): boolean {
  return ep.driver === 'vhost';
}

/** The spec for the pools as they are; null when no device has anything to inject. */
export function cdiSpecFor(pools: readonly Pool[], containerPath: (ep: VdpaEndpoint) => string): CdiSpec | null {
  const devices: CdiDevice[] = [];
  for (const pool of pools) {
    for (const d of pool.devices.values()) {
      if (!d.endpoint || !hasCdiDevice(d.endpoint)) continue;
      const path = containerPath(d.endpoint);
      const node = { path, ...(d.endpoint.path !== path ? { hostPath: d.endpoint.path } : {}), permissions: 'rw' };
      devices.push({ name: d.id, containerEdits: { deviceNodes: [node] } });
    }
  }
  return devices.length ? { cdiVersion: cdiVersionFor(devices), kind: CDI_KIND, devices } : null;
}

/** Keeps the spec file in line with the pools: written when it changes, removed when empty and at stop. */
export class CdiSpecFile {
  /** The text last written (null: removed); undefined until the first sync, which also clears a stale file. */
  private written: string | null | undefined = undefined;
  /** The last failure, so that a directory that cannot be written is reported once. */
  private failure: string | null = null;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  sync(spec: CdiSpec | null): void {
    const text = spec && JSON.stringify(spec);
    if (text !== this.written) this.apply(spec, text, spec ? 'wrote the CDI spec' : 'removed the CDI spec: no device to describe');
  }

  /** At stop: the devices are no longer served. */
  remove(): void {
    if (this.written !== null) this.apply(null, null, 'removed the CDI spec: the plugin stops');
  }

  private apply(spec: CdiSpec | null, text: string | null, done: string): void {
    const file = cdiSpecPath(this.dir, CDI_KIND);
    try {
      if (spec) writeCdiSpec(this.dir, spec);
      else removeCdiSpec(this.dir, CDI_KIND);
    } catch (err) {
      const error = (err as Error).message;
      if (error !== this.failure) this.log.error('cannot update the CDI spec; containers given its devices will not start', { file, error });
      this.failure = error;
      return;
    }
    this.failure = null;
    this.written = text;
    this.log.info(done, { file, ...(spec ? { kind: spec.kind, devices: spec.devices.length } : {}) });
  }
}

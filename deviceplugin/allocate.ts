/**
 * Allocate: pool devices → the container's env, device nodes and DeviceInfo files.
 * Every requested ID is checked before anything is written, so a bad request leaves no trace.
 */
import { basename } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { AllocateRequest, AllocateResponse, CDIDevice, ContainerAllocateResponse, DeviceSpec } from '../proto/gen/deviceplugin_v1beta1.js';
import type { VdpaEndpoint } from '../host/snapshot.js';
import { cdiDeviceName, hasCdiDevice } from './cdi.js';
import type { PoolConfig } from './config.js';
import type { Pool } from './pools.js';

export class AllocateError extends Error {
  override name = 'AllocateError';
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** Where DeviceInfo files live and how they are written; host/deviceinfo.ts behind it. */
export interface DeviceInfoStore {
  path(resource: string, deviceId: string): string;
  /** Atomic: a reader sees the old file or the new one, never a part. */
  write(path: string, endpoint: VdpaEndpoint): void;
  remove(path: string): void;
}

/**
 * `PCIDEVICE_<PREFIX>_<NAME>` exactly as the incumbent computes it (upper case, only "." becomes
 * "_"), so workloads written for it find their devices. Where that is not a valid shell name (a
 * "-" in the prefix or name), the name with every other character turned into "_" is set too.
 */
export function envNames(pool: PoolConfig): string[] {
  const incumbent = `PCIDEVICE_${pool.resourcePrefix}_${pool.resourceName}`.toUpperCase().replaceAll('.', '_');
  return /^[A-Z_][A-Z0-9_]*$/.test(incumbent) ? [incumbent] : [incumbent, incumbent.replace(/[^A-Z0-9_]/g, '_')];
}

/** Inside the container the char device keeps its /dev name, whatever --dev-root says on the host. */
export function containerDevPath(endpoint: VdpaEndpoint): string {
  return `/dev/${basename(endpoint.path)}`;
}

/** The `_INFO` entry of one device, in the incumbent's shape (generic / vdpa / extra). */
function deviceInfoEnv(pool: PoolConfig, endpoint: VdpaEndpoint): Record<string, Record<string, string>> {
  const id = endpoint.pciAddress;
  const vdpa: Record<string, string> = { 'parent-device': endpoint.vdpaDevice, driver: endpoint.driver };
  if (endpoint.driver === 'vhost') vdpa.mount = containerDevPath(endpoint);
  else if (endpoint.netdev) vdpa.netdev = endpoint.netdev;
  const extra = { ...pool.additionalInfo.get('*'), ...pool.additionalInfo.get(id) };
  return { generic: { deviceID: id }, vdpa, ...(Object.keys(extra).length ? { extra } : {}) };
}

/** The endpoints behind the requested IDs, or an error that names every bad one. */
function resolve(pool: Pool, ids: readonly string[]): Map<string, VdpaEndpoint> {
  const out = new Map<string, VdpaEndpoint>();
  const unknown: string[] = [];
  const unhealthy: string[] = [];
  for (const id of ids) {
    const d = pool.devices.get(id);
    if (!d) unknown.push(id);
    else if (d.health !== 'Healthy' || !d.endpoint) unhealthy.push(`${id} (${d.problems.join('; ') || 'not usable'})`);
    else out.set(id, d.endpoint);
  }
  const resource = pool.config.resource;
  if (unknown.length) throw new AllocateError(status.NOT_FOUND, `${resource}: unknown device ID ${unknown.join(', ')}`);
  if (unhealthy.length) throw new AllocateError(status.FAILED_PRECONDITION, `${resource}: device ${unhealthy.join(', ')} is Unhealthy`);
  return out;
}

/** `cdi`: the char devices as CDI device names (the runtime injects them from the spec) instead of DeviceSpecs. */
function containerResponse(pool: PoolConfig, ids: readonly string[], endpoints: ReadonlyMap<string, VdpaEndpoint>, cdi: boolean): ContainerAllocateResponse {
  const info: Record<string, unknown> = {};
  const devices: DeviceSpec[] = [];
  const cdiDevices: CDIDevice[] = [];
  for (const id of ids) {
    const ep = endpoints.get(id)!;
    info[id] = deviceInfoEnv(pool, ep);
    if (!hasCdiDevice(ep)) continue;
    if (cdi) cdiDevices.push({ name: cdiDeviceName(id) });
    else devices.push({ containerPath: containerDevPath(ep), hostPath: ep.path, permissions: 'rw' });
  }
  const envs: Record<string, string> = {};
  for (const key of envNames(pool)) {
    envs[key] = ids.join(',');
    envs[`${key}_INFO`] = JSON.stringify(info);
  }
  return { envs, mounts: [], devices, annotations: {}, cdiDevices };
}

/**
 * Answers one Allocate call from a pool built on a current snapshot. The DeviceInfo files are on
 * disk before this returns; if one cannot be written, the ones written by this call are removed.
 */
export function allocate(pool: Pool, request: AllocateRequest, store: DeviceInfoStore, cdi: boolean): AllocateResponse {
  const endpoints = resolve(pool, request.containerRequests.flatMap((c) => c.devicesIds));
  const containerResponses = request.containerRequests.map((c) => containerResponse(pool.config, c.devicesIds, endpoints, cdi));
  const written: string[] = [];
  try {
    for (const [id, ep] of endpoints) {
      const path = store.path(pool.config.resource, id);
      store.write(path, ep);
      written.push(path);
    }
  } catch (err) {
    for (const path of written) {
      try {
        store.remove(path);
      } catch {
        // Best effort: the write error below is the one that matters.
      }
    }
    throw new AllocateError(status.INTERNAL, `${pool.config.resource}: cannot write DeviceInfo: ${(err as Error).message}`);
  }
  return { containerResponses };
}

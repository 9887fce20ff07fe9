/**
 * The kubelet's pod resources API (podresources v1 over its unix socket): which device IDs the
 * containers of the kubelet's active pods hold. The kubelet is the one that knows; a DeviceInfo
 * file only says a device was handed out once.
 */
import * as grpc from '@grpc/grpc-js';
import { lstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PodResourcesListerClient, type ListPodResourcesResponse } from '../proto/gen/podresources_v1.js';

export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';
/** The kubelet's own client allows 16 MiB: a List on a big node is large. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const LIST_TIMEOUT_MS = 5_000;
/**
 * A kubelet serving for less than this may not know all its pods yet (it lists only the pods its
 * sources have sent so far): its "nobody holds it" is not believed before then.
 */
export const KUBELET_SETTLE_MS = 30_000;

/** `pod-resources/kubelet.sock` beside the device-plugins directory, where the kubelet serves it. */
export function podResourcesSocketBeside(kubeletDir: string): string {
  return join(dirname(kubeletDir), 'pod-resources', 'kubelet.sock');
}

/** One container holding a device, as the kubelet reports it. */
export interface DeviceHolder {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  readonly resource: string;
}

export interface HeldDevices {
  /** Device ID → the containers holding it, for every resource (ours or another plugin's). */
  readonly held: ReadonlyMap<string, readonly DeviceHolder[]>;
  /**
   * When this kubelet started serving (the socket's mtime, set when it was bound). A kubelet that
   * has just started may not know all its pods yet, so a "free" answer from it means little.
   */
  readonly servingSince: number;
}

/** Whether the kubelet has been serving long enough for a device it does not list to be free. */
export function knowsItsPods(h: HeldDevices): boolean {
  return Date.now() - h.servingSince >= KUBELET_SETTLE_MS;
}

export class PodResourcesError extends Error {
  override name = 'PodResourcesError';
}

export function describeHolder(h: DeviceHolder): string {
  return `pod ${h.namespace}/${h.pod}, container ${h.container}, ${h.resource}`;
}

function heldDevices(response: ListPodResourcesResponse): Map<string, DeviceHolder[]> {
  const held = new Map<string, DeviceHolder[]>();
  for (const pod of response.podResources) {
    for (const c of pod.containers) {
      for (const d of c.devices) {
        for (const id of d.deviceIds) {
          const holder = { namespace: pod.namespace, pod: pod.name, container: c.name, resource: d.resourceName };
          held.set(id, [...(held.get(id) ?? []), holder]);
        }
      }
    }
  }
  return held;
}

/** Asks the kubelet now; PodResourcesError says why it could not be asked. */
export async function listHeldDevices(socket: string): Promise<HeldDevices> {
  const st = lstatSync(socket, { throwIfNoEntry: false });
  if (!st?.isSocket()) throw new PodResourcesError(`${socket}: ${st ? 'not a socket' : 'no such socket'} (is the kubelet's pod-resources directory mounted?)`);
  const client = new PodResourcesListerClient(`unix://${socket}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  });
  try {
    const response = await new Promise<ListPodResourcesResponse>((resolve, reject) =>
      client.list({}, new grpc.Metadata(), { deadline: Date.now() + LIST_TIMEOUT_MS }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    return { held: heldDevices(response), servingSince: st.mtimeMs };
  } catch (err) {
    const e = err as grpc.ServiceError;
    throw new PodResourcesError(`${socket}: List failed: ${e.details || e.message}`);
  } finally {
    client.close();
  }
}

/**
 * A kubelet stand-in for device-plugin tests, speaking the real v1beta1 protocol over real unix
 * sockets in a temporary directory:
 * - KubeletStandIn serves Registration on <dir>/kubelet.sock and, like the kubelet, dials each
 *   registered plugin back, asks for its options and follows ListAndWatch;
 * - PluginWatcherStandIn does what the kubelet's plugin watcher does: it finds sockets in a
 *   plugins_registry directory, calls GetInfo, connects to the endpoint and calls
 *   NotifyRegistrationStatus;
 * - PluginClient drives every DevicePlugin RPC; DeviceStream keeps what ListAndWatch sent;
 * - like the kubelet's device manager, both keep a book of which pod's container got which device
 *   at Allocate, and KubeletStandIn serves that book as the pod resources API (podresources v1)
 *   on <dir>/../pod-resources/kubelet.sock, where the plugin looks by default.
 *
 *   const kubelet = await KubeletStandIn.start();
 *   // start the plugin with --kubelet-dir kubelet.dir
 *   const plugin = await kubelet.waitForPlugin('example.com/vdpa');
 *   await plugin.stream.waitFor((ds) => ds.length === 4);
 *   const resp = await plugin.client.allocate([['0000:65:00.2']]);   // pod-1, container c0
 *   kubelet.deletePod('default', 'pod-1');   // the device is free in the kubelet's book
 *   await kubelet.restart();   // deletes every socket, serves kubelet.sock anew
 *   await kubelet.stop();
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  DevicePluginClient,
  RegistrationService,
  type AllocateResponse,
  type Device,
  type DevicePluginOptions,
  type Empty,
  type ListAndWatchResponse,
  type PreferredAllocationResponse,
  type RegisterRequest,
} from '../../proto/gen/deviceplugin_v1beta1.js';
import { RegistrationClient as WatcherRegistrationClient, type PluginInfo } from '../../proto/gen/pluginregistration_v1.js';
import { PodResourcesListerService, type ContainerDevices, type PodResources, type PodResourcesListerServer } from '../../proto/gen/podresources_v1.js';
import { podResourcesSocketBeside } from '../../host/podresources.js';

const EXTENDED_RESOURCE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Resolves when `check` returns a value other than undefined; rejects after `timeoutMs`. */
export async function until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function unary<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown,
  req: Req,
  timeoutMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

/** One update of a ListAndWatch stream and when it arrived (performance.now()). */
export interface DeviceUpdate {
  readonly at: number;
  readonly devices: readonly Device[];
}

/** Follows one ListAndWatch stream. */
export class DeviceStream {
  readonly updates: DeviceUpdate[] = [];
  ended = false;
  error: grpc.ServiceError | null = null;
  private readonly call: grpc.ClientReadableStream<ListAndWatchResponse>;

  constructor(client: DevicePluginClient) {
    this.call = client.listAndWatch({} as Empty);
    this.call.on('data', (m: ListAndWatchResponse) => this.updates.push({ at: performance.now(), devices: m.devices }));
    this.call.on('end', () => (this.ended = true));
    this.call.on('error', (e: grpc.ServiceError) => {
      this.ended = true;
      if (e.code !== grpc.status.CANCELLED) this.error = e;
    });
  }

  /** The last list received, or undefined before the first one. */
  get latest(): readonly Device[] | undefined {
    return this.updates.at(-1)?.devices;
  }

  /** The first list, from now on or already latest, that satisfies `predicate`. */
  waitFor(predicate: (devices: readonly Device[]) => boolean, timeoutMs = 10_000, what = 'a matching device list'): Promise<readonly Device[]> {
    return until(() => (this.latest && predicate(this.latest) ? this.latest : undefined), timeoutMs, `${what}; last list: ${JSON.stringify(this.latest)}`);
  }

  waitForEnd(timeoutMs = 10_000): Promise<boolean> {
    return until(() => (this.ended ? true : undefined), timeoutMs, 'the ListAndWatch stream to end');
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** A pod as the kubelet names it. */
export interface PodRef {
  readonly namespace: string;
  readonly name: string;
}

/** What a successful Allocate did, for the device manager's book. */
type Allocated = (containers: readonly (readonly string[])[], pod: PodRef | undefined) => void;

/** Promise wrappers for every DevicePlugin RPC on one plugin socket. */
export class PluginClient {
  readonly raw: DevicePluginClient;

  constructor(
    readonly socket: string,
    private readonly onAllocated?: Allocated,
  ) {
    this.raw = new DevicePluginClient(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  options(): Promise<DevicePluginOptions> {
    return unary(this.raw.getDevicePluginOptions.bind(this.raw), {} as Empty);
  }

  /**
   * One list of device IDs per container (named c0, c1, …); through a stand-in's connection the
   * devices are then booked to `pod`, by default a new pod-N in namespace default.
   */
  async allocate(containers: readonly (readonly string[])[], pod?: PodRef): Promise<AllocateResponse> {
    const resp = await unary(this.raw.allocate.bind(this.raw), { containerRequests: containers.map((ids) => ({ devicesIds: [...ids] })) });
    this.onAllocated?.(containers, pod);
    return resp;
  }

  preferred(
    containers: readonly { available: readonly string[]; mustInclude?: readonly string[]; size: number }[],
  ): Promise<PreferredAllocationResponse> {
    return unary(this.raw.getPreferredAllocation.bind(this.raw), {
      containerRequests: containers.map((c) => ({
        availableDeviceIDs: [...c.available],
        mustIncludeDeviceIDs: [...(c.mustInclude ?? [])],
        allocationSize: c.size,
      })),
    });
  }

  preStart(ids: readonly string[]): Promise<unknown> {
    return unary(this.raw.preStartContainer.bind(this.raw), { devicesIds: [...ids] });
  }

  watch(): DeviceStream {
    return new DeviceStream(this.raw);
  }

  close(): void {
    this.raw.close();
  }
}

/** A plugin the stand-in has connected to, as the kubelet keeps it. */
export interface ConnectedPlugin {
  readonly resource: string;
  readonly client: PluginClient;
  readonly options: DevicePluginOptions;
  /** The ListAndWatch stream the stand-in opened right after connecting. */
  readonly stream: DeviceStream;
  /** performance.now() when the registration arrived. */
  readonly registeredAt: number;
}

/** One pod in the device manager's book: container → resource → device IDs. */
export interface PodDevices extends PodRef {
  readonly containers: Map<string, Map<string, string[]>>;
}

/** What the kubelet's device manager does once it knows a plugin's endpoint. */
abstract class DevicePluginHost {
  /** Every plugin connection, oldest first; the last one per resource is the live one. */
  readonly connections: ConnectedPlugin[] = [];
  readonly errors: string[] = [];
  /** The device manager's book (its checkpoint, so a restart keeps it), by `namespace/name`. */
  readonly pods = new Map<string, PodDevices>();
  private podCount = 0;

  /** Books devices to a pod's containers (c0, c1, …) as a successful Allocate does; a new pod-N when `ref` is not given. */
  book(resource: string, containers: readonly (readonly string[])[], ref?: PodRef): void {
    const { namespace, name } = ref ?? { namespace: 'default', name: `pod-${++this.podCount}` };
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key) ?? { namespace, name, containers: new Map<string, Map<string, string[]>>() };
    this.pods.set(key, pod);
    containers.forEach((ids, i) => {
      const byResource = pod.containers.get(`c${i}`) ?? new Map<string, string[]>();
      byResource.set(resource, [...(byResource.get(resource) ?? []), ...ids]);
      pod.containers.set(`c${i}`, byResource);
    });
  }

  /** A deleted pod: its devices are free in the book. False when there was no such pod. */
  deletePod(namespace: string, name: string): boolean {
    return this.pods.delete(`${namespace}/${name}`);
  }

  /** The pods whose containers hold a device. */
  holders(id: string): PodDevices[] {
    return [...this.pods.values()].filter((p) => [...p.containers.values()].some((r) => [...r.values()].some((ids) => ids.includes(id))));
  }

  /** The book as the pod resources API reports a pod. */
  protected podResources(pod: PodDevices): PodResources {
    return {
      name: pod.name,
      namespace: pod.namespace,
      containers: [...pod.containers].map(([name, byResource]) => ({
        name,
        devices: [...byResource].map(([resourceName, deviceIds]): ContainerDevices => ({ resourceName, deviceIds, topology: undefined })),
        cpuIds: [],
        memory: [],
        dynamicResources: [],
      })),
    };
  }

  protected async connect(resource: string, socket: string, registeredAt: number): Promise<void> {
    const client = new PluginClient(socket, (containers, pod) => this.book(resource, containers, pod));
    try {
      const options = await client.options();
      const stream = client.watch();
      for (const old of this.connections.filter((c) => c.resource === resource)) old.client.close();
      this.connections.push({ resource, client, options, stream, registeredAt });
    } catch (err) {
      client.close();
      this.errors.push(`${resource}: ${(err as Error).message}`);
    }
  }

  /** The live connection to a resource's plugin. */
  plugin(resource: string): ConnectedPlugin | undefined {
    return this.connections.filter((c) => c.resource === resource).at(-1);
  }

  /** Waits for the `count`-th connection to a resource (1 = the first registration). */
  waitForPlugin(resource: string, count = 1, timeoutMs = 10_000): Promise<ConnectedPlugin> {
    return until(
      () => this.connections.filter((c) => c.resource === resource)[count - 1],
      timeoutMs,
      `registration #${count} of ${resource} (errors: ${this.errors.join('; ') || 'none'})`,
    );
  }

  protected closeConnections(): void {
    for (const c of this.connections) {
      c.stream.cancel();
      c.client.close();
    }
  }
}

export interface KubeletOptions {
  /**
   * The device-plugins directory; default `device-plugins` in a new temporary directory (removed
   * by stop()). The pod resources socket goes beside it, as the kubelet lays them out.
   */
  readonly dir?: string;
  /** Return an error message to refuse a registration, as the kubelet does for bad requests. */
  readonly refuse?: (req: RegisterRequest) => string | null;
}

/** A kubelet that has been up this long knows its pods: the stand-in's socket is dated back so. */
const SETTLED_KUBELET_AGE_MS = 3_600_000;

export class KubeletStandIn extends DevicePluginHost {
  readonly dir: string;
  readonly socket: string;
  /** `<dir>/../pod-resources/kubelet.sock`. */
  readonly podResourcesSocket: string;
  /** Every Register request received, in order. */
  readonly registrations: RegisterRequest[] = [];
  private server: grpc.Server | null = null;
  private podResourcesServer: grpc.Server | null = null;
  private readonly ownsDir: string | null;

  private constructor(private readonly opts: KubeletOptions) {
    super();
    this.ownsDir = opts.dir ? null : mkdtempSync(join(tmpdir(), 'vdpa-kubelet-'));
    this.dir = opts.dir ?? join(this.ownsDir!, 'device-plugins');
    mkdirSync(this.dir, { recursive: true });
    this.socket = join(this.dir, 'kubelet.sock');
    this.podResourcesSocket = podResourcesSocketBeside(this.dir);
  }

  static async start(opts: KubeletOptions = {}): Promise<KubeletStandIn> {
    const k = new KubeletStandIn(opts);
    await k.serve();
    await k.servePodResources(SETTLED_KUBELET_AGE_MS);
    return k;
  }

  private podResourcesHandlers(): PodResourcesListerServer {
    return {
      list: (_call, cb) => cb(null, { podResources: [...this.pods.values()].map((p) => this.podResources(p)) }),
      getAllocatableResources: (_call, cb) => {
        const devices = this.connections
          .filter((c) => this.plugin(c.resource) === c)
          .flatMap((c) => (c.stream.latest ?? []).map((d): ContainerDevices => ({ resourceName: c.resource, deviceIds: [d.ID], topology: d.topology })));
        cb(null, { devices, cpuIds: [], memory: [] });
      },
      get: (call, cb) => {
        const pod = this.pods.get(`${call.request.podNamespace}/${call.request.podName}`);
        if (pod) cb(null, { podResources: this.podResources(pod) });
        else cb({ code: grpc.status.UNKNOWN, details: `pod ${call.request.podName} in namespace ${call.request.podNamespace} not found` });
      },
    };
  }

  /**
   * Serves the pod resources API; `ageMs` dates the socket back, as if this kubelet had been
   * serving that long (0: it has just started).
   */
  async servePodResources(ageMs = 0): Promise<void> {
    this.stopPodResources();
    mkdirSync(dirname(this.podResourcesSocket), { recursive: true });
    const server = new grpc.Server();
    server.addService(PodResourcesListerService, this.podResourcesHandlers());
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.podResourcesSocket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    const since = new Date(Date.now() - ageMs);
    utimesSync(this.podResourcesSocket, since, since);
    this.podResourcesServer = server;
  }

  /** No pod resources API (an old kubelet, the socket not mounted): its socket goes. */
  stopPodResources(): void {
    this.podResourcesServer?.forceShutdown();
    this.podResourcesServer = null;
    rmSync(this.podResourcesSocket, { force: true });
  }

  private async serve(): Promise<void> {
    const server = new grpc.Server();
    server.addService(RegistrationService, {
      register: (call: grpc.ServerUnaryCall<RegisterRequest, Empty>, cb: grpc.sendUnaryData<Empty>) => {
        const req = call.request;
        const at = performance.now();
        this.registrations.push(req);
        const refusal =
          req.version !== 'v1beta1'
            ? `unsupported API version ${req.version}`
            : !EXTENDED_RESOURCE.test(req.resourceName)
              ? `invalid resource name ${req.resourceName}`
              : (this.opts.refuse?.(req) ?? null);
        if (refusal) {
          cb({ code: grpc.status.INVALID_ARGUMENT, details: refusal });
          return;
        }
        cb(null, {});
        void this.connect(req.resourceName, join(this.dir, req.endpoint), at);
      },
    });
    rmSync(this.socket, { force: true });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    this.server = server;
  }

  /** Sockets other than kubelet.sock in the directory (what plugins serve on). */
  pluginSockets(): string[] {
    return readdirSync(this.dir).filter((n) => n !== 'kubelet.sock' && lstatSync(join(this.dir, n)).isSocket());
  }

  /**
   * What a restarting kubelet does: stop serving, delete every socket in the directory
   * (the plugins' included), then serve kubelet.sock again. `keepPluginSockets` leaves the
   * plugins' sockets alone: only kubelet.sock is new. The book of pods stays (the kubelet's
   * checkpoint); the pod resources socket is new, of a kubelet that has just started.
   */
  async restart(opts: { keepPluginSockets?: boolean } = {}): Promise<void> {
    this.server?.forceShutdown();
    this.server = null;
    this.stopPodResources();
    this.closeConnections();
    for (const name of readdirSync(this.dir)) {
      const p = join(this.dir, name);
      if (opts.keepPluginSockets && name !== 'kubelet.sock') continue;
      if (lstatSync(p, { throwIfNoEntry: false })?.isSocket()) unlinkSync(p);
    }
    await this.serve();
    await this.servePodResources();
  }

  async stop(): Promise<void> {
    this.closeConnections();
    this.server?.forceShutdown();
    this.server = null;
    this.stopPodResources();
    if (this.ownsDir) rmSync(this.ownsDir, { recursive: true, force: true });
    else rmSync(this.socket, { force: true });
  }
}

/** The kubelet's plugin watcher on a plugins_registry directory. */
export class PluginWatcherStandIn extends DevicePluginHost {
  readonly dir: string;
  /** GetInfo answers, by socket path. */
  readonly infos = new Map<string, PluginInfo>();
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Set<string>();
  private readonly ownsDir: boolean;

  private constructor(
    dir: string | undefined,
    private readonly verdict: (info: PluginInfo) => string | null,
  ) {
    super();
    this.ownsDir = !dir;
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'vdpa-plugins-registry-'));
    mkdirSync(this.dir, { recursive: true });
  }

  /** `verdict` returns an error to report through NotifyRegistrationStatus instead of success. */
  static start(opts: { dir?: string; verdict?: (info: PluginInfo) => string | null } = {}): PluginWatcherStandIn {
    const w = new PluginWatcherStandIn(opts.dir, opts.verdict ?? (() => null));
    w.timer = setInterval(() => w.scan(), 20);
    return w;
  }

  /** Socket files the watcher would consider (names starting with "." are ignored, as the kubelet does). */
  private scan(): void {
    if (!existsSync(this.dir)) return;
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      const st = lstatSync(path, { throwIfNoEntry: false });
      // Inode numbers are reused at once; with the change time a re-created socket is a new one.
      const key = `${path}#${st?.ino}/${st?.ctimeMs}`;
      if (name.startsWith('.') || !st?.isSocket() || this.seen.has(key)) continue;
      this.seen.add(key);
      void this.register(path, key);
    }
  }

  private async register(socket: string, key: string): Promise<void> {
    const client = new WatcherRegistrationClient(`unix://${socket}`, grpc.credentials.createInsecure());
    const at = performance.now();
    try {
      let info: PluginInfo;
      try {
        info = await unary(client.getInfo.bind(client), {});
      } catch (err) {
        // Like the kubelet's reconciler: a socket that does not answer yet is tried again later.
        this.seen.delete(key);
        throw err;
      }
      this.infos.set(socket, info);
      const refusal = info.type !== 'DevicePlugin' ? `unsupported plugin type ${info.type}` : this.verdict(info);
      if (!refusal) await this.connect(info.name, info.endpoint, at);
      await unary(client.notifyRegistrationStatus.bind(client), { pluginRegistered: !refusal, error: refusal ?? '' });
    } catch (err) {
      this.errors.push(`${socket}: ${(err as Error).message}`);
    } finally {
      client.close();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.closeConnections();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * One gRPC server per pool on its own unix socket: serve first, then register (with the kubelet's
 * Registration service, or by answering the plugin watcher's GetInfo from the registry directory).
 */
import * as grpc from '@grpc/grpc-js';
import { lstatSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  DevicePluginService,
  RegistrationClient,
  type AllocateRequest,
  type AllocateResponse,
  type DevicePluginServer,
  type Empty,
  type ListAndWatchResponse,
  type RegisterRequest,
} from '../proto/gen/deviceplugin_v1beta1.js';
import { RegistrationService as WatcherRegistrationService, type RegistrationServer as WatcherRegistrationServer } from '../proto/gen/pluginregistration_v1.js';
import type { Logger } from '../host/log.js';
import { AllocateError } from './allocate.js';
import type { PoolConfig } from './config.js';
import type { Metrics } from './metrics.js';
import { advertised, type Pool } from './pools.js';
import { preferredAllocation } from './preferred.js';

export const KUBELET_SOCKET = 'kubelet.sock';
const API_VERSION = 'v1beta1';
/** GetPreferredAllocation is implemented; PreStartContainer is not needed. */
const OPTIONS = { preStartRequired: false, getPreferredAllocationAvailable: true } as const;
const REGISTER_TIMEOUT_MS = 5_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

export type RegistrationMode = 'kubelet' | 'watcher';

export interface PoolServerOptions {
  readonly config: PoolConfig;
  readonly mode: RegistrationMode;
  readonly kubeletDir: string;
  readonly registryDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The pool as it is now. */
  readonly pool: () => Pool;
  /** Allocate against a current view of the node. */
  readonly allocate: (request: AllocateRequest) => AllocateResponse;
}

/** `<prefix>_<name>.sock`: unique per resource, since a prefix cannot contain "_". */
export function socketName(config: PoolConfig): string {
  return `${config.resourcePrefix}_${config.resourceName}.sock`;
}

/**
 * A socket file's identity: inode and change time, since a deleted socket's inode number is often
 * reused at once by the next one (a kubelet restarting quickly). null when there is no socket.
 */
function identity(path: string): string | null {
  const st = lstatSync(path, { throwIfNoEntry: false });
  return st?.isSocket() ? `${st.ino}/${st.ctimeMs}` : null;
}

type Stream = grpc.ServerWritableStream<Empty, ListAndWatchResponse>;

export class PoolServer {
  readonly resource: string;
  readonly socketPath: string;
  private readonly log: Logger;
  private server: grpc.Server | null = null;
  private socketId: string | null = null;
  /** Each open ListAndWatch stream and the list it was sent last. */
  private readonly streams = new Map<Stream, string>();
  /** kubelet.sock's identity at the last successful Register: a new one is a new kubelet. */
  private registeredWith: string | null = null;
  /** kubelet.sock's identity at the last Register attempt (undefined before the first). */
  private attemptedWith: string | null | undefined = undefined;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay = RETRY_MIN_MS;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: PoolServerOptions) {
    this.resource = opts.config.resource;
    this.socketPath = join(opts.mode === 'watcher' ? opts.registryDir : opts.kubeletDir, socketName(opts.config));
    this.log = opts.logger.with({ resource: this.resource });
  }

  private get kubeletSocket(): string {
    return join(this.opts.kubeletDir, KUBELET_SOCKET);
  }

  /** Runs steps one at a time: socket events arrive in bursts and must not interleave. */
  private serialize(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue
      .then(() => (this.stopped ? undefined : step()))
      .catch((err: unknown) => this.log.error('server step failed', { error: err }));
    return this.queue;
  }

  start(): Promise<void> {
    return this.serialize(() => this.serveAndRegister('start'));
  }

  /**
   * Called on any event in the socket directories and on every periodic check: re-serves when our
   * socket is gone (a restarting kubelet deletes it), re-registers when kubelet.sock is new.
   */
  check(): Promise<void> {
    return this.serialize(async () => {
      if (identity(this.socketPath) !== this.socketId || this.socketId === null) {
        await this.serveAndRegister('socket missing or replaced');
      } else if (this.opts.mode === 'kubelet' && this.registeredWith !== identity(this.kubeletSocket)) {
        await this.register();
      }
    });
  }

  /** Sends the pool to every ListAndWatch stream that has not seen this exact list. */
  update(): void {
    const devices = advertised(this.opts.pool());
    const key = JSON.stringify(devices);
    for (const [stream, sent] of this.streams) {
      if (sent === key) continue;
      stream.write({ devices });
      this.streams.set(stream, key);
    }
  }

  async stop(): Promise<void> {
    await this.serialize(async () => {
      this.stopped = true;
      this.clearRetry();
      this.closeServer();
    });
  }

  private async serveAndRegister(why: string): Promise<void> {
    await this.serve(why);
    if (this.server && this.opts.mode === 'kubelet') await this.register();
  }

  private async serve(why: string): Promise<void> {
    this.closeServer();
    const dir = dirname(this.socketPath);
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      // The kubelet creates it; the directory watch (or the periodic check) calls back.
      this.log.warn('socket directory missing; serving once it exists', { dir });
      return;
    }
    // A stale socket (a crash, an old kubelet) would make bind fail.
    try {
      unlinkSync(this.socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = new grpc.Server();
    server.addService(DevicePluginService, this.devicePluginHandlers());
    if (this.opts.mode === 'watcher') server.addService(WatcherRegistrationService, this.watcherHandlers());
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix://${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      server.forceShutdown();
      throw new Error(`cannot serve on ${this.socketPath}: ${(err as Error).message}`);
    }
    this.server = server;
    this.socketId = identity(this.socketPath);
    this.registeredWith = null;
    this.setRegistered(false);
    this.log.info('serving', { socket: this.socketPath, reason: why });
  }

  /** Ends the streams, stops the server and removes the socket if it is still ours. */
  private closeServer(): void {
    for (const stream of this.streams.keys()) stream.end();
    this.streams.clear();
    this.server?.forceShutdown();
    this.server = null;
    if (this.socketId !== null && identity(this.socketPath) === this.socketId) unlinkSync(this.socketPath);
    this.socketId = null;
    this.setRegistered(false);
  }

  /** Registered with the kubelet now: the readiness probe and the registered gauge. */
  isRegistered = false;

  private setRegistered(on: boolean): void {
    this.isRegistered = on;
    this.opts.metrics.registered.set({ resource: this.resource, mode: this.opts.mode }, on ? 1 : 0);
  }

  private async register(): Promise<void> {
    this.clearRetry();
    const kubelet = identity(this.kubeletSocket);
    const changed = kubelet !== this.attemptedWith;
    // A new kubelet gets quick retries: it creates its socket a moment before it listens.
    if (changed) this.retryDelay = RETRY_MIN_MS;
    this.attemptedWith = kubelet;
    if (kubelet === null) {
      // Its creation is an event in the directory; the timer is only a fallback.
      if (changed) this.log.info('waiting for the kubelet', { socket: this.kubeletSocket });
      this.retryLater();
      return;
    }
    const request: RegisterRequest = {
      version: API_VERSION,
      endpoint: socketName(this.opts.config),
      resourceName: this.resource,
      options: { ...OPTIONS },
    };
    const client = new RegistrationClient(`unix://${this.kubeletSocket}`, grpc.credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) =>
        client.register(request, new grpc.Metadata(), { deadline: Date.now() + REGISTER_TIMEOUT_MS }, (err) => (err ? reject(err) : resolve())),
      );
      this.registeredWith = kubelet;
      this.retryDelay = RETRY_MIN_MS;
      this.opts.metrics.registrations.inc({ resource: this.resource, mode: 'kubelet', result: 'ok' });
      this.setRegistered(true);
      this.log.info('registered with the kubelet', { endpoint: request.endpoint });
    } catch (err) {
      this.opts.metrics.registrations.inc({ resource: this.resource, mode: 'kubelet', result: 'error' });
      this.log.warn('registration failed; retrying', { error: (err as grpc.ServiceError).details || err, retryMs: this.retryDelay });
      this.retryLater();
    } finally {
      client.close();
    }
  }

  private retryLater(force = false): void {
    this.clearRetry();
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (force) void this.serialize(() => this.serveAndRegister('registration rejected'));
      else void this.check();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private devicePluginHandlers(): DevicePluginServer {
    const resource = this.resource;
    const metrics = this.opts.metrics;
    return {
      getDevicePluginOptions: (_call, cb) => cb(null, { ...OPTIONS }),
      listAndWatch: (call) => {
        const devices = advertised(this.opts.pool());
        this.streams.set(call, JSON.stringify(devices));
        const drop = (): void => void this.streams.delete(call);
        call.on('cancelled', drop);
        call.on('close', drop);
        call.on('error', drop);
        call.write({ devices });
        this.log.info('ListAndWatch opened', { devices: devices.length });
      },
      getPreferredAllocation: (call, cb) => {
        const pool = this.opts.pool();
        const containerResponses = call.request.containerRequests.map((c) => ({
          deviceIDs: preferredAllocation(
            { available: c.availableDeviceIDs, mustInclude: c.mustIncludeDeviceIDs, size: c.allocationSize },
            (id) => pool.devices.get(id),
          ),
        }));
        this.log.debug('preferred allocation', { containers: containerResponses.map((c) => c.deviceIDs) });
        cb(null, { containerResponses });
      },
      allocate: (call, cb) => {
        const done = metrics.allocateSeconds.startTimer({ resource });
        const ids = call.request.containerRequests.map((c) => c.devicesIds);
        // One loop turn first, so that node events queued before this call (a vDPA device rebound
        // a moment ago) have been seen and the answer reflects the node as it is now.
        setImmediate(() => {
          try {
            const response = this.opts.allocate(call.request);
            metrics.allocations.inc({ resource, result: 'ok' });
            metrics.allocatedDevices.inc({ resource }, ids.flat().length);
            this.log.info('allocated', { containers: ids });
            cb(null, response);
          } catch (err) {
            const code = err instanceof AllocateError ? err.code : grpc.status.INTERNAL;
            metrics.allocations.inc({ resource, result: grpc.status[code] });
            this.log.warn('allocate refused', { containers: ids, error: err });
            cb({ code, details: (err as Error).message });
          } finally {
            done();
          }
        });
      },
      preStartContainer: (_call, cb) => cb(null, {}),
    };
  }

  private watcherHandlers(): WatcherRegistrationServer {
    return {
      getInfo: (_call, cb) =>
        cb(null, { type: 'DevicePlugin', name: this.resource, endpoint: this.socketPath, supportedVersions: [API_VERSION] }),
      notifyRegistrationStatus: (call, cb) => {
        const ok = call.request.pluginRegistered;
        this.opts.metrics.registrations.inc({ resource: this.resource, mode: 'watcher', result: ok ? 'ok' : 'error' });
        this.setRegistered(ok);
        if (ok) {
          this.retryDelay = RETRY_MIN_MS;
          this.log.info('registered through the plugin watcher', { socket: this.socketPath });
        } else {
          // A new socket is what makes the watcher try again.
          this.log.error('the kubelet rejected the registration; re-serving', { error: call.request.error, retryMs: this.retryDelay });
          this.retryLater(true);
        }
        cb(null, {});
      },
    };
  }
}

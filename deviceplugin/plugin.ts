/**
 * The running plugin: the config (reloaded when its file changes), the view of the node that
 * rescan.ts keeps current, and one server per pool that serves it to the kubelet (registering
 * again when the kubelet restarts), all driven by one periodic tick.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AllocateRequest, AllocateResponse } from '../proto/gen/deviceplugin_v1beta1.js';
import { deviceInfoFromEndpoint, dpDeviceInfoPath, removeDeviceInfo, writeDeviceInfo } from '../host/deviceinfo.js';
import type { Logger } from '../host/log.js';
import { allocate, containerDevPath, type DeviceInfoStore } from './allocate.js';
import { cdiSpecFor, CdiSpecFile } from './cdi.js';
import { ConfigError, parseConfigText, type Config, type PoolConfig } from './config.js';
import type { Flags } from './flags.js';
import type { Metrics } from './metrics.js';
import { Rescanner } from './rescan.js';
import { KUBELET_SOCKET, PoolServer, type RegistrationMode } from './server.js';
import { Debounced, DirWatch, WatchSet } from './watch.js';

/**
 * Rescans run at least every 5 s; events make most changes visible much sooner. A scan blocks the
 * event loop (tens of ms on a big node), so a periodic one waits while Allocate calls are being
 * answered, up to the 5 s bound.
 */
const TICK_MS = 4_000;
const MAX_DEFER_MS = 1_000;
const BUSY_MS = 100;
const CONFIG_EVENT_DEBOUNCE_MS = 100;

export interface PluginOptions {
  readonly flags: Flags;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** Reads and validates the config file; every failure is a ConfigError naming the file or field. */
function loadConfig(path: string, defaultPrefix: string): { text: string; config: Config } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the config file: ${(err as Error).message}`);
  }
  return { text, config: parseConfigText(text, defaultPrefix) };
}

export class Plugin {
  private registrationMode: RegistrationMode;
  private readonly log: Logger;
  private config: Config;
  private configText: string;
  /** The text of the last rejected edit, so an invalid file is reported once, not every tick. */
  private rejectedText: string | null = null;
  private readonly node: Rescanner;
  private readonly servers = new Map<string, PoolServer>();
  private readonly store: DeviceInfoStore;
  /** With --cdi: the spec Allocate's CDI device names refer to. */
  private readonly cdi: CdiSpecFile | null;
  private readonly socketWatch: WatchSet;
  private readonly configWatch: DirWatch;
  private readonly reloadSoon: Debounced;
  private tick: NodeJS.Timeout | null = null;
  private lastAllocateAt = -Infinity;
  private stopped = false;

  private constructor(private readonly opts: PluginOptions) {
    const { flags, logger } = opts;
    this.log = logger;
    this.registrationMode = flags.registration === 'auto' ? (isDirectory(flags.pluginsRegistryDir) ? 'watcher' : 'kubelet') : flags.registration;
    ({ text: this.configText, config: this.config } = loadConfig(flags.config, flags.resourcePrefix));
    this.cdi = flags.cdi ? new CdiSpecFile(flags.cdiDir, logger) : null;
    this.store = {
      path: (resource, id) => dpDeviceInfoPath(flags.devinfoDir, resource, id),
      write: (path, ep) => writeDeviceInfo(path, deviceInfoFromEndpoint(ep)),
      remove: removeDeviceInfo,
    };
    this.reloadSoon = new Debounced(() => this.reloadConfig(), CONFIG_EVENT_DEBOUNCE_MS);
    this.socketWatch = new WatchSet((_dir, name) => this.onSocketEvent(name));
    this.node = new Rescanner({
      flags,
      logger,
      metrics: opts.metrics,
      config: () => this.config,
      onPools: (pools) => {
        // The spec first: a device the kubelet may allocate must be in it.
        this.cdi?.sync(cdiSpecFor(pools, containerDevPath));
        for (const server of this.servers.values()) server.update();
      },
    });
    const configName = resolve(flags.config).split('/').pop()!;
    // ConfigMap volumes swap a `..data` symlink instead of writing the file.
    this.configWatch = new DirWatch(resolve(flags.config, '..'), (name) => {
      if (name === null || name === configName || name === '..data') this.reloadSoon.trigger();
    });
  }

  /** Loads the config (ConfigError when invalid), discovers, serves and registers every pool. */
  static async start(opts: PluginOptions): Promise<Plugin> {
    const plugin = new Plugin(opts);
    try {
      await plugin.begin();
    } catch (err) {
      await plugin.stop();
      throw err;
    }
    return plugin;
  }

  private async begin(): Promise<void> {
    const { flags } = this.opts;
    this.log.info('starting', {
      mode: this.mode,
      config: flags.config,
      pools: this.config.pools.map((p) => p.resource),
      sysfsRoot: flags.sysfsRoot,
      devRoot: flags.devRoot,
      devinfoDir: flags.devinfoDir,
      podResourcesSocket: flags.podResourcesSocket,
    });
    this.warnConfig();
    await this.node.refreshDevlink();
    await this.node.rescanAndRelease('start');
    this.socketWatch.set(this.mode === 'watcher' ? [flags.pluginsRegistryDir] : [flags.kubeletDir]);
    await this.reconcileServers();
    this.scheduleTick(TICK_MS, 0);
    if (flags.registration === 'auto' && this.mode === 'watcher') this.fallbackTimer = setTimeout(() => void this.fallBackToKubelet(), flags.watcherGraceMs);
  }

  get mode(): RegistrationMode {
    return this.registrationMode;
  }

  private fallbackTimer: NodeJS.Timeout | null = null;

  /**
   * `auto` chose the plugin watcher because the registry directory exists, but a directory made
   * by the DaemonSet's hostPath (DirectoryOrCreate) is not necessarily the one the kubelet
   * watches: when no pool was picked up in time, register through kubelet.sock instead.
   */
  private async fallBackToKubelet(): Promise<void> {
    if (this.stopped || [...this.servers.values()].some((s) => s.isRegistered)) return;
    const { flags } = this.opts;
    this.log.warn('the kubelet never picked up the plugin-watcher sockets; registering through kubelet.sock instead', {
      pluginsRegistryDir: flags.pluginsRegistryDir,
      waitedMs: flags.watcherGraceMs,
      kubeletSocket: join(flags.kubeletDir, KUBELET_SOCKET),
    });
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
    this.registrationMode = 'kubelet';
    this.socketWatch.set([flags.kubeletDir]);
    await this.reconcileServers();
  }

  /** Ready when every pool is registered with the kubelet; what is not, otherwise. */
  readiness(): { ready: boolean; detail: string } {
    const waiting = [...this.servers.values()].filter((s) => !s.isRegistered).map((s) => s.resource);
    return waiting.length ? { ready: false, detail: `not registered with the kubelet (${this.mode}): ${waiting.join(', ')}` } : { ready: true, detail: 'registered' };
  }

  /** The tick also keeps the process alive while no socket is served (no kubelet directory yet). */
  private scheduleTick(ms: number, deferred: number): void {
    if (this.stopped) return;
    this.tick = setTimeout(() => {
      const busy = performance.now() - this.lastAllocateAt < BUSY_MS;
      if (busy && deferred < MAX_DEFER_MS) this.scheduleTick(BUSY_MS, deferred + BUSY_MS);
      else void this.periodic().finally(() => this.scheduleTick(TICK_MS, 0));
    }, ms);
  }

  private allocate(config: PoolConfig, request: AllocateRequest): AllocateResponse {
    this.lastAllocateAt = performance.now();
    this.node.rescanIfDirty('allocate after a node change');
    const response = allocate(this.node.pool(config), request, this.store, this.cdi !== null);
    this.node.markAllocated(request.containerRequests.flatMap((c) => c.devicesIds));
    return response;
  }

  private onSocketEvent(name: string | null): void {
    if (this.stopped) return;
    if (name !== null && name !== KUBELET_SOCKET && !name.endsWith('.sock')) return;
    for (const server of this.servers.values()) void server.check();
  }

  private async periodic(): Promise<void> {
    if (this.stopped) return;
    this.socketWatch.ensure();
    this.node.ensureWatch();
    this.configWatch.ensure();
    await this.node.refreshDevlink();
    this.reloadConfig();
    await this.node.rescanAndRelease('periodic');
    for (const server of this.servers.values()) void server.check();
  }

  /** Re-reads the config file; an invalid edit is logged and the running config stays. */
  reloadConfig(): void {
    if (this.stopped) return;
    const { flags, metrics } = this.opts;
    let next: { text: string; config: Config };
    try {
      next = loadConfig(flags.config, flags.resourcePrefix);
    } catch (err) {
      const text = (err as Error).message;
      if (text !== this.rejectedText) {
        metrics.configReloads.inc({ result: 'invalid' });
        this.log.error('config edit rejected; keeping the running config', { config: flags.config, error: text });
        this.rejectedText = text;
      }
      return;
    }
    this.rejectedText = null;
    if (next.text === this.configText) return;
    this.configText = next.text;
    this.config = next.config;
    metrics.configReloads.inc({ result: 'ok' });
    this.log.info('config reloaded', { pools: next.config.pools.map((p) => p.resource) });
    this.warnConfig();
    this.node.repool();
    void this.reconcileServers();
  }

  /** What loads but does nothing here (pools of plain VFs, …): one warning each. */
  private warnConfig(): void {
    for (const warning of this.config.warnings) this.log.warn(warning, { config: this.opts.flags.config });
  }

  /** One server per configured pool: start the new ones, stop the ones no longer configured. */
  private async reconcileServers(): Promise<void> {
    const { flags, logger, metrics } = this.opts;
    const wanted = new Set(this.config.pools.map((p) => p.resource));
    const stopping = [...this.servers].filter(([resource]) => !wanted.has(resource));
    for (const [resource] of stopping) this.servers.delete(resource);
    const starting: PoolServer[] = [];
    for (const config of this.config.pools) {
      if (this.servers.has(config.resource)) continue;
      const server = new PoolServer({
        config,
        mode: this.mode,
        kubeletDir: flags.kubeletDir,
        registryDir: flags.pluginsRegistryDir,
        logger,
        metrics,
        pool: () => this.node.pool(config),
        allocate: (request) => this.allocate(config, request),
      });
      this.servers.set(config.resource, server);
      starting.push(server);
    }
    await Promise.all([...stopping.map(([, s]) => s.stop()), ...starting.map((s) => s.start())]);
  }

  /** Stops every server and removes its socket. DeviceInfo files stay: pods may still use them. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.node.close();
    if (this.tick) clearTimeout(this.tick);
    if (this.fallbackTimer) clearTimeout(this.fallbackTimer);
    this.reloadSoon.cancel();
    this.socketWatch.close();
    this.configWatch.close();
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
    this.cdi?.remove();
  }
}

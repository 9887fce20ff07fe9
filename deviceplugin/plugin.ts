/**
 * The running plugin: config → snapshot → pools → one server per pool, kept current by
 * watch → rescan → diff → ListAndWatch, config reloads and kubelet restarts.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AllocateRequest, AllocateResponse } from '../proto/gen/deviceplugin_v1beta1.js';
import { listDevlinkPorts, type DevlinkPort } from '../host/devlink.js';
import {
  deviceInfoFromEndpoint,
  dpDeviceInfoFiles,
  dpDeviceInfoPath,
  readDeviceInfo,
  type VdpaInfo,
  removeDeviceInfo,
  writeDeviceInfo,
} from '../host/deviceinfo.js';
import { discover } from '../host/discover.js';
import type { Logger } from '../host/log.js';
import type { Snapshot } from '../host/snapshot.js';
import { allocate, type DeviceInfoStore } from './allocate.js';
import { ConfigError, parseConfigText, type Config, type PoolConfig } from './config.js';
import type { Flags } from './flags.js';
import type { Metrics } from './metrics.js';
import { advertisableEndpoints, buildPools, describeChanges, type Pool } from './pools.js';
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
/** A burst of node events (one rebind touches several files) is read by one scan this much later. */
const NODE_EVENT_DELAY_MS = 30;
/** Event-driven scans leave the loop free at least as long as they took: at most half the CPU. */
const SCAN_GAP_FACTOR = 1;
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
  readonly mode: RegistrationMode;
  private readonly log: Logger;
  private config: Config;
  private configText: string;
  /** The text of the last rejected edit, so an invalid file is reported once, not every tick. */
  private rejectedText: string | null = null;
  private snapshot: Snapshot = { functions: new Map(), vdpa: new Map(), errors: [] };
  private pools: readonly Pool[] = [];
  private readonly servers = new Map<string, PoolServer>();
  private devlinkPorts: readonly DevlinkPort[] = [];
  /** Node events arrived since the last scan: Allocate rescans before answering. */
  private dirty = false;
  private lastErrors = '';
  /** Functions and vDPA devices of the last scan, to act only when that set changes. */
  private deviceSet = '';
  private syncedFor: string | null = null;
  /** Device IDs with a DeviceInfo file: handed out, and maybe still in a pod. */
  private allocated = new Set<string>();
  private devlinkFor: string | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private lastScanEnd = 0;
  private lastScanMs = 0;
  private readonly store: DeviceInfoStore;
  private readonly socketWatch: WatchSet;
  private readonly nodeWatch: WatchSet;
  private readonly configWatch: DirWatch;
  private readonly reloadSoon: Debounced;
  private tick: NodeJS.Timeout | null = null;
  private lastAllocateAt = -Infinity;
  private stopped = false;

  private constructor(private readonly opts: PluginOptions) {
    const { flags, logger } = opts;
    this.log = logger;
    this.mode = flags.registration === 'auto' ? (isDirectory(flags.pluginsRegistryDir) ? 'watcher' : 'kubelet') : flags.registration;
    ({ text: this.configText, config: this.config } = loadConfig(flags.config, flags.resourcePrefix));
    this.store = {
      path: (resource, id) => dpDeviceInfoPath(flags.devinfoDir, resource, id),
      write: (path, ep) => writeDeviceInfo(path, deviceInfoFromEndpoint(ep)),
      remove: removeDeviceInfo,
    };
    this.reloadSoon = new Debounced(() => this.reloadConfig(), CONFIG_EVENT_DEBOUNCE_MS);
    this.socketWatch = new WatchSet((_dir, name) => this.onSocketEvent(name));
    this.nodeWatch = new WatchSet((dir, name) => this.onNodeEvent(dir, name));
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
    });
    await this.refreshDevlink();
    this.rescan('start');
    this.socketWatch.set(this.mode === 'watcher' ? [flags.pluginsRegistryDir] : [flags.kubeletDir]);
    await this.reconcileServers();
    this.scheduleTick(TICK_MS, 0);
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

  /** The pool of one resource as of the last scan (empty for a server that is being stopped). */
  private pool(config: PoolConfig): Pool {
    return this.pools.find((p) => p.config.resource === config.resource) ?? { config, devices: new Map() };
  }

  private allocate(config: PoolConfig, request: AllocateRequest): AllocateResponse {
    this.lastAllocateAt = performance.now();
    if (this.dirty) this.rescan('allocate after a node change');
    const response = allocate(this.pool(config), request, this.store);
    for (const c of request.containerRequests) for (const id of c.devicesIds) this.allocated.add(id);
    return response;
  }

  private onSocketEvent(name: string | null): void {
    if (this.stopped) return;
    if (name !== null && name !== KUBELET_SOCKET && !name.endsWith('.sock')) return;
    for (const server of this.servers.values()) void server.check();
  }

  private onNodeEvent(dir: string, name: string | null): void {
    if (this.stopped) return;
    if (dir === resolve(this.opts.flags.devRoot) && name !== null && !name.startsWith('vhost-vdpa-')) return;
    this.dirty = true;
    this.scheduleRescan();
  }

  /**
   * One pending scan sees every change made before it runs. The gap after the previous scan keeps
   * an event storm (a fixture tree, a busy /dev) from spending more than half the CPU on
   * scans; Allocate does not wait for it, since it rescans itself when the node is dirty.
   */
  private scheduleRescan(): void {
    if (this.rescanTimer) return;
    const wait = Math.max(NODE_EVENT_DELAY_MS, this.lastScanEnd + SCAN_GAP_FACTOR * this.lastScanMs - performance.now());
    this.rescanTimer = setTimeout(() => {
      this.rescanTimer = null;
      this.rescan('node changed');
    }, wait);
  }

  /**
   * devlink ports, asked again only when the set of devices changed (it runs a process).
   * devlink describes the real machine: with a fixture sysfs root it would describe the wrong node.
   */
  private async refreshDevlink(): Promise<void> {
    if (resolve(this.opts.flags.sysfsRoot) !== '/sys' || this.devlinkFor === this.deviceSet) return;
    this.devlinkFor = this.deviceSet;
    this.devlinkPorts = await listDevlinkPorts();
  }

  private async periodic(): Promise<void> {
    if (this.stopped) return;
    this.socketWatch.ensure();
    this.nodeWatch.ensure();
    this.configWatch.ensure();
    await this.refreshDevlink();
    this.reloadConfig();
    this.rescan('periodic');
    for (const server of this.servers.values()) void server.check();
  }

  /** One discovery pass, then pools, ListAndWatch updates, metrics and DeviceInfo cleanup. */
  rescan(reason: string): void {
    if (this.stopped) return;
    const { flags, metrics } = this.opts;
    this.dirty = false;
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
    this.rescanTimer = null;
    const started = performance.now();
    let snapshot: Snapshot;
    try {
      snapshot = discover({ sysfsRoot: flags.sysfsRoot, devRoot: flags.devRoot, devlinkPorts: this.devlinkPorts });
    } catch (err) {
      metrics.discoveryErrors.inc();
      this.log.error('discovery failed; keeping the last view of the node', { error: err });
      return;
    }
    this.lastScanEnd = performance.now();
    this.lastScanMs = this.lastScanEnd - started;
    const seconds = this.lastScanMs / 1000;
    metrics.discoverySeconds.observe(seconds);
    if (snapshot.errors.length) metrics.discoveryErrors.inc(snapshot.errors.length);
    const errors = snapshot.errors.join('\n');
    if (errors !== this.lastErrors) {
      if (errors) this.log.warn('discovery reported problems', { errors: snapshot.errors });
      this.lastErrors = errors;
    }
    this.snapshot = snapshot;
    this.deviceSet = [...snapshot.functions.keys(), ...snapshot.vdpa.keys()].join();
    const scanned = { reason, ms: Math.round(seconds * 1000), functions: snapshot.functions.size, vdpaDevices: snapshot.vdpa.size };
    if (reason === 'start') this.log.info('discovered the node', scanned);
    else this.log.debug('rescanned', scanned);
    this.syncDeviceInfo();
    this.applyPools(this.buildPools());
    this.watchNode();
  }

  private buildPools(): Pool[] {
    const endpoints = advertisableEndpoints(this.snapshot, this.allocated);
    return buildPools({ snapshot: this.snapshot, endpoints, config: this.config, previous: this.pools });
  }

  private applyPools(next: Pool[]): void {
    const before = new Map(this.pools.map((p) => [p.config.resource, p]));
    this.pools = next;
    for (const pool of next) {
      const changes = describeChanges(before.get(pool.config.resource), pool);
      if (changes.length) this.log.info('pool changed', { resource: pool.config.resource, devices: pool.devices.size, changes });
    }
    this.opts.metrics.setPools(next);
    for (const server of this.servers.values()) server.update();
  }

  /** Bus and class directories, /dev, and each uplink (its operstate) of the current snapshot. */
  private watchNode(): void {
    const { sysfsRoot, devRoot } = this.opts.flags;
    const sys = resolve(sysfsRoot);
    const dirs = [
      join(sys, 'bus', 'pci', 'devices'),
      join(sys, 'bus', 'vdpa', 'devices'),
      join(sys, 'bus', 'vdpa', 'drivers', 'virtio_vdpa'),
      join(sys, 'bus', 'vdpa', 'drivers', 'vhost_vdpa'),
      join(sys, 'bus', 'virtio', 'devices'),
      join(sys, 'class', 'net'),
      join(sys, 'class', 'vhost-vdpa'),
      resolve(devRoot),
    ];
    for (const fn of this.snapshot.functions.values()) if (fn.uplink) dirs.push(join(sys, 'class', 'net', fn.uplink.name));
    this.nodeWatch.set(dirs);
  }

  /**
   * DeviceInfo files stay while their device exists, whatever the plugin's restarts: a pod may hold
   * the device. A file whose PCI function or vDPA device is gone describes nothing and goes.
   * A snapshot with bus-level errors is a partial view and deletes nothing. What stays is the
   * record of devices handed out (`allocated`), read again whenever the set of devices changes.
   */
  private syncDeviceInfo(): void {
    const s = this.snapshot;
    if (this.deviceSet === this.syncedFor) return;
    this.syncedFor = this.deviceSet;
    const files = dpDeviceInfoFiles(this.opts.flags.devinfoDir);
    if (!files) return;
    const allocated = new Set<string>();
    for (const path of files) {
      let vdpa: VdpaInfo | undefined;
      try {
        vdpa = readDeviceInfo(path)?.vdpa;
      } catch {
        continue; // Not a document of ours to judge.
      }
      const pci = vdpa?.['pci-address']?.toLowerCase();
      if (!vdpa || !pci) continue;
      const gone = !s.functions.has(pci) ? `PCI function ${pci} is gone` : !s.vdpa.has(vdpa['parent-device']) ? `vDPA device ${vdpa['parent-device']} is gone` : null;
      if (!gone || s.errors.length) {
        allocated.add(pci);
        continue;
      }
      removeDeviceInfo(path);
      this.log.info('removed the DeviceInfo file of a device that no longer exists', { file: path, reason: gone });
    }
    this.allocated = allocated;
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
    this.applyPools(this.buildPools());
    void this.reconcileServers();
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
        pool: () => this.pool(config),
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
    if (this.tick) clearTimeout(this.tick);
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
    this.reloadSoon.cancel();
    this.socketWatch.close();
    this.nodeWatch.close();
    this.configWatch.close();
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
  }
}

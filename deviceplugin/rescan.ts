/**
 * The plugin's view of the node, kept current: node events → discovery → pools → diff, plus what
 * pods hold (inuse.ts: the kubelet's answer, the DeviceInfo files no pod needs removed). It serves
 * nothing; the plugin hands the pools to its servers, which send them on ListAndWatch.
 */
import { join, resolve } from 'node:path';
import { listDevlinkPorts, type DevlinkPort } from '../host/devlink.js';
import { discover } from '../host/discover.js';
import type { Logger } from '../host/log.js';
import type { Snapshot } from '../host/snapshot.js';
import type { Config, PoolConfig } from './config.js';
import type { Flags } from './flags.js';
import { DeviceUse } from './inuse.js';
import type { Metrics } from './metrics.js';
import { advertisableEndpoints, buildPools, describeChanges, type Pool } from './pools.js';
import { WatchSet } from './watch.js';

/** A burst of node events (one rebind touches several files) is read by one scan this much later. */
const NODE_EVENT_DELAY_MS = 30;
/** Event-driven scans leave the loop free at least as long as they took: at most half the CPU. */
const SCAN_GAP_FACTOR = 1;

export interface RescannerOptions {
  readonly flags: Pick<Flags, 'sysfsRoot' | 'devRoot' | 'devinfoDir' | 'podResourcesSocket'>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The running config; pools are built from it. */
  readonly config: () => Config;
  /** Called after every pool rebuild, changed or not. */
  readonly onPools: (pools: readonly Pool[]) => void;
}

export class Rescanner {
  private readonly log: Logger;
  private snapshot: Snapshot = { functions: new Map(), vdpa: new Map(), errors: [] };
  private pools: readonly Pool[] = [];
  private devlinkPorts: readonly DevlinkPort[] = [];
  /** Node events arrived since the last scan: Allocate rescans before answering. */
  private dirty = false;
  private lastErrors = '';
  /** Functions and vDPA devices of the last scan, to act only when that set changes. */
  private deviceSet = '';
  private readonly use: DeviceUse;
  private devlinkFor: string | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private lastScanEnd = 0;
  private lastScanMs = 0;
  private readonly nodeWatch: WatchSet;
  private closed = false;

  constructor(private readonly opts: RescannerOptions) {
    this.log = opts.logger;
    this.use = new DeviceUse({ podResourcesSocket: opts.flags.podResourcesSocket, devinfoDir: opts.flags.devinfoDir, logger: opts.logger });
    this.nodeWatch = new WatchSet((dir, name) => this.onNodeEvent(dir, name));
  }

  /** The pool of one resource as of the last scan (empty for a server that is being stopped). */
  pool(config: PoolConfig): Pool {
    return this.pools.find((p) => p.config.resource === config.resource) ?? { config, devices: new Map() };
  }

  /** Device IDs just handed out: a virtio one stays advertised once its netdev has gone into the pod. */
  markAllocated(ids: Iterable<string>): void {
    this.use.markAllocated(ids);
  }

  /** Rescans first when node events came in since the last scan. */
  rescanIfDirty(reason: string): void {
    if (this.dirty) this.rescan(reason);
  }

  /** Watches that may have lost their directory are set up again; cheap, for every tick. */
  ensureWatch(): void {
    this.nodeWatch.ensure();
  }

  private onNodeEvent(dir: string, name: string | null): void {
    if (this.closed) return;
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
  async refreshDevlink(): Promise<void> {
    if (resolve(this.opts.flags.sysfsRoot) !== '/sys' || this.devlinkFor === this.deviceSet) return;
    this.devlinkFor = this.deviceSet;
    this.devlinkPorts = await listDevlinkPorts();
  }

  /**
   * A scan on a fresh answer from the kubelet about what pods hold, then the DeviceInfo files no
   * pod needs are removed: on start and every tick. Scans in between count on the last answer.
   */
  async rescanAndRelease(reason: string): Promise<void> {
    await this.use.refresh();
    if (this.rescan(reason)) this.use.release(this.snapshot);
  }

  /** One discovery pass, then pools, ListAndWatch updates and metrics; false when discovery failed. */
  rescan(reason: string): boolean {
    if (this.closed) return false;
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
      return false;
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
    this.repool();
    this.watchNode();
    return true;
  }

  /** Pools built again from the last scan and the running config (after a config change, too). */
  repool(): void {
    const endpoints = advertisableEndpoints(this.snapshot, this.use.inUse());
    const next = buildPools({ snapshot: this.snapshot, endpoints, config: this.opts.config(), previous: this.pools });
    const before = new Map(this.pools.map((p) => [p.config.resource, p]));
    this.pools = next;
    for (const pool of next) {
      const changes = describeChanges(before.get(pool.config.resource), pool);
      if (changes.length) this.log.info('pool changed', { resource: pool.config.resource, devices: pool.devices.size, changes });
    }
    this.opts.metrics.setPools(next, this.use.inUse());
    this.opts.onPools(next);
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

  /** No more scans; the pending one is dropped and the node watches closed. */
  close(): void {
    this.closed = true;
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
    this.nodeWatch.close();
  }
}

/**
 * Prometheus metrics (prom-client, on a registry of our own) and the HTTP endpoint serving them.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ListenAddress } from './flags.js';
import type { Pool } from './pools.js';

const PREFIX = 'vdpa_device_plugin_';

export class Metrics {
  readonly registry = new Registry();
  readonly devices = new Gauge({
    name: `${PREFIX}devices`,
    help: 'Devices advertised to the kubelet, by resource and health.',
    labelNames: ['resource', 'health'] as const,
    registers: [this.registry],
  });
  readonly allocations = new Counter({
    name: `${PREFIX}allocations_total`,
    help: 'Allocate calls, by resource and result (ok, or the gRPC error code name).',
    labelNames: ['resource', 'result'] as const,
    registers: [this.registry],
  });
  readonly allocatedDevices = new Counter({
    name: `${PREFIX}allocated_devices_total`,
    help: 'Devices handed out by successful Allocate calls.',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly allocateSeconds = new Histogram({
    name: `${PREFIX}allocate_duration_seconds`,
    help: 'Time to answer Allocate, DeviceInfo files written included.',
    labelNames: ['resource'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly registrations = new Counter({
    name: `${PREFIX}registrations_total`,
    help: 'Registrations with the kubelet, by resource, mode (kubelet, watcher) and result (ok, error).',
    labelNames: ['resource', 'mode', 'result'] as const,
    registers: [this.registry],
  });
  readonly allocated = new Gauge({
    name: `${PREFIX}allocated_devices`,
    help: 'Devices of the pool that pods hold now (the kubelet\'s pod resources, else the DeviceInfo files).',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly registered = new Gauge({
    name: `${PREFIX}registered`,
    help: 'Whether the pool is registered with the kubelet now (1) or not (0), by resource and mode.',
    labelNames: ['resource', 'mode'] as const,
    registers: [this.registry],
  });
  readonly discoverySeconds = new Histogram({
    name: `${PREFIX}discovery_duration_seconds`,
    help: 'Time of one sysfs discovery pass.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly discoveryErrors = new Counter({
    name: `${PREFIX}discovery_errors_total`,
    help: 'Problems a discovery pass reported that are not tied to one device (unreadable bus directories, …).',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: `${PREFIX}config_reloads_total`,
    help: 'Config file reloads, by result (ok, invalid).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  /** Devices per resource and health, and those in use, replacing what the previous pools reported. */
  setPools(pools: readonly Pool[], inUse: ReadonlySet<string>): void {
    this.devices.reset();
    this.allocated.reset();
    for (const pool of pools) {
      this.allocated.set({ resource: pool.config.resource }, [...pool.devices.keys()].filter((id) => inUse.has(id)).length);
      const counts = { Healthy: 0, Unhealthy: 0 };
      for (const d of pool.devices.values()) counts[d.health]++;
      for (const [health, n] of Object.entries(counts)) this.devices.set({ resource: pool.config.resource, health }, n);
    }
  }

  /**
   * Serves GET /metrics, /healthz (liveness: the process answers) and /readyz (readiness: every
   * pool registered with the kubelet, 503 naming the others); resolves once listening.
   */
  serve(addr: ListenAddress, readiness: () => { ready: boolean; detail: string }): Promise<Server> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(`${err.message}\n`),
        );
      } else if (req.method === 'GET' && path === '/healthz') res.writeHead(200).end('ok\n');
      else if (req.method === 'GET' && path === '/readyz') {
        const r = readiness();
        res.writeHead(r.ready ? 200 : 503).end(`${r.detail}\n`);
      } else res.writeHead(404).end('not found; try /metrics, /healthz or /readyz\n');
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host || undefined, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }
}

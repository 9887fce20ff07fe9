/**
 * The device plugin as the kubelet meets it: build/out/vdpa-device-plugin running against a full
 * fixture node (2 PFs × 127 VFs: 127 virtio + 127 vhost vDPA devices), registered with the kubelet
 * stand-in over real unix sockets, DeviceInfo written to tmpfs (/dev/shm, as /var/run is on nodes).
 *
 *   discovery   the plugin's own discovery passes at 254 devices (its /metrics histogram), and
 *               process start → first full ListAndWatch list
 *   Allocate    1000 calls, 16 in flight, one device each, per pool (virtio; vhost re-reads the
 *               char device and adds a DeviceSpec); client-side latency over the unix socket; also
 *               one call at a time (how the kubelet calls it) and the server's CPU per call
 *   update      fixture change (unbind / bind a vDPA device, uplink down / up) → the ListAndWatch
 *               update on the stream the kubelet stand-in holds
 *   restart     kubelet restart (sockets deleted, kubelet.sock re-created) → new registration
 *   RSS         /proc/<pid>/status VmRSS after every 2000 of 10 000 Allocates: 16 in flight, then on
 *               a fresh process one at a time (the kubelet's pattern)
 *
 * Baseline in the same run: a bare gRPC DevicePlugin server (same Node, same grpc-js, same
 * generated code) whose Allocate answers a constant without touching the node or the disk: the
 * transport floor for latency and the runtime floor for RSS. The incumbent Go plugin cannot run
 * here (no network to fetch it, and it needs a real vDPA bus), so figures are absolute against the
 * targets: Allocate p99 < 5 ms, update < 1 s, RSS < 80 MB.
 *
 *   npm run bench deviceplugin [-- --rounds N] [--node-options "<flags>"] [--json]
 *
 * --node-options gives Node flags to the plugin (its `--node-options=…` argument: the executable
 * ignores NODE_OPTIONS) and to the baseline server (NODE_OPTIONS; not to this process), e.g.
 * "--max-semi-space-size=1" to see what a smaller V8 young generation does to RSS.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { DevicePluginService, type DevicePluginServer } from '../../proto/gen/deviceplugin_v1beta1.js';
import { buildFixture } from '../../test/support/fixture.js';
import { KubeletStandIn, PluginClient, until, type ConnectedPlugin } from '../../test/support/kubelet.js';
import { PluginProcess, Workspace } from '../../test/deviceplugin/harness.js';

const BASELINE_FLAG = '--serve-baseline';

/** Baseline mode: this same script, started again, serves a constant Allocate on a socket. */
async function serveBaseline(socket: string): Promise<void> {
  const server = new grpc.Server();
  const impl: DevicePluginServer = {
    getDevicePluginOptions: (_c, cb) => cb(null, { preStartRequired: false, getPreferredAllocationAvailable: true }),
    listAndWatch: (call) => call.write({ devices: [] }),
    getPreferredAllocation: (_c, cb) => cb(null, { containerResponses: [] }),
    allocate: (call, cb) =>
      cb(null, {
        containerResponses: call.request.containerRequests.map((c) => ({
          envs: { PCIDEVICE_X: c.devicesIds.join(',') },
          mounts: [],
          devices: [],
          annotations: {},
          cdiDevices: [],
        })),
      }),
    preStartContainer: (_c, cb) => cb(null, {}),
  };
  server.addService(DevicePluginService, impl);
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

/** Starts the baseline server (this script, in baseline mode) and connects to it. */
async function startBaseline(socket: string, env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; client: PluginClient }> {
  const proc = spawn(process.execPath, [process.argv[1]!, BASELINE_FLAG, socket], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  await until(() => (proc.stdout!.read()?.toString().includes('ready') ? true : undefined), 10_000, 'the baseline server');
  return { proc, client: new PluginClient(socket) };
}

interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.at(-1)!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

const fmt = (v: number) => v.toFixed(2).padStart(8);
const row = (label: string, s: Stats) => `| ${label.padEnd(44)} | ${String(s.n).padStart(5)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.max)} |`;

/** `total` Allocate calls, `inFlight` at a time, each for the next device of `ids`; latencies in ms. */
async function allocateLoad(client: PluginClient, ids: readonly string[], total: number, inFlight: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const id = ids[next++ % ids.length]!;
      const t0 = performance.now();
      await client.allocate([[id]]);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return latencies;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** User + system CPU time of a process so far, in ms (clock ticks are 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i < 0 ? 20 : Number(process.argv[i + 1]);
  if (!Number.isInteger(rounds) || rounds <= 0) throw new Error('--rounds: must be a positive integer');
  const json = process.argv.includes('--json');
  const o = process.argv.indexOf('--node-options');
  const nodeOptions = o < 0 ? '' : process.argv[o + 1]!;
  const env = nodeOptions ? { NODE_OPTIONS: nodeOptions } : {};
  const nodeFlag = nodeOptions ? [`--node-options=${nodeOptions}`] : [];
  const VFS = 127;

  const fx = buildFixture({
    pfs: [
      { vfs: VFS, vdpa: 'virtio', totalVfs: VFS, numa: 0 },
      { vfs: VFS, vdpa: 'vhost', totalVfs: VFS, numa: 1 },
    ],
  });
  const ws = new Workspace('/dev/shm');
  ws.writeConfig({
    resourceList: [
      { resourceName: 'virtio', resourcePrefix: 'bench.example.com', selectors: { vdpaType: 'virtio' } },
      { resourceName: 'vhost', resourcePrefix: 'bench.example.com', selectors: { vdpaType: 'vhost' } },
    ],
  });
  const kubelet = await KubeletStandIn.start();
  let plugin: PluginProcess | null = null;
  const baselines: ChildProcess[] = [];
  try {
    // Start-up: process spawn → both pools' full lists on the kubelet's streams.
    const t0 = performance.now();
    // Warn level: an info line per Allocate would put 12 000 lines through the pipe being measured.
    const metricsAddr = `127.0.0.1:${await freePort()}`;
    const args = ['--log-level', 'warn', '--metrics-addr', metricsAddr];
    plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir: kubelet.dir, args: [...nodeFlag, ...args] });
    const virtio = await kubelet.waitForPlugin('bench.example.com/virtio', 1, 30_000);
    const vhost = await kubelet.waitForPlugin('bench.example.com/vhost', 1, 30_000);
    await virtio.stream.waitFor((d) => d.length === VFS, 30_000);
    await vhost.stream.waitFor((d) => d.length === VFS, 30_000);
    const startupMs = performance.now() - t0;
    const virtioIds = virtio.stream.latest!.map((d) => d.ID);
    const vhostIds = vhost.stream.latest!.map((d) => d.ID);
    const rss0 = rssMb(plugin.pid);

    // Allocate: ours (virtio, vhost) and the baseline, interleaved in blocks so that load drifts
    // hit all of them; the CPU each server process spends is counted over the same blocks.
    const { proc: baseline, client: base } = await startBaseline(join(ws.dir, 'baseline.sock'), env);
    baselines.push(baseline);
    const lat = { virtio: [] as number[], vhost: [] as number[], base: [] as number[], virtio1: [] as number[], base1: [] as number[] };
    const cpu = { ours: 0, base: 0 };
    const counted = async (pid: number, key: 'ours' | 'base', work: () => Promise<number[]>): Promise<number[]> => {
      const c0 = cpuMs(pid);
      const out = await work();
      cpu[key] += cpuMs(pid) - c0;
      return out;
    };
    await allocateLoad(virtio.client, virtioIds, 200, 16);
    await allocateLoad(base, virtioIds, 200, 16);
    for (let block = 0; block < 5; block++) {
      lat.virtio.push(...(await counted(plugin.pid, 'ours', () => allocateLoad(virtio.client, virtioIds, 200, 16))));
      lat.vhost.push(...(await allocateLoad(vhost.client, vhostIds, 200, 16)));
      lat.base.push(...(await counted(baseline.pid!, 'base', () => allocateLoad(base, virtioIds, 200, 16))));
      // One at a time is how the kubelet calls Allocate (one pod admission after another).
      lat.virtio1.push(...(await allocateLoad(virtio.client, virtioIds, 100, 1)));
      lat.base1.push(...(await allocateLoad(base, virtioIds, 100, 1)));
    }

    // Update delay: fixture change → ListAndWatch update on the kubelet's stream.
    const waitUpdate = async (s: ConnectedPlugin, id: string, health: string, mutate: () => void): Promise<number> => {
      const t = performance.now();
      mutate();
      await s.stream.waitFor((d) => d.find((x) => x.ID === id)?.health === health, 10_000);
      return s.stream.updates.at(-1)!.at - t;
    };
    const update = { unbind: [] as number[], bind: [] as number[], uplink: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      const vf = fx.vf(virtioIds[r % virtioIds.length]!);
      update.unbind.push(await waitUpdate(virtio, vf.pci, 'Unhealthy', () => fx.unbindVdpa(vf.vdpa[0]!)));
      update.bind.push(await waitUpdate(virtio, vf.pci, 'Healthy', () => fx.bindVdpa(vf.vdpa[0]!, 'virtio')));
    }
    for (let r = 0; r < Math.min(rounds, 10); r++) {
      const uplink = fx.pfs[1]!.uplink;
      update.uplink.push(await waitUpdate(vhost, vhostIds[0]!, 'Unhealthy', () => fx.setOperState(uplink, 'down')));
      await waitUpdate(vhost, vhostIds[0]!, 'Healthy', () => fx.setOperState(uplink, 'up'));
    }

    // Kubelet restart → re-registration.
    const restart: number[] = [];
    for (let r = 0; r < Math.min(rounds, 10); r++) {
      const t = performance.now();
      await kubelet.restart();
      const again = await kubelet.waitForPlugin('bench.example.com/virtio', r + 2, 10_000);
      await kubelet.waitForPlugin('bench.example.com/vhost', r + 2, 10_000);
      restart.push(again.registeredAt - t);
    }

    // RSS across 10 000 Allocates (alternating pools, 16 in flight), sampled every 2000; the
    // baseline server gets as many calls, so its RSS is the runtime floor under the same load.
    const live = kubelet.plugin('bench.example.com/virtio')!;
    const liveVhost = kubelet.plugin('bench.example.com/vhost')!;
    const rss: number[] = [rssMb(plugin.pid)];
    for (let k = 0; k < 5; k++) {
      await allocateLoad(live.client, virtioIds, 1000, 16);
      await allocateLoad(liveVhost.client, vhostIds, 1000, 16);
      rss.push(rssMb(plugin.pid));
    }
    const baseCalls = 10_000 - lat.base.length - lat.base1.length - 200;
    await allocateLoad(base, virtioIds, baseCalls, 16);
    const baseRss = rssMb(baseline.pid!);

    const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
    const discoveries = metric(text, 'vdpa_device_plugin_discovery_duration_seconds_count');
    const discoveryMeanMs = (metric(text, 'vdpa_device_plugin_discovery_duration_seconds_sum') / discoveries) * 1000;
    const heapMb = (name: string) => metric(text, `vdpa_device_plugin_nodejs_heap_size_${name}_bytes`) / 1048576;
    base.close();

    // RSS again on fresh processes, with Allocates one at a time as the kubelet sends them.
    await plugin.stop();
    const connections = kubelet.connections.filter((c) => c.resource === 'bench.example.com/virtio').length;
    plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir: kubelet.dir, args: [...nodeFlag, ...args] });
    const seqVirtio = await kubelet.waitForPlugin('bench.example.com/virtio', connections + 1, 30_000);
    const seqVhost = await kubelet.waitForPlugin('bench.example.com/vhost', connections + 1, 30_000);
    await seqVirtio.stream.waitFor((d) => d.length === VFS, 30_000);
    const fresh = await startBaseline(join(ws.dir, 'baseline2.sock'), env);
    baselines.push(fresh.proc);
    const rssSeq: number[] = [rssMb(plugin.pid)];
    for (let k = 0; k < 5; k++) {
      await allocateLoad(seqVirtio.client, virtioIds, 1000, 1);
      await allocateLoad(seqVhost.client, vhostIds, 1000, 1);
      rssSeq.push(rssMb(plugin.pid));
    }
    await allocateLoad(fresh.client, virtioIds, 10_000, 1);
    const baseRssSeq = rssMb(fresh.proc.pid!);
    fresh.client.close();

    const s = {
      virtio: stats(lat.virtio),
      vhost: stats(lat.vhost),
      base: stats(lat.base),
      virtio1: stats(lat.virtio1),
      base1: stats(lat.base1),
      unbind: stats(update.unbind),
      bind: stats(update.bind),
      uplink: stats(update.uplink),
      restart: stats(restart),
    };
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`device plugin: 2 PFs × ${VFS} VFs (127 virtio + 127 vhost vDPA devices), Node ${process.version}, ${process.arch}, load average ${load}`);
    if (nodeOptions) console.log(`Node flags for the plugin (--node-options) and the baseline (NODE_OPTIONS): ${nodeOptions}`);
    console.log(`start → both full lists on the kubelet's streams: ${startupMs.toFixed(0)} ms; discovery inside the plugin: ${discoveryMeanMs.toFixed(1)} ms mean over ${discoveries} passes`);
    console.log('');
    console.log(`| ${'what (ms)'.padEnd(44)} |     n |      p50 |      p99 |      max |`);
    console.log(`|${'-'.repeat(46)}|-------|----------|----------|----------|`);
    console.log(row('Allocate virtio, 16 in flight', s.virtio));
    console.log(row('Allocate vhost (DeviceSpec), 16 in flight', s.vhost));
    console.log(row('baseline: bare gRPC Allocate, 16 in flight', s.base));
    console.log(row('Allocate virtio, 1 in flight', s.virtio1));
    console.log(row('baseline: bare gRPC Allocate, 1 in flight', s.base1));
    console.log(row('update: unbind vDPA → Unhealthy on stream', s.unbind));
    console.log(row('update: bind vDPA → Healthy on stream', s.bind));
    console.log(row('update: uplink down → Unhealthy on stream', s.uplink));
    console.log(row('kubelet restart → re-registered', s.restart));
    console.log('');
    const perCall = (ms: number) => (ms / lat.virtio.length).toFixed(3);
    console.log(`server CPU per Allocate (16 in flight): ours ${perCall(cpu.ours)} ms, baseline ${perCall(cpu.base)} ms (${(cpu.ours / cpu.base).toFixed(2)}×)`);
    console.log(`ratio Allocate p50 ours/baseline: 16 in flight ${(s.virtio.p50 / s.base.p50).toFixed(2)}× (vhost ${(s.vhost.p50 / s.base.p50).toFixed(2)}×), 1 in flight ${(s.virtio1.p50 / s.base1.p50).toFixed(2)}×`);
    console.log(`RSS MB, 16 in flight: after start ${rss0.toFixed(1)}; every 2000 of 10 000 Allocates: ${rss.map((r) => r.toFixed(1)).join(' → ')}`);
    console.log(`        V8 heap then: ${heapMb('used').toFixed(1)} used of ${heapMb('total').toFixed(1)}; baseline server after 10 000 Allocates: ${baseRss.toFixed(1)}`);
    console.log(`RSS MB, one at a time (fresh process): ${rssSeq.map((r) => r.toFixed(1)).join(' → ')}; baseline server (fresh) after 10 000: ${baseRssSeq.toFixed(1)}`);
    const growth = rssSeq.at(-1)! - rssSeq[1]!;
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    console.log(
      `targets: Allocate p99 < 5 ms — ${verdict(Math.max(s.virtio.p99, s.vhost.p99) < 5)}; update < 1 s — ${verdict(Math.max(s.unbind.max, s.bind.max, s.uplink.max) < 1000)}; ` +
        `RSS < 80 MB — one at a time ${verdict(Math.max(...rssSeq) < 80)}, 16 in flight ${verdict(Math.max(...rss) < 80)} ` +
        `(one at a time, change over the last 8000 Allocates: ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB)`,
    );
    if (json) console.log(JSON.stringify({ load, startupMs, discoveryMeanMs, discoveries, ...s, cpu, rss0, rss, baseRss, rssSeq, baseRssSeq }));
  } finally {
    await plugin?.stop();
    for (const b of baselines) b.kill('SIGTERM');
    await kubelet.stop();
    ws.cleanup();
    fx.cleanup();
  }
}

if (process.argv[2] === BASELINE_FLAG) await serveBaseline(process.argv[3]!);
else await main();

/**
 * Discovery time on a full node: 2 PFs × 127 VFs in switchdev mode, one vDPA device per VF
 * (alternately virtio and vhost: 254 vDPA devices), on the fixture tree. The process is up and
 * the page cache warm; each run is one complete discover() pass.
 *
 * Baseline, in the same run: listing the same device tree recursively with readdir (what `ls -R
 * /sys/devices` does), with no file read. It is the cheapest walk that visits every device, so the
 * ratio says what reading and joining the attributes costs on top of visiting them. (`vdpa -j dev
 * show` cannot be a baseline here: it needs a real vDPA bus.)
 *
 *   npm run bench -- discovery [--iterations N] [--vfs N] [--tmpdir DIR] [--json]
 * The fixture is on /dev/shm (tmpfs, in memory like sysfs) unless --tmpdir puts it elsewhere.
 */
import { readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { discover } from '../../host/discover.js';
import { usableEndpoints } from '../../host/endpoint.js';
import { buildFixture } from '../../test/support/fixture.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name}: must be a positive integer`);
  return v;
}

const iterations = flag('iterations', 300);
const vfsPerPf = flag('vfs', 127);
const json = process.argv.includes('--json');
const tmpDirAt = process.argv.indexOf('--tmpdir');
const tmpDir = tmpDirAt < 0 ? undefined : process.argv[tmpDirAt + 1];
const TARGET_MS = 50;

interface Stats {
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

/**
 * Times every variant `iterations` times, interleaved round by round, so that load from other
 * processes on the machine falls on all of them alike and the ratios stay meaningful.
 */
function measure(variants: Record<string, () => void>): Record<string, Stats> {
  const names = Object.keys(variants);
  const samples = new Map(names.map((n) => [n, [] as number[]]));
  for (let round = -Math.min(50, iterations); round < iterations; round++) {
    for (const name of names) {
      const t0 = process.hrtime.bigint();
      variants[name]!();
      if (round >= 0) samples.get(name)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const stats = (ms: number[]): Stats => {
    ms.sort((a, b) => a - b);
    const at = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!;
    return { p50: at(0.5), p99: at(0.99), mean: ms.reduce((a, b) => a + b, 0) / ms.length };
  };
  return Object.fromEntries(names.map((n) => [n, stats(samples.get(n)!)]));
}

function listTree(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n++;
    if (e.isDirectory()) n += listTree(join(dir, e.name));
  }
  return n;
}

const vfs = Array.from({ length: vfsPerPf }, (_, i) => ({ vdpa: i % 2 ? ('vhost' as const) : ('virtio' as const) }));
const t0 = Date.now();
const fx = buildFixture({ pfs: [{ vfs, totalVfs: vfsPerPf, numa: 0 }, { vfs, totalVfs: vfsPerPf, numa: 1 }], ...(tmpDir ? { tmpDir } : {}) });
const buildMs = Date.now() - t0;
try {
  const opts = { sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot };
  const withDevlink = { ...opts, devlinkPorts: fx.devlinkPorts() };

  // The bench measures a correct result, or nothing.
  const snapshot = discover(withDevlink);
  const endpoints = usableEndpoints(snapshot);
  const expected = 2 * vfsPerPf;
  const withReps = endpoints.filter((e) => e.representor !== null).length;
  if (snapshot.vdpa.size !== expected || endpoints.length !== expected || withReps !== expected || snapshot.errors.length) {
    throw new Error(`wrong snapshot: ${snapshot.vdpa.size} vDPA, ${endpoints.length} usable, ${withReps} with representor, errors ${snapshot.errors.join('; ')}`);
  }
  const entries = listTree(join(fx.sysfsRoot, 'devices'));

  const load = loadavg()[0]!;
  const { sysfsOnly, devlink, baseline } = measure({
    sysfsOnly: () => discover(opts),
    devlink: () => discover(withDevlink),
    baseline: () => listTree(join(fx.sysfsRoot, 'devices')),
  }) as Record<'sysfsOnly' | 'devlink' | 'baseline', Stats>;

  const row = (label: string, s: Stats) =>
    `| ${label.padEnd(38)} | ${s.p50.toFixed(2).padStart(7)} | ${s.p99.toFixed(2).padStart(7)} | ${s.mean.toFixed(2).padStart(7)} |`;
  console.log(`discovery: 2 PFs × ${vfsPerPf} VFs, ${expected} vDPA devices (virtio/vhost alternating), ${snapshot.functions.size} PCI functions,`);
  console.log(`${entries} entries under sys/devices (${fx.root}); fixture built in ${buildMs} ms`);
  console.log(`${iterations} warm runs each, interleaved; Node ${process.version}, ${cpus().length} CPUs, load average ${load.toFixed(2)} at start`);
  console.log('');
  console.log(`| ${'what'.padEnd(38)} | p50 ms  | p99 ms  | mean ms |`);
  console.log(`|${'-'.repeat(40)}|---------|---------|---------|`);
  console.log(row('discover() (sysfs representors)', sysfsOnly));
  console.log(row('discover() with devlink ports', devlink));
  console.log(row('baseline: readdir -R of sys/devices', baseline));
  console.log('');
  console.log(`ratio discover/baseline (p50): ${(sysfsOnly.p50 / baseline.p50).toFixed(2)}× (with devlink ${(devlink.p50 / baseline.p50).toFixed(2)}×)`);
  const verdict = (s: Stats) => (s.p99 < TARGET_MS ? 'p99 under' : s.p50 < TARGET_MS ? 'p50 under (p99 over)' : 'over');
  console.log(`target ${TARGET_MS} ms: sysfs ${verdict(sysfsOnly)}, devlink ${verdict(devlink)}`);
  if (json) console.log(JSON.stringify({ vfsPerPf, iterations, load, sysfsOnly, devlink, baseline }));
} finally {
  fx.cleanup();
}

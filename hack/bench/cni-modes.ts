/**
 * vdpa-cni ADD and DEL in each ovn.mode against one baseline, on the real OVS/OVN of this machine,
 * in the same run, rounds interleaved:
 *
 *   external        the LSP exists before ADD (an outside controller made it); addresses from IPAM
 *   managed         vdpa-cni creates the LSP on ADD and removes it on DEL; addresses from IPAM
 *   ovn-kubernetes  the pod is annotated and its LSP exists before ADD (ovnkube-controller's
 *                   work, played here against the Kubernetes API stand-in, test/support/kube-api.ts);
 *                   vdpa-cni reads the annotation over HTTPS
 *   baseline        Debian's Go host-device, `ovs-vsctl add-port … -- set Interface …` and
 *                   `ovs-vsctl wait-until … ovn-installed=true`, the LSP made before
 *
 * The CNI runs with a bare environment (no NODE_OPTIONS or NODE_EXTRA_CA_CERTS), as the runtime
 * gives it. Static IPAM, so no IPAM process differs between modes.
 *
 *   npm run bench cni-modes [-- --rounds N] [--json]
 */
import { bed, cni, sh } from '../../test/support/cni.js';
import { run } from '../../test/support/exec.js';
import { KubeApiStandIn } from '../../test/support/kube-api.js';
import { ensureOvn, OvnRun } from '../../test/support/ovn.js';

const i = process.argv.indexOf('--rounds');
const rounds = i < 0 ? 15 : Number(process.argv[i + 1]);
if (!Number.isInteger(rounds) || rounds <= 0) throw new Error('--rounds: must be a positive integer');
const json = process.argv.includes('--json');

await ensureOvn();
const ovn = new OvnRun();
const b = bed('y', { count: 4 });
const ls = await ovn.createLogicalSwitch();
const ns = `${ovn.prefix}ns`;
const api = new KubeApiStandIn();
await api.start();
const kubeconfig = api.kubeconfig('bench.yaml');
const HOST_DEVICE = '/usr/lib/cni/host-device';
const MODES = ['external', 'managed', 'ovn-kubernetes', 'baseline'] as const;
type Mode = (typeof MODES)[number];
const samples = Object.fromEntries(MODES.map((m) => [m, { add: [] as number[], del: [] as number[] }])) as Record<Mode, { add: number[]; del: number[] }>;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
async function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv, input?: string): Promise<string> {
  const r = await run(cmd, args, { env: env ?? process.env, input: input ?? '' });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

let n = 0;
async function round(mode: Mode, vf: number): Promise<void> {
  const k = ++n;
  const pod = `${mode[0]}${k}`;
  const mac = `0a:58:0a:55:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`;
  const ip = `10.85.${k >> 8}.${k & 255}`;
  const v = b.vfs[vf]!;
  const netns = b.netns(pod);
  let lsp = mode === 'managed' ? `vdpa-bench_${ns}_${pod}` : `${ns}_${pod}`;
  if (mode !== 'managed') await ovn.addLogicalPort(ls, lsp, mac, [ip]);
  if (mode === 'baseline') {
    const env = { PATH: process.env.PATH, CNI_CONTAINERID: `ctr-${pod}`, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni' };
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'hd', type: 'host-device', device: v.netdev, ipam: { type: 'static', addresses: [{ address: `${ip}/16` }] } });
    samples.baseline.add.push(
      await timed(async () => {
        await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'ADD' }, conf);
        await must('ovs-vsctl', ['--timeout=30', '--may-exist', 'add-port', 'br-int', v.representor, '--', 'set', 'Interface', v.representor, `external_ids:attached_mac=${mac}`, `external_ids:iface-id=${lsp}`, `external_ids:sandbox=ctr-${pod}`, 'external_ids:pod-if-name=net1']);
        await must('ovs-vsctl', ['--timeout=30', 'wait-until', 'Interface', v.representor, 'external_ids:ovn-installed=true']);
      }),
    );
    samples.baseline.del.push(
      await timed(async () => {
        await must(HOST_DEVICE, [], { ...env, CNI_COMMAND: 'DEL' }, conf);
        await must('ovs-vsctl', ['--timeout=30', '--if-exists', 'del-port', v.representor]);
      }),
    );
  } else {
    let uid = '';
    if (mode === 'ovn-kubernetes') {
      uid = api.createPod(ns, pod);
      api.annotate(ns, pod, 'k8s.ovn.org/pod-networks', JSON.stringify({ default: { ip_addresses: [`${ip}/16`], mac_address: mac, gateway_ips: ['10.85.0.1'], routes: [] } }));
      await must('ovn-nbctl', ['set', 'Logical_Switch_Port', lsp, `options:iface-id-ver=${uid}`]);
    }
    const ovnConf =
      mode === 'external' ? { ifaceId: '{namespace}_{pod}' } : mode === 'managed' ? { mode: 'managed', logicalSwitch: ls } : { mode: 'ovn-kubernetes' };
    const conf = {
      cniVersion: '1.0.0',
      name: 'bench',
      type: 'vdpa-cni',
      deviceID: v.pci,
      ...(mode === 'ovn-kubernetes' ? { kubeconfig } : { runtimeConfig: { mac }, ipam: { type: 'static', addresses: [{ address: `${ip}/16` }] } }),
      ovn: ovnConf,
    };
    const c = { containerId: `ctr-${pod}`, netns, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod}${uid ? `;K8S_POD_UID=${uid}` : ''}` };
    let out = { code: 0 as number | null, stdout: '', stderr: '' };
    samples[mode].add.push(await timed(async () => void (out = await cni(b, 'ADD', conf, c))));
    if (out.code !== 0) throw new Error(`${mode} ADD: ${out.stdout} ${out.stderr}`);
    samples[mode].del.push(await timed(async () => void (out = await cni(b, 'DEL', conf, c))));
    if (out.code !== 0) throw new Error(`${mode} DEL: ${out.stdout} ${out.stderr}`);
    if (mode === 'ovn-kubernetes') api.deletePod(ns, pod);
    if (mode === 'managed') lsp = '';
  }
  if (lsp) await ovn.removeLogicalPort(lsp);
  sh('ip', ['netns', 'del', netns]);
}

const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;

try {
  for (const [vf, m] of MODES.entries()) await round(m, vf); // warm-up, not counted
  for (const m of MODES) samples[m].add.length = samples[m].del.length = 0;
  for (let r = 0; r < rounds; r++) {
    // Rotate the order so no mode always meets a freshly idle ovn-controller.
    for (let j = 0; j < MODES.length; j++) {
      const m = MODES[(r + j) % MODES.length]!;
      await round(m, MODES.indexOf(m));
    }
  }
} finally {
  await api.stop();
  await ovn.cleanup();
  b.cleanup();
}

const base = samples.baseline;
const table = MODES.filter((m) => m !== 'baseline').map((m) => ({
  mode: m,
  addMs: +median(samples[m].add).toFixed(1),
  addRatio: +(median(samples[m].add) / median(base.add)).toFixed(2),
  delMs: +median(samples[m].del).toFixed(1),
  delRatio: +(median(samples[m].del) / median(base.del)).toFixed(2),
}));
if (json) {
  console.log(JSON.stringify({ rounds, baseline: { addMs: +median(base.add).toFixed(1), delMs: +median(base.del).toFixed(1) }, table }));
} else {
  console.log(`vdpa-cni per ovn.mode vs host-device + ovs-vsctl add-port + wait-until ovn-installed, ${rounds} rounds, medians, one run`);
  console.log('| mode | ADD | × baseline | DEL | × baseline |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const t of table) console.log(`| ${t.mode} | ${t.addMs} ms | ${t.addRatio}× | ${t.delMs} ms | ${t.delRatio}× |`);
  console.log(`| baseline | ${median(base.add).toFixed(1)} ms | 1.00× | ${median(base.del).toFixed(1)} ms | 1.00× |`);
}

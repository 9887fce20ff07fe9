/**
 * Plugging a representor into br-int and waiting for OVN, on the real OVS/OVN of this machine
 * (hack/ovn/up.sh), our OVSDB path against ovs-vsctl in the same run, alternating per round:
 *
 *   plug+wait  ours: connect + plugPort (one write transaction) + waitInstalled (monitor_cond)
 *              baseline: `ovs-vsctl --may-exist add-port … -- set interface … external_ids:…`
 *                        then `ovs-vsctl wait-until Interface … external_ids:ovn-installed=true`
 *   plug       ours: connect + plugPort; baseline: the same add-port with --no-wait (ovs-vsctl
 *              otherwise waits for ovs-vswitchd to reconfigure, which plugPort does not)
 *   unplug     ours: connect + unplugPort; baseline: `ovs-vsctl --no-wait del-port`
 *
 * Each round uses a fresh Logical_Switch_Port, so ovn-controller binds a new port every time.
 * Our side runs inside this process: Node's start-up, which the CNI executable pays per call,
 * is measured by the CNI benchmark, not here.
 *
 *   node hack/bench/run.mjs ovs-plug [--rounds N] [--json]
 */
import { OvsdbClient } from '../../host/ovsdb.js';
import { plugPort, unplugPort, type PlugPortSpec } from '../../host/ovs-plug.js';
import { waitInstalled } from '../../host/ovs-watch.js';
import { BRIDGE, ensureOvn, OvnRun, OVSDB_SOCK, run } from '../../test/support/ovn.js';

const i = process.argv.indexOf('--rounds');
const rounds = i < 0 ? 30 : Number(process.argv[i + 1]);
if (!Number.isInteger(rounds) || rounds <= 0) throw new Error('--rounds: must be a positive integer');
const json = process.argv.includes('--json');

async function must(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return ms(t0);
}

function externalIdArgs(s: PlugPortSpec): string[] {
  return [
    `external_ids:attached_mac=${s.mac}`,
    `external_ids:iface-id=${s.ifaceId}`,
    `external_ids:sandbox=${s.sandbox}`,
    `external_ids:pod-if-name=${s.podIfName}`,
    `external_ids:ip_addresses=${s.ipAddresses!.join(',')}`,
  ];
}

const ovsVsctlAddPort = (s: PlugPortSpec, noWait: boolean): string[] => [
  '--timeout=30',
  ...(noWait ? ['--no-wait'] : []),
  '--may-exist', 'add-port', BRIDGE, s.port, 'other_config:transient=true',
  '--', 'set', 'Interface', s.port, ...externalIdArgs(s),
];

async function ours(spec: PlugPortSpec, wait: boolean): Promise<void> {
  const c = await OvsdbClient.connect(OVSDB_SOCK);
  try {
    await plugPort(c, spec);
    if (wait) await waitInstalled(c, { iface: spec.port, ifaceId: spec.ifaceId, timeoutMs: 30_000 });
  } finally {
    c.close();
  }
}

async function oursUnplug(spec: PlugPortSpec): Promise<void> {
  const c = await OvsdbClient.connect(OVSDB_SOCK);
  try {
    const r = await unplugPort(c, { bridge: BRIDGE, port: spec.port });
    if (r.status !== 'removed') throw new Error(`unplug ${spec.port}: ${r.status}`);
  } finally {
    c.close();
  }
}

async function baseline(spec: PlugPortSpec, wait: boolean): Promise<void> {
  await must('ovs-vsctl', ovsVsctlAddPort(spec, !wait));
  if (wait) await must('ovs-vsctl', ['--timeout=30', 'wait-until', 'Interface', spec.port, 'external_ids:ovn-installed=true']);
}

function stats(xs: number[]): { p50: number; mean: number; p90: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { p50: at(0.5), p90: at(0.9), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}

await ensureOvn();
const ovn = new OvnRun();
try {
  const ls = await ovn.createLogicalSwitch();
  const reps = { ours: (await ovn.createVeth())[0], baseline: (await ovn.createVeth())[0] };
  const samples = { plugWait: { ours: [] as number[], baseline: [] as number[] }, plug: { ours: [] as number[], baseline: [] as number[] }, unplug: { ours: [] as number[], baseline: [] as number[] } };
  let n = 0;
  const spec = async (who: keyof typeof reps): Promise<PlugPortSpec> => {
    const k = ++n;
    const mac = `0a:58:0a:4e:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`;
    const ip = `10.78.${k >> 8}.${k & 255}`;
    const lsp = `${ovn.prefix}-bench_${k}`;
    await ovn.addLogicalPort(ls, lsp, mac, [ip]);
    return { bridge: BRIDGE, port: reps[who], ifaceId: lsp, sandbox: `${ovn.prefix}-sb${k}`, podIfName: 'eth0', network: 'bench', mac, ipAddresses: [`${ip}/16`] };
  };

  for (let r = 0; r < rounds + 2; r++) {
    const warm = r < 2;
    // Alternate who goes first, so neither side always meets a freshly idle ovn-controller.
    const order: (keyof typeof reps)[] = r % 2 ? ['ours', 'baseline'] : ['baseline', 'ours'];
    for (const who of order) {
      const s = await spec(who);
      const plugWait = await timed(() => (who === 'ours' ? ours(s, true) : baseline(s, true)));
      const unplug = await timed(() => (who === 'ours' ? oursUnplug(s) : must('ovs-vsctl', ['--no-wait', 'del-port', s.port])));
      const t = await spec(who);
      const plug = await timed(() => (who === 'ours' ? ours(t, false) : baseline(t, false)));
      await must('ovs-vsctl', ['--if-exists', 'del-port', t.port]);
      await ovn.removeLogicalPort(s.ifaceId);
      await ovn.removeLogicalPort(t.ifaceId);
      if (warm) continue;
      samples.plugWait[who].push(plugWait);
      samples.plug[who].push(plug);
      samples.unplug[who].push(unplug);
    }
  }

  const rows = Object.entries(samples).map(([what, s]) => {
    const o = stats(s.ours);
    const b = stats(s.baseline);
    return { what, ours: o, baseline: b, ratioP50: o.p50 / b.p50 };
  });
  if (json) console.log(JSON.stringify({ rounds, rows }, null, 2));
  else {
    const f = (x: number): string => x.toFixed(1).padStart(7);
    console.log(`ovs-plug: ${rounds} rounds on br-int (userspace datapath), times in ms`);
    console.log('what        ours p50   mean    p90 | ovs-vsctl p50   mean    p90 | ratio p50');
    for (const r of rows) {
      console.log(
        `${r.what.padEnd(10)} ${f(r.ours.p50)} ${f(r.ours.mean)} ${f(r.ours.p90)} |      ${f(r.baseline.p50)} ${f(r.baseline.mean)} ${f(r.baseline.p90)} |   ${r.ratioP50.toFixed(2)}`,
      );
    }
  }
} finally {
  await ovn.cleanup();
}

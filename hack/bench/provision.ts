// What a provisioning run costs before it touches anything, on a full node (2 PFs × 127 VFs, a
// fixture tree on tmpfs behind the fake kernel of test/provision, whose tools answer in-process):
// reading the facts and planning, for a fresh node (every step planned) and for a provisioned one
// (nothing to do), against the baseline of one discovery pass over the same tree, in the same run.
// Real runs add one tool process per step (vdpa, devlink, ethtool): measured apart, in the testbed.
//   node hack/bench/run.mjs provision [--iterations N]
import { discover } from '../../host/discover.js';
import { vfAddress } from '../../host/sriov.js';
import { gatherFacts } from '../../deviceplugin/provision/facts.js';
import { planProvision } from '../../deviceplugin/provision/plan.js';
import { parsePolicy } from '../../deviceplugin/provision/policy.js';
import { FakeKernel } from '../../test/provision/kernel.js';

const iterations = Number(process.argv[process.argv.indexOf('--iterations') + 1]) || 20;
const VFS = 127;
const ALL_MODULES = ['vdpa', 'virtio_vdpa', 'vhost_vdpa', 'virtio_net', 'mlx5_vdpa'];
const policy = parsePolicy({
  pfs: ['0000:65:00.0', '0000:65:00.1'].map((pciAddress) => ({
    pciAddress,
    numVfs: VFS,
    eSwitchMode: 'switchdev',
    vdpa: [
      { vfs: `0-${VFS - 65}`, vdpaType: 'virtio', macBase: '02:00:00:00:00:00' },
      { vfs: `${VFS - 64}-${VFS - 1}`, vdpaType: 'vhost' },
    ],
  })),
});

/** The fixture's VF numbering: PF p's VFs follow PF p-1's, from routing ID 0x6502. */
function provisionedNode(): FakeKernel {
  const pfs = [0, 1].map((p) => ({
    totalVfs: VFS,
    vfs: Array.from({ length: VFS }, (_, i) => ({
      vdpa: i < VFS - 64 ? ('virtio' as const) : ('vhost' as const),
      vdpaName: `vdpa:${vfAddress(`0000:65:00.${p}`, 2 + p * (VFS - 1), 1, i)}`,
    })),
  }));
  return new FakeKernel({ pfs }, { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true, enp101s0f1np1: true } });
}

async function time(what: string, fn: () => Promise<unknown> | unknown): Promise<number> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)]!;
  console.log(`${what.padEnd(58)} median ${median.toFixed(2)} ms  (min ${samples[0]!.toFixed(2)}, max ${samples.at(-1)!.toFixed(2)})`);
  return median;
}

const gather = { devRoot: '', devinfoDir: '/nonexistent', builtinList: '/nonexistent' };
const fresh = new FakeKernel({ pfs: [0, 1].map(() => ({ vfs: 0, totalVfs: VFS, switchdev: false })) }, { modules: ALL_MODULES });
const done = provisionedNode();
try {
  console.log(`provisioning, ${2 * VFS} VFs, ${iterations} iterations (fixture on tmpfs, tools answered in-process)`);
  const base = await time('baseline: one discovery pass (provisioned node)', () => discover({ sysfsRoot: done.sysfsRoot, devRoot: done.fx.devRoot }));
  let steps = 0;
  const planFresh = await time('facts + plan, fresh node', async () => {
    steps = planProvision(policy, await gatherFacts(fresh, { ...gather, devRoot: fresh.fx.devRoot }, policy, [])).steps.length;
  });
  let noop = -1;
  const planDone = await time('facts + plan, provisioned node (nothing to do)', async () => {
    noop = planProvision(policy, await gatherFacts(done, { ...gather, devRoot: done.fx.devRoot }, policy, [])).steps.length;
  });
  if (noop !== 0) throw new Error(`the provisioned node planned ${noop} steps`);
  console.log(`fresh node: ${steps} steps planned; ratios to one discovery pass: fresh ${(planFresh / base).toFixed(2)}x, provisioned ${(planDone / base).toFixed(2)}x`);
} finally {
  fresh.cleanup();
  done.cleanup();
}

// End to end on the simulated node (hack/sim): the built device plugin, the kubelet and Multus
// stand-ins, the built vdpa-cni, real OVS/OVN. The flow (hack/demo/flow.ts, shared with
// `npm run demo`) asserts every step; this suite brings the node up and down around it and
// leaves the OVS/OVN daemons running for the other suites.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runFlow, type FlowSummary } from '../../hack/demo/flow.js';
import { SIM_DIR } from '../../hack/sim/node.js';
import { run } from '../support/exec.js';
import { ROOT } from '../support/paths.js';

const sim = async (script: 'up' | 'down', ...args: string[]) => {
  const r = await run('bash', [join(ROOT, 'hack', 'sim', `${script}.sh`), ...args], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`hack/sim/${script}.sh failed (${r.code}):\n${r.stdout}${r.stderr}`);
};

const wasUp = existsSync(join(SIM_DIR, 'node.json'));
let summary: FlowSummary | undefined;
const narration: string[] = [];

test.before(async () => {
  await sim('up');
});

test.after(async () => {
  if (!wasUp) await sim('down', '--keep-daemons');
});

test('the whole flow: allocate, attach, ping through OVN, vhost, kubelet restart, delete', async () => {
  try {
    summary = await runFlow({ step: (t) => narration.push(`== ${t}`), say: (l) => narration.push(l) });
  } catch (err) {
    console.error(narration.join('\n'));
    throw err;
  }
  assert.equal(Object.keys(summary.add).sort(), ['pod-a', 'pod-b', 'pod-c']);
  assert.equal(Object.keys(summary.del).sort(), ['pod-a', 'pod-b', 'pod-c']);
  assert.ok(summary.pings.every((p) => p.loss === '0%'), JSON.stringify(summary.pings));
});

test('running it again on the same node works the same (nothing left behind)', async () => {
  const again = await runFlow({ step: () => {}, say: () => {} });
  assert.equal(again.end, summary?.end);
});

test('down.sh then up.sh gives a node the flow runs on again (idempotent scripts)', async () => {
  await sim('down', '--keep-daemons');
  await sim('down', '--keep-daemons');
  assert.not.ok(existsSync(SIM_DIR), `${SIM_DIR} removed`);
  const links = await run('ip', ['-o', 'link', 'show']);
  assert.not.match(links.stdout, /simvf\d|simrep\d/);
  await sim('up');
  await sim('up');
  await runFlow({ step: () => {}, say: () => {} });
});

test.run();

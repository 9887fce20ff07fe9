/**
 * `npm run demo`: brings the simulated node up (unless it already is), runs the end-to-end flow
 * with narration, prints a summary and takes the node down again when it brought it up, stopping
 * only the OVS/OVN daemons it started. Run again as often as you like.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../test/support/paths.js';
import { SIM_NODE_FILE } from '../sim/node.js';
import { runFlow, type FlowSummary } from './flow.js';

const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (tty ? `\x1b[31m${s}\x1b[0m` : s);

function sim(script: 'up' | 'down'): void {
  const r = spawnSync('bash', [join(ROOT, 'hack', 'sim', `${script}.sh`)], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`hack/sim/${script}.sh failed (exit ${r.status ?? r.signal})`);
}

function summary(s: FlowSummary): string {
  const ms = (v: number) => `${v.toFixed(0)} ms`;
  const times = (t: Readonly<Record<string, number>>) => Object.entries(t).map(([pod, v]) => `${pod} ${ms(v)}`).join(', ');
  const usage = (u: FlowSummary['peak']) => Object.entries(u).map(([r, x]) => `${r}: ${x.inUse} in use, ${x.free} free`).join('; ');
  return [
    bold('Summary'),
    `  ping:            ${s.pings.map((p) => `${p.from} → ${p.to} ${p.loss} loss, avg ${p.avgMs ?? '?'} ms`).join('; ')}`,
    `  vdpa-cni ADD:    ${times(s.add)}`,
    `  vdpa-cni DEL:    ${times(s.del)}`,
    `  kubelet restart: every pool registered again after ${ms(s.reregisterMs)}`,
    `  with all pods:   ${usage(s.peak)}`,
    `  at the end:      ${usage(s.end)}`,
    `  flow took ${ms(s.totalMs)}`,
  ].join('\n');
}

if (process.getuid?.() !== 0) {
  console.error('demo: must run as root (network namespaces, OVS, OVN)');
  process.exit(1);
}
const broughtUp = !existsSync(SIM_NODE_FILE);
// Ctrl-C mid-flow: pods, ports and the plugin would stay behind; rebuild the node as it was.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${red(`Interrupted (${signal})`)}: taking the simulated node down${broughtUp ? '' : ' and up again'}`);
    try {
      sim('down');
      if (!broughtUp) sim('up');
    } finally {
      process.exit(130);
    }
  });
}
let failed = false;
try {
  if (broughtUp) {
    console.log(bold('Bringing up the simulated node (hack/sim/up.sh)'));
    sim('up');
  } else {
    console.log(dim(`The simulated node is already up (${SIM_NODE_FILE}); using it and leaving it up.`));
  }
  let n = 0;
  const s = await runFlow({
    step: (title, about) => console.log(`\n${bold(`${++n}. ${title}`)}\n${dim(about)}`),
    say: (line) => console.log(`   ${line.replaceAll('\n', '\n   ')}`),
  });
  console.log(`\n${green('Every check passed.')}\n\n${summary(s)}`);
} catch (err) {
  failed = true;
  console.error(`\n${red('The demo failed:')} ${(err as Error).stack ?? String(err)}`);
} finally {
  if (broughtUp) {
    console.log(`\n${bold('Taking the simulated node down (hack/sim/down.sh)')}`);
    try {
      sim('down');
    } catch (err) {
      failed = true;
      console.error((err as Error).message);
    }
  }
}
process.exit(failed ? 1 : 0);

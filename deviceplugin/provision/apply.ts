/**
 * The executor: performs a plan's steps in order, recording each step's undo in the state file
 * before the change, and converges: after a round of steps it reads the node again and plans
 * again, until nothing is left to do. Every multi-write step puts things back when one of its
 * writes fails (a PCI function or vDPA device goes back to its driver, a created device that
 * cannot be bound is deleted), so a failure leaves a state the next run completes.
 */
import { existsSync } from 'node:fs';
import { setEswitchMode, setHwTcOffload } from '../../host/eswitch.js';
import { HostError, type Machine } from '../../host/machine.js';
import { loadModules } from '../../host/modules.js';
import { setOtherConfig } from '../../host/ovsconfig.js';
import { OvsdbClient } from '../../host/ovsdb.js';
import { bindPci, busDeviceDir, pciDriver, rebindPci, setNumVfs, unbindPci } from '../../host/sriov.js';
import { isUnreadable, readNames, virtfnLinks } from '../../host/sysfs.js';
import { bindVdpa, createVdpa, deleteVdpa, vdpaBusDriver } from '../../host/vdpa.js';
import type { Logger } from '../../host/log.js';
import type { NodeFacts } from './facts.js';
import type { ProvisionJournal } from './journal.js';
import { planProvision, planTeardown, type Plan } from './plan.js';
import type { Policy } from './policy.js';
import type { Action, PlanStep } from './steps.js';

export class PlanStepError extends Error {
  override name = 'PlanStepError';
  constructor(
    readonly step: PlanStep,
    readonly index: number,
    cause: unknown,
  ) {
    super(`step ${index + 1} (${step.description}) failed: ${(cause as Error).message}`);
  }
}

/** The VFs of a PCI PF that are bound to a driver, with that driver. */
function boundVfs(m: Machine, deviceDir: string): [string, string][] {
  const names = readNames(deviceDir);
  if (isUnreadable(names)) return [];
  const out: [string, string][] = [];
  for (const [vf] of virtfnLinks(deviceDir, names)) {
    const driver = pciDriver(m.sysfsRoot, vf);
    if (driver) out.push([vf, driver]);
  }
  return out;
}

/** Unbind the VFs, switch, rebind them to the drivers they had, whether or not the switch worked. */
async function switchEswitch(m: Machine, device: string, mode: 'legacy' | 'switchdev'): Promise<void> {
  const vfs = device.startsWith('pci/') ? boundVfs(m, busDeviceDir(m.sysfsRoot, device)) : [];
  for (const [vf] of vfs) unbindPci(m, vf);
  let failure: unknown = null;
  try {
    await setEswitchMode(m, device, mode);
  } catch (err) {
    failure = err;
  }
  const rebind: string[] = [];
  for (const [vf, driver] of vfs) {
    try {
      if (pciDriver(m.sysfsRoot, vf) === null) bindPci(m, vf, driver);
    } catch (err) {
      rebind.push((err as Error).message);
    }
  }
  if (failure || rebind.length) {
    throw new HostError([failure ? (failure as Error).message : '', ...rebind.map((r) => `rebinding: ${r}`)].filter(Boolean).join('; '));
  }
}

async function setOvs(a: Extract<Action, { kind: 'set-ovs' }>, m: Machine): Promise<void> {
  const client = await OvsdbClient.connect(a.remote, { requestTimeoutMs: 10_000 });
  try {
    await setOtherConfig(client, a.key, a.value);
  } finally {
    client.close();
  }
  if (a.restart) {
    const [tool, ...args] = a.restart;
    const r = await m.run(tool!, args);
    if (r.code !== 0) throw new HostError(`OVS other_config:${a.key} is set, but ${a.restart.join(' ')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
}

export async function perform(m: Machine, a: Action, log: Logger): Promise<void> {
  switch (a.kind) {
    case 'load-modules':
      return loadModules(m, a.modules);
    case 'set-numvfs':
      return setNumVfs(m, busDeviceDir(m.sysfsRoot, a.device), a.to);
    case 'set-eswitch':
      return switchEswitch(m, a.device, a.mode);
    case 'bind-pci':
      return rebindPci(m, a.pci, a.driver);
    case 'set-hw-tc-offload':
      return setHwTcOffload(m, a.netdev, a.on);
    case 'create-vdpa': {
      const dropped = await createVdpa(m, a.spec);
      if (dropped.length) log.warn('the management device refused some attributes; created the device without them', { device: a.spec.name, mgmtDev: a.spec.mgmtDev, dropped });
      try {
        bindVdpa(m, a.spec.name, a.driver);
      } catch (err) {
        await deleteVdpa(m, a.spec.name).catch(() => undefined);
        throw err;
      }
      if (vdpaBusDriver(m.sysfsRoot, a.spec.name) === null) throw new HostError(`${a.spec.name} is not bound after the bind`);
      return;
    }
    case 'bind-vdpa':
      return bindVdpa(m, a.name, a.driver);
    case 'delete-vdpa':
      if (existsSync(`${m.sysfsRoot}/bus/vdpa/devices/${a.name}`)) await deleteVdpa(m, a.name);
      return;
    case 'set-ovs':
      return setOvs(a, m);
  }
}

export interface RunContext {
  readonly machine: Machine;
  readonly journal: ProvisionJournal;
  readonly log: Logger;
}

/** Performs the steps in order; the first failure stops the run (PlanStepError). */
export async function runPlan(ctx: RunContext, plan: Plan): Promise<void> {
  for (const key of plan.settled) ctx.journal.forget(key);
  for (const [i, s] of plan.steps.entries()) {
    const started = performance.now();
    // Recorded before the change: a crash during it still leaves what teardown needs.
    if (s.journal && 'record' in s.journal) ctx.journal.apply(s.journal);
    try {
      await perform(ctx.machine, s.action, ctx.log);
    } catch (err) {
      ctx.log.error('step failed', { step: i + 1, of: plan.steps.length, at: s.at || undefined, action: s.description, error: err });
      throw new PlanStepError(s, i, err);
    }
    if (s.journal && 'forget' in s.journal) ctx.journal.apply(s.journal);
    ctx.log.info('step done', { step: i + 1, of: plan.steps.length, at: s.at || undefined, action: s.description, ms: Math.round(performance.now() - started) });
  }
}

export interface Outcome {
  /** Steps performed, over all rounds. */
  readonly steps: number;
  readonly rounds: number;
}

/** Up to this many plan-and-apply rounds; the last one must plan nothing. */
const MAX_ROUNDS = 4;

/**
 * Plan, apply, read the node again, until a plan is empty. A round that plans exactly what the
 * previous one did has made no progress: the node does not do what the steps ask, so stop.
 */
export async function converge(ctx: RunContext, gather: () => Promise<NodeFacts>, planFor: (facts: NodeFacts) => Plan): Promise<Outcome> {
  let steps = 0;
  let previous = '';
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const facts = await gather();
    for (const w of facts.warnings) ctx.log.warn(w);
    const plan = planFor(facts);
    for (const n of plan.notes) ctx.log.info(n);
    if (plan.steps.length === 0) {
      for (const key of plan.settled) ctx.journal.forget(key);
      return { steps, rounds: round };
    }
    const shape = JSON.stringify(plan.steps.map((s) => s.action));
    if (shape === previous) {
      const n = plan.steps.length;
      throw new HostError(`no progress: round ${round} plans the same ${n} step${n === 1 ? '' : 's'} again (${plan.steps[0]!.description}${n > 1 ? ', …' : ''})`);
    }
    previous = shape;
    ctx.log.info('applying plan', { round, steps: plan.steps.length });
    await runPlan(ctx, plan);
    steps += plan.steps.length;
  }
  throw new HostError(`the node did not converge in ${MAX_ROUNDS} rounds`);
}

export const provisionPlanner = (policy: Policy) => (facts: NodeFacts) => planProvision(policy, facts);
export const teardownPlanner = (journal: ProvisionJournal) => (facts: NodeFacts) => planTeardown(journal.list(), facts);

/**
 * The executor: performs a plan's steps in order, recording each step's undo in the state file
 * before the change, and converges: after a round of steps it reads the node again and plans
 * again, until nothing is left to do. Every multi-write step puts things back when one of its
 * writes fails (a PCI function or vDPA device goes back to its driver, a created device that
 * cannot be bound is deleted), so a failure leaves a state the next run completes.
 */
import { existsSync } from 'node:fs';
import { setDevlinkParam, setEswitchMode, setHwTcOffload } from '../../host/eswitch.js';
import { copyExecutable, removeFile, symlinkTo, writeTextFile } from '../../host/files.js';
import { HostError, type Machine } from '../../host/machine.js';
import { loadModules } from '../../host/modules.js';
import { setOtherConfig } from '../../host/ovsconfig.js';
import { OvsdbClient } from '../../host/ovsdb.js';
import { bindPci, busDeviceDir, pciDriver, rebindPci, setNumVfs, unbindPci } from '../../host/sriov.js';
import { isUnreadable, readNames, virtfnLinks } from '../../host/sysfs.js';
import { bindVdpa, createVdpa, deleteVdpa, vdpaBusDriver, type VdpaSpec } from '../../host/vdpa.js';
import type { Logger } from '../../host/log.js';
import type { NodeFacts } from './facts.js';
import type { ProvisionJournal } from './journal.js';
import { planTeardown, type Plan } from './plan.js';
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

/** A new device on its bus driver; returns the attributes its management device refused. */
async function createBound(m: Machine, spec: VdpaSpec, driver: 'virtio' | 'vhost', log: Logger): Promise<string[]> {
  const dropped = await createVdpa(m, spec);
  if (dropped.length) log.warn('the management device refused some attributes; created the device without them', { device: spec.name, mgmtDev: spec.mgmtDev, dropped });
  try {
    bindVdpa(m, spec.name, driver);
  } catch (err) {
    await deleteVdpa(m, spec.name).catch(() => undefined);
    throw err;
  }
  if (vdpaBusDriver(m.sysfsRoot, spec.name) === null) throw new HostError(`${spec.name} is not bound after the bind`);
  return dropped;
}

async function deleteIfThere(m: Machine, name: string): Promise<void> {
  if (existsSync(`${m.sysfsRoot}/bus/vdpa/devices/${name}`)) await deleteVdpa(m, name);
}

/** Performs one action; for a device it makes, returns the attributes its management device refused. */
export async function perform(m: Machine, a: Action, log: Logger): Promise<readonly string[] | null> {
  switch (a.kind) {
    case 'load-modules':
      await loadModules(m, a.modules);
      break;
    case 'set-numvfs':
      setNumVfs(m, busDeviceDir(m.sysfsRoot, a.device), a.to);
      break;
    case 'set-eswitch':
      await switchEswitch(m, a.device, a.mode);
      break;
    case 'set-devlink-param':
      await setDevlinkParam(m, a.device, a.name, a.value);
      break;
    case 'bind-pci':
      rebindPci(m, a.pci, a.driver);
      break;
    case 'set-hw-tc-offload':
      await setHwTcOffload(m, a.netdev, a.on);
      break;
    case 'create-vdpa':
      return createBound(m, a.spec, a.driver, log);
    case 'recreate-vdpa':
      await deleteIfThere(m, a.spec.name);
      return createBound(m, a.spec, a.driver, log);
    case 'bind-vdpa':
      bindVdpa(m, a.name, a.driver);
      break;
    case 'delete-vdpa':
      await deleteIfThere(m, a.name);
      break;
    case 'set-ovs':
      await setOvs(a, m);
      break;
    case 'write-file':
      writeTextFile(a.path, a.text, a.mode);
      break;
    case 'copy-file':
      copyExecutable(a.from, a.to);
      break;
    case 'link-file':
      symlinkTo(a.path, a.target);
      break;
    case 'remove-file':
      removeFile(a.path);
      break;
  }
  return null;
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
    let refused: readonly string[] | null;
    try {
      refused = await perform(ctx.machine, s.action, ctx.log);
    } catch (err) {
      ctx.log.error('step failed', { step: i + 1, of: plan.steps.length, at: s.at || undefined, action: s.description, error: err });
      throw new PlanStepError(s, i, err);
    }
    if (s.journal && 'forget' in s.journal) ctx.journal.apply(s.journal);
    // So that a refused attribute is not taken for drift next time.
    if (refused && s.journal && 'record' in s.journal) ctx.journal.noteRefused(s.journal.record, refused);
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

export const teardownPlanner = (journal: ProvisionJournal) => (facts: NodeFacts) => planTeardown(journal.list(), facts);

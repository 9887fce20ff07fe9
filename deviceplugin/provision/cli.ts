/**
 * `vdpa-device-plugin provision` and `vdpa-device-plugin teardown`: node provisioning as
 * subcommands of the device plugin's executable, so one image (and one ~100 MB single
 * executable) carries both, typically as the DaemonSet's init container and its main container.
 * Exit codes: 0 done (or nothing to do), 1 refused or failed, 2 bad flags.
 */
import { readFileSync } from 'node:fs';
import { isSea } from 'node:sea';
import { dirname } from 'node:path';
import { discover } from '../../host/discover.js';
import { acquireLock } from '../../host/lock.js';
import { createLogger, isLogLevel, LOG_LEVELS, type Logger, type LogLevel } from '../../host/log.js';
import { realMachine, type Machine } from '../../host/machine.js';
import { defaultBuiltinList } from '../../host/modules.js';
import { etcPathsFromEnv, pathsFromEnv, type EtcPaths } from '../../host/paths.js';
import { converge, teardownPlanner, PlanStepError } from './apply.js';
import { bootPaths, UNIT_NAME, type BootLayout } from './boot.js';
import { gatherFacts, type GatherOptions } from './facts.js';
import { DEFAULT_STATE_FILE, ProvisionJournal, ProvisionJournalError } from './journal.js';
import { PlanError, planProvision, type BootRequest, type Plan } from './plan.js';
import { parsePolicyFileText, PolicyError, type PolicyFile } from './policy.js';
import { formatSelection, mergePolicies, parseLabels, selectPolicies, type NodeIdentity } from './select.js';
import { describeAction } from './steps.js';

export const SUBCOMMANDS = ['provision', 'teardown'] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];

interface Options {
  readonly policy: string | null;
  readonly dryRun: boolean;
  readonly installBoot: boolean;
  readonly node: string | null;
  readonly nodeLabels: string | null;
  readonly state: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly devinfoDir: string;
  readonly logLevel: LogLevel;
  readonly logFile: string | null;
}

class UsageError extends Error {}

export function usage(cmd: Subcommand, env: NodeJS.ProcessEnv = process.env): string {
  const paths = pathsFromEnv(env);
  const what =
    cmd === 'provision'
      ? [
          'Converges the node to a policy: VFs, eswitch mode, flow steering, hw-tc-offload, kernel',
          'modules, one vDPA device per VF (named vdpa:<VF address>) bound to virtio_vdpa or vhost_vdpa',
          '(made again when its mac, mtu or max_vqp drifted), OVS hw-offload. A second run changes',
          'nothing. Refuses, changing nothing, a policy the node cannot take.',
          '',
          'The file holds one policy for every node, or {"policies": [...]}, each with a name, a',
          'nodeSelector (nodeName, matchLabels: all must hold) and a priority (0 highest, 99 the',
          'default). The policies that select this node are merged per device: each setting comes from',
          'the highest priority that sets it; a lower-priority vDPA group that shares a VF with a higher',
          'one is dropped; two policies of the same priority that disagree are a conflict, refused.',
          '--dry-run shows which policies apply and why the others do not.',
        ]
      : ['Undoes what provision recorded in the state file, newest first (the boot unit and rules', 'included), and nothing else.'];
  return [
    `vdpa-device-plugin ${cmd} — ${cmd === 'provision' ? 'node provisioning from a policy file' : 'undo node provisioning'}`,
    '',
    `Usage: vdpa-device-plugin ${cmd} ${cmd === 'provision' ? '--policy FILE ' : ''}[--dry-run] [flags]`,
    '',
    ...what.map((l) => `  ${l}`),
    '',
    'Flags:',
    ...(cmd === 'provision'
      ? [
          '  --policy FILE        the policy (JSON)',
          '  --node NAME          this node, for nodeSelector.nodeName (default: $NODE_NAME)',
          '  --node-labels FILE   its labels, for nodeSelector.matchLabels: key="value" lines (the',
          '                       Downward API labels format)',
          `  --install-boot       also install ${UNIT_NAME}, which replays this node's policy at boot`,
          '                       before NetworkManager, and udev and NetworkManager rules that keep',
          "                       them off the VFs, representors and vDPA devices (teardown removes them)",
        ]
      : []),
    '  --dry-run            print the plan and change nothing',
    `  --state FILE         what was changed, for teardown (default "${DEFAULT_STATE_FILE}")`,
    `  --devinfo-dir DIR    DeviceInfo root; DIR/dp says which devices pods hold (default "${paths.devinfoDir}")`,
    `  --sysfs-root DIR     (default "${paths.sysfsRoot}")`,
    `  --dev-root DIR       (default "${paths.devRoot}")`,
    `  --log-level LEVEL    ${LOG_LEVELS.join(' | ')} (default "info")`,
    '  --log-file FILE      append the JSON-lines log here too',
    '  --help               show this text',
    '',
    'Logs go to stderr as JSON lines; --dry-run prints the plan on stdout.',
    '',
  ].join('\n');
}

function parseOptions(cmd: Subcommand, argv: readonly string[], env: NodeJS.ProcessEnv): Options | 'help' {
  const paths = pathsFromEnv(env);
  const values: Record<string, string> = {};
  const switches = new Set<string>();
  const takes = ['state', 'devinfo-dir', 'sysfs-root', 'dev-root', 'log-level', 'log-file', ...(cmd === 'provision' ? ['policy', 'node', 'node-labels'] : [])];
  const flags = ['--dry-run', ...(cmd === 'provision' ? ['--install-boot'] : [])];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    if (flags.includes(arg)) {
      switches.add(arg);
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !takes.includes(m[1]!)) throw new UsageError(`unknown argument ${JSON.stringify(arg)} (see --help)`);
    const value = m[2] ?? argv[++i];
    if (value === undefined || value === '') throw new UsageError(`--${m[1]} needs a value`);
    values[m[1]!] = value;
  }
  if (cmd === 'provision' && !values.policy) throw new UsageError('--policy FILE is required');
  const level = values['log-level'] ?? 'info';
  if (!isLogLevel(level)) throw new UsageError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    policy: values.policy ?? null,
    dryRun: switches.has('--dry-run'),
    installBoot: switches.has('--install-boot'),
    node: values.node ?? (env.NODE_NAME || null),
    nodeLabels: values['node-labels'] ?? null,
    state: values.state ?? DEFAULT_STATE_FILE,
    sysfsRoot: values['sysfs-root'] ?? paths.sysfsRoot,
    devRoot: values['dev-root'] ?? paths.devRoot,
    devinfoDir: values['devinfo-dir'] ?? paths.devinfoDir,
    logLevel: level,
    logFile: values['log-file'] ?? null,
  };
}

export function formatPlan(title: string, plan: Plan): string {
  const lines = [plan.steps.length ? `${title}: ${plan.steps.length} step${plan.steps.length > 1 ? 's' : ''}` : `${title}: nothing to do`];
  plan.steps.forEach((s, i) => {
    lines.push(`  ${String(i + 1).padStart(2)}. ${s.at ? `[${s.at}] ` : ''}${s.description}`);
    if (s.journal && 'record' in s.journal) lines.push(`      undo: ${describeAction(s.journal.undo)}`);
  });
  for (const n of plan.notes) lines.push(`  note: ${n}`);
  return `${lines.join('\n')}\n`;
}

export interface Session {
  readonly machine: Machine;
  readonly gather: GatherOptions;
  readonly journal: ProvisionJournal;
  readonly log: Logger;
  /** Where the boot unit and rules go. */
  readonly etc: EtcPaths;
  /** The running executable, which the boot unit runs a copy of; null when this is not the single executable. */
  readonly self: string | null;
}

/** What provision is asked to do. */
export interface ProvisionRequest {
  readonly file: PolicyFile;
  readonly node: NodeIdentity;
  readonly installBoot: boolean;
}

/** One provision (request given) or teardown (null), as the CLI runs it; tests call it with a fixture's machine. */
export async function execute(s: Session, req: ProvisionRequest | null, dryRun: boolean, out: (text: string) => void): Promise<void> {
  const cmd: Subcommand = req ? 'provision' : 'teardown';
  let header = '';
  let gather = () => gatherFacts(s.machine, s.gather, null, s.journal.list());
  let planFor = teardownPlanner(s.journal);
  if (req) {
    const selection = selectPolicies(req.file, req.node);
    header = formatSelection(selection);
    if (!selection.matched.length) {
      s.log.warn('no policy applies to this node; nothing to do', { node: req.node.name, skipped: selection.skipped.map((v) => `${v.policy.name}: ${v.why}`) });
      if (dryRun) out(`${header}provision plan: nothing to do\n`);
      return;
    }
    if (!selection.single) s.log.info('policies applied', { node: req.node.name, policies: selection.matched.map((v) => v.policy.name) });
    // PF selectors resolve once, before anything changes names.
    const snapshot = discover({ sysfsRoot: s.machine.sysfsRoot, devRoot: s.gather.devRoot });
    const effective = mergePolicies(selection.matched.map((v) => v.policy), snapshot);
    if (effective.problems.length) throw new PlanError(effective.problems);
    const layout: BootLayout = { etc: s.etc, stateFile: s.journal.file, self: s.self };
    const boot: BootRequest = { layout, install: req.installBoot };
    const files = [...Object.values(bootPaths(layout)), ...(s.self ? [s.self] : [])];
    gather = () => gatherFacts(s.machine, { ...s.gather, files }, effective.policy, s.journal.list());
    planFor = (facts) => planProvision(effective.policy, facts, boot);
    if (dryRun) {
      const plan = planFor(await logged(s, gather));
      out(header + formatPlan('provision plan', { ...plan, notes: [...effective.notes, ...plan.notes] }));
      return;
    }
    for (const n of effective.notes) s.log.info(n);
  } else if (dryRun) {
    out(formatPlan('teardown plan', planFor(await logged(s, gather))));
    return;
  }
  const started = performance.now();
  const outcome = await converge({ machine: s.machine, journal: s.journal, log: s.log }, gather, planFor);
  s.log.info(outcome.steps ? `${cmd}: done` : `${cmd}: nothing to do`, { ...outcome, ms: Math.round(performance.now() - started) });
}

async function logged(s: Session, gather: () => ReturnType<typeof gatherFacts>): ReturnType<typeof gatherFacts> {
  const facts = await gather();
  for (const w of facts.warnings) s.log.warn(w);
  return facts;
}

export async function runSubcommand(cmd: Subcommand, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(cmd, argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`vdpa-device-plugin ${cmd}: ${err.message}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(usage(cmd, env));
    return 0;
  }
  const log = createLogger({ level: opts.logLevel, ...(opts.logFile ? { file: opts.logFile } : {}), fields: { cmd } });
  try {
    const file = opts.policy === null ? null : parsePolicyFileText(readFileSync(opts.policy, 'utf8'), opts.policy);
    const labels = opts.nodeLabels === null ? null : parseLabels(readFileSync(opts.nodeLabels, 'utf8'), opts.nodeLabels);
    const req = file && { file, node: { name: opts.node, labels }, installBoot: opts.installBoot };
    // Two runs at once would plan against each other's half-done work. The lock file lives
    // beside the state file: <its directory>/locks/provision.lock.
    const lock = await acquireLock('provision', { scope: dirname(opts.state), timeoutMs: 120_000, onWait: (pid) => log.info('waiting for another provisioning run', { pid }) });
    try {
      const session: Session = {
        machine: realMachine(opts.sysfsRoot),
        gather: { devRoot: opts.devRoot, devinfoDir: opts.devinfoDir, builtinList: defaultBuiltinList() },
        journal: ProvisionJournal.open(opts.state),
        log,
        etc: etcPathsFromEnv(env),
        self: isSea() ? process.execPath : null,
      };
      await execute(session, req, opts.dryRun, (t) => process.stdout.write(t));
    } finally {
      await lock.release();
    }
    return 0;
  } catch (err) {
    if (err instanceof PlanError) log.error(`${cmd} refused; nothing was changed`, { problems: err.problems });
    else if (err instanceof PlanStepError) log.error(`${cmd} stopped: ${err.message}; the next run continues from here`, { state: opts.state });
    else if (err instanceof PolicyError || err instanceof ProvisionJournalError || (err as NodeJS.ErrnoException).code === 'ENOENT') log.error((err as Error).message);
    else log.error(`${cmd} failed: ${(err as Error).message}`, { stack: (err as Error).stack });
    return 1;
  } finally {
    log.close();
  }
}

/** Shared pieces of the provisioning suites: a session on a FakeKernel, reading the ops it recorded. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { dpDeviceInfoPath } from '../../host/deviceinfo.js';
import { createLogger } from '../../host/log.js';
import { execute, type ProvisionRequest, type Session } from '../../deviceplugin/provision/cli.js';
import { gatherFacts, type NodeFacts } from '../../deviceplugin/provision/facts.js';
import { ProvisionJournal } from '../../deviceplugin/provision/journal.js';
import { PlanError, planProvision, type Plan } from '../../deviceplugin/provision/plan.js';
import { parsePolicy, singlePolicyFile, type Policy, type PolicyFile } from '../../deviceplugin/provision/policy.js';
import type { NodeIdentity } from '../../deviceplugin/provision/select.js';
import { etcPathsFromEnv, type EtcPaths } from '../../host/paths.js';
import type { FakeKernel } from './kernel.js';

/** Tool runs that only read. */
const READS = /^run (devlink -j|ethtool -k|vdpa -j)/;

/** The recorded ops that change something (writes and mutating tool runs). */
export const changes = (ops: readonly string[]): string[] => ops.filter((o) => !READS.test(o));

export class Bench {
  readonly dir = mkdtempSync(join(tmpdir(), 'vdpa-provision-'));
  readonly stateFile = join(this.dir, 'state', 'provision.json');
  readonly devinfoDir = join(this.dir, 'devinfo');
  readonly logFile = join(this.dir, 'log.jsonl');
  /** The boot unit and rules go under <dir>/etc. */
  readonly etc: EtcPaths = etcPathsFromEnv({ VDPA_ETC_DIR: join(this.dir, 'etc') });
  private readonly log = createLogger({ stderr: false, file: this.logFile, level: 'debug' });

  /** `self`: the executable the boot unit runs a copy of (the single executable, in the CLI). */
  constructor(
    readonly k: FakeKernel,
    readonly self: string | null = null,
  ) {}

  session(): Session {
    return {
      machine: this.k,
      gather: { devRoot: this.k.fx.devRoot, devinfoDir: this.devinfoDir, builtinList: join(this.dir, 'no-modules.builtin') },
      journal: ProvisionJournal.open(this.stateFile),
      log: this.log,
      etc: this.etc,
      self: this.self,
    };
  }

  facts(policy: Policy | null): Promise<NodeFacts> {
    const s = this.session();
    return gatherFacts(this.k, s.gather, policy, s.journal.list());
  }

  async plan(policy: Policy): Promise<Plan> {
    return planProvision(policy, await this.facts(policy));
  }

  /**
   * Runs provision (a policy or a whole file; `node` says which node this is) or teardown (null)
   * as the CLI does; returns the changes it made and its dry-run text.
   */
  async run(
    cmd: 'provision' | 'teardown',
    policy: Policy | PolicyFile | null,
    dryRun = false,
    opts: { node?: NodeIdentity; installBoot?: boolean } = {},
  ): Promise<{ changes: string[]; out: string }> {
    this.k.take();
    let out = '';
    const file = policy && ('policies' in policy ? policy : singlePolicyFile(policy));
    const req: ProvisionRequest | null = cmd === 'provision' ? { file: file!, node: opts.node ?? { name: null, labels: null }, installBoot: opts.installBoot ?? false } : null;
    await execute(this.session(), req, dryRun, (t) => (out += t));
    return { changes: changes(this.k.take()), out };
  }

  /** A DeviceInfo file as the device plugin writes it on Allocate. */
  allocate(pci: string, resource = 'example.com-vdpa'): string {
    const file = dpDeviceInfoPath(this.devinfoDir, resource, pci);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ type: 'vdpa', version: '1.1.0', vdpa: { 'parent-device': `vdpa:${pci}`, driver: 'virtio', path: '/sys/bus/virtio/devices/virtio0', 'pci-address': pci } }));
    return file;
  }

  logLines(): { level: string; msg: string; [k: string]: unknown }[] {
    return readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: string; msg: string });
  }

  cleanup(): void {
    this.log.close();
    this.k.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The problems of a plan that must be refused. */
export async function refused(b: Bench, policy: Policy): Promise<string[]> {
  try {
    await b.plan(policy);
  } catch (err) {
    if (err instanceof PlanError) return [...err.problems];
    throw err;
  }
  throw new Error('the plan was not refused');
}

/** The policy of most tests: 4 VFs in switchdev, two virtio and two vhost vDPA devices. */
export const FOUR_VFS = parsePolicy({
  pfs: [
    {
      pciAddress: '0000:65:00.0',
      numVfs: 4,
      eSwitchMode: 'switchdev',
      vdpa: [
        { vfs: '0-1', vdpaType: 'virtio', macBase: '02:00:00:00:65:00', mtu: 9000 },
        { vfs: '2-3', vdpaType: 'vhost', maxVqp: 2 },
      ],
    },
  ],
});

export const VFS = ['0000:65:00.2', '0000:65:00.3', '0000:65:00.4', '0000:65:00.5'] as const;

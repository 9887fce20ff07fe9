/**
 * What the two halves of the boot-replay test share: provision-reboot-a installs the boot unit in
 * one guest, provision-reboot-b replays it in the next, freshly booted one. Their files live on
 * the results share (the guest's / is a tmpfs overlay that dies with it), under BOOT_DIR.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { bootPaths } from '../../../deviceplugin/provision/boot.js';
import { etcPathsFromEnv } from '../../../host/paths.js';
import { DP_BIN } from '../../support/paths.js';
import { link, pciDriver, sh, vdpaDriver, vhostOf, virtioNetFunctions, virtioOf } from './testbed.js';

export const BOOT_DIR = '/results/provision-boot';
const ETC_DIR = join(BOOT_DIR, 'etc');
export const STATE = join(BOOT_DIR, 'state', 'provision.json');
export const POLICY = join(BOOT_DIR, 'policy.json');
export const BOOT = bootPaths({ etc: etcPathsFromEnv({ VDPA_ETC_DIR: ETC_DIR }), stateFile: STATE, self: DP_BIN });

/** guest.sh names the guest so. */
export const NODE = 'vdpa-testbed';
const NSIM = 78;
export const HANDLE = `netdevsim/netdevsim${NSIM}`;
export const NSIM_DIR = `/sys/bus/netdevsim/devices/netdevsim${NSIM}`;
/** The third virtio-net function (provision.vm.ts uses the first two, in its own guest). */
export const FN = virtioNetFunctions()[2]!;
export const SIM = ['vdpa:vdpasim_net:0', 'vdpa:vdpasim_net:1'] as const;
export const SIM_MACS = ['02:00:00:00:78:00', '02:00:00:00:78:01'] as const;

/** One file for a cluster: this node's policy, and one for a node that is not this one. */
export const CLUSTER = {
  policies: [
    {
      name: 'testbed',
      nodeSelector: { nodeName: NODE },
      priority: 10,
      pfs: [{ devlink: HANDLE, numVfs: 2, eSwitchMode: 'switchdev' }],
      mgmtDevs: [
        { mgmtDev: `pci/${FN}`, vdpaType: 'vhost' },
        { mgmtDev: 'vdpasim_net', count: 2, vdpaType: 'virtio', macBase: SIM_MACS[0] },
      ],
    },
    { name: 'elsewhere', nodeSelector: { nodeName: 'another-node' }, pfs: [{ devlink: HANDLE, numVfs: 4 }] },
  ],
};

export interface Run {
  code: number | null;
  stdout: string;
  logs: { level: string; msg: string; [k: string]: unknown }[];
  ms: number;
}

function parseRun(r: ReturnType<typeof spawnSync>, started: number): Run {
  const logs = String(r.stderr)
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as Run['logs'][number];
      } catch {
        return { level: 'raw', msg: l };
      }
    });
  return { code: r.status, stdout: String(r.stdout), logs, ms: Math.round(performance.now() - started) };
}

/** The built executable with the boot roots under BOOT_DIR. */
export function cli(...args: string[]): Run {
  const started = performance.now();
  return parseRun(spawnSync(DP_BIN, args, { encoding: 'utf8', timeout: 600_000, env: { ...process.env, VDPA_ETC_DIR: ETC_DIR } }), started);
}

/** A command line as systemd splits ExecStart (our unit quotes nothing here: no spaces in these paths). */
export function execStart(): string[] {
  const line = readFileSync(BOOT.unit, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  assert.ok(line, `no ExecStart in ${BOOT.unit}`);
  return line.slice('ExecStart='.length).split(' ');
}

export function runExecStart(): Run {
  const [file, ...args] = execStart();
  const started = performance.now();
  return parseRun(spawnSync(file!, args, { encoding: 'utf8', timeout: 600_000, env: { PATH: process.env.PATH } }), started);
}

export const changed = (r: Run): string[] => r.logs.filter((l) => l.msg === 'step done').map((l) => String(l.action));
const attr = (p: string) => readFileSync(p, 'utf8').trim();
export const ourDevices = (): string[] => readdirSync('/sys/bus/vdpa/devices').filter((n) => n.startsWith('vdpa:')).sort();

export function newNetdevsim(): void {
  writeFileSync('/sys/bus/netdevsim/new_device', `${NSIM} 1`);
}

/** What a node fresh from boot looks like here. */
export function assertFresh(): void {
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '0');
  assert.match(sh('devlink', ['dev', 'eswitch', 'show', HANDLE]), 'mode legacy');
  assert.is(pciDriver(FN), 'virtio-pci');
  assert.equal(ourDevices(), []);
}

/** What the policy asks of this node. */
export function assertProvisioned(): void {
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '2');
  assert.match(sh('devlink', ['dev', 'eswitch', 'show', HANDLE]), 'mode switchdev');
  assert.is(pciDriver(FN), 'vp-vdpa');
  assert.is(vdpaDriver(`vdpa:${FN}`), 'vhost_vdpa');
  assert.ok(vhostOf(`vdpa:${FN}`), 'a vhost-vdpa char device');
  assert.equal(
    SIM.map((n) => [vdpaDriver(n), link(virtioOf(n)?.netdev ?? '')?.address]),
    SIM_MACS.map((mac) => ['virtio_vdpa', mac]),
  );
}

export const bootFilesThere = (): string[] => Object.values(BOOT).filter((p) => existsSync(p));

/**
 * Runs the built vdpa-cni the way a runtime does, against real netns and veth pairs that stand in
 * for the VF's virtio netdev (moves into the pod) and its representor (stays in the host, goes
 * into br-int), named in a fixture sysfs tree. Everything created carries a per-run prefix.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type ExecResult } from './exec.js';
import { buildFixture, type Fixture, type FixtureVf } from './fixture.js';
import { CNI_BIN } from './paths.js';

export const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
export const shOk = (cmd: string, args: string[]): boolean => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Short and unique per process: interface names have 15 bytes. */
export const RUN = `t${(process.pid % 46656).toString(36)}`;

export interface LinkView {
  name: string;
  mac: string;
  mtu: number;
  alias: string;
  up: boolean;
}

export function links(netns: string | null): LinkView[] {
  const args = ['-j', 'link', 'show'];
  const out = netns ? sh('ip', ['-n', netns, ...args]) : sh('ip', args);
  return (JSON.parse(out) as { ifname: string; address: string; mtu: number; ifalias?: string; flags: string[] }[]).map((l) => ({
    name: l.ifname,
    mac: l.address,
    mtu: l.mtu,
    alias: l.ifalias ?? '',
    up: l.flags.includes('UP'),
  }));
}

export const link = (netns: string | null, name: string): LinkView | undefined => links(netns).find((l) => l.name === name);

export function addresses(netns: string, dev: string): string[] {
  const out = JSON.parse(sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev, 'scope', 'global'])) as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return out.flatMap((l) => l.addr_info.filter((a) => a.local).map((a) => `${a.local}/${a.prefixlen}`));
}

export function routes(netns: string, dev: string): string[] {
  const read = (f: string) =>
    (JSON.parse(sh('ip', ['-n', netns, f, '-j', 'route', 'show', 'dev', dev])) as { dst: string; gateway?: string }[]).map(
      (r) => (r.gateway ? `${r.dst} via ${r.gateway}` : r.dst),
    );
  return [...read('-4'), ...read('-6')];
}

/** One simulated VF: a veth pair (netdev ↔ representor) named in the fixture. */
export interface Vf {
  readonly pci: string;
  readonly netdev: string;
  readonly representor: string;
  readonly fixture: FixtureVf;
}

export interface Bed {
  readonly fx: Fixture;
  readonly vfs: readonly Vf[];
  readonly stateDir: string;
  readonly devinfoDir: string;
  readonly dir: string;
  /** A fresh named netns; removed by cleanup(). */
  netns(tag: string): string;
  /** Environment for the binary (CNI_* are added per call). */
  env(extra?: Record<string, string>): Record<string, string>;
  cleanup(): void;
}

export interface BedOptions {
  readonly count: number;
  /** Per-VF vDPA driver; default virtio. */
  readonly driver?: (i: number) => 'virtio' | 'vhost';
  /** Legacy (no representors) instead of switchdev. */
  readonly legacy?: boolean;
}

/** Creates veth pairs and the fixture tree naming them; `cleanup` removes all of it. */
export function bed(tag: string, opts: BedOptions): Bed {
  const prefix = `${RUN}${tag}`;
  const pairs = Array.from({ length: opts.count }, (_, i) => ({ netdev: `${prefix}v${i}`, representor: `${prefix}r${i}` }));
  for (const p of pairs) {
    shOk('ip', ['link', 'del', p.netdev]);
    sh('ip', ['link', 'add', p.netdev, 'type', 'veth', 'peer', 'name', p.representor]);
  }
  const fx = buildFixture({
    pfs: [
      {
        switchdev: !opts.legacy,
        vfs: pairs.map((p, i) => ({
          vdpa: opts.driver?.(i) ?? 'virtio',
          netdev: p.netdev,
          ...(opts.legacy ? {} : { representor: p.representor }),
        })),
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), `vdpa-cni-${tag}-`));
  const stateDir = join(dir, 'state');
  const devinfoDir = join(dir, 'devinfo');
  const namespaces: string[] = [];
  return {
    fx,
    dir,
    stateDir,
    devinfoDir,
    vfs: fx.vfs.map((f, i) => ({ pci: f.pci, netdev: pairs[i]!.netdev, representor: pairs[i]!.representor, fixture: f })),
    netns(t: string) {
      const name = `${prefix}-${t}`;
      shOk('ip', ['netns', 'del', name]);
      sh('ip', ['netns', 'add', name]);
      namespaces.push(name);
      return name;
    },
    env(extra = {}) {
      return {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        VDPA_SYSFS_ROOT: fx.sysfsRoot,
        VDPA_DEV_ROOT: fx.devRoot,
        VDPA_DEVINFO_DIR: devinfoDir,
        VDPA_STATE_DIR: stateDir,
        ...extra,
      };
    },
    cleanup() {
      for (const n of namespaces) shOk('ip', ['netns', 'del', n]);
      for (const p of pairs) shOk('ip', ['link', 'del', p.netdev]) || shOk('ip', ['link', 'del', p.representor]);
      fx.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CallArgs {
  readonly containerId: string;
  readonly ifname?: string;
  /** A named netns (under /run/netns) or an absolute path; "" for none. */
  readonly netns?: string;
  readonly args?: string;
  readonly path?: string;
  readonly env?: Record<string, string>;
}

export const nsPath = (netns: string) => (netns === '' || netns.startsWith('/') ? netns : `/run/netns/${netns}`);

export interface CniCall extends ExecResult {
  json: Record<string, unknown> | null;
}

/** The environment libcni would give the plugin for one verb. */
function callEnv(b: Bed, command: string, c: CallArgs): Record<string, string> {
  return b.env({
    CNI_COMMAND: command,
    CNI_CONTAINERID: c.containerId,
    CNI_NETNS: nsPath(c.netns ?? ''),
    CNI_IFNAME: c.ifname ?? 'net1',
    CNI_PATH: c.path ?? '/usr/lib/cni',
    CNI_ARGS: c.args ?? 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod',
    ...c.env,
  });
}

/** Runs the built binary with one verb, as libcni would. */
export async function cni(b: Bed, command: string, conf: object | string, c: CallArgs): Promise<CniCall> {
  const env = callEnv(b, command, c);
  const r = await run(CNI_BIN, [], { env, input: typeof conf === 'string' ? conf : JSON.stringify(conf) });
  let json: Record<string, unknown> | null = null;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : null;
  } catch {
    json = null;
  }
  return { ...r, json };
}

/** host-local IPAM with its leases in the bed's directory. */
export function hostLocal(b: Bed, subnet: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'host-local', dataDir: join(b.dir, 'ipam'), ranges: [[{ subnet }]], ...extra };
}

/**
 * A tiny IPAM plugin that speaks 1.1.0 (Debian's plugins stop at 1.0.0): ADD answers with
 * ipam.address / ipam.gateway / ipam.routes from the config; every call is appended to calls.log.
 */
export function testIpam(b: Bed): { path: string; calls: () => string[] } {
  const dir = join(b.dir, 'bin');
  mkdirSync(dir, { recursive: true });
  const log = join(b.dir, 'ipam-calls.log');
  writeFileSync(
    join(dir, 'test-ipam'),
    `#!${process.execPath}
const fs = require('fs');
const conf = JSON.parse(fs.readFileSync(0, 'utf8'));
const cmd = process.env.CNI_COMMAND;
fs.appendFileSync(${JSON.stringify(log)}, cmd + ' ' + process.env.CNI_CONTAINERID + '\\n');
if (cmd === 'ADD' && conf.ipam.fail) {
  process.stderr.write('test-ipam: ' + conf.ipam.fail + '\\n');
  process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: 11, msg: conf.ipam.fail }));
  process.exit(1);
}
if (cmd === 'ADD') {
  const ipam = conf.ipam;
  process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion,
    ips: [{ address: ipam.address, gateway: ipam.gateway }], routes: ipam.routes || [], dns: {} }));
}
`,
  );
  chmodSync(join(dir, 'test-ipam'), 0o755);
  return {
    path: `${dir}:/usr/lib/cni`,
    calls: () => {
      try {
        return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

/**
 * Host links this run could have touched: its own, the host's eth0, and anything named or marked
 * by vdpa-cni. Other suites create and remove links concurrently, so the rest is not compared.
 */
export const ownLinks = (): LinkView[] =>
  links(null).filter((l) => l.name.startsWith(RUN) || l.name === 'eth0' || l.name.startsWith('vdpatmp') || l.alias.startsWith('vdpa-cni/'));

/** OVS Interface rows (name and external_ids) of this run's links; "no OVS" when it is not running. */
function ovsRows(): string[] {
  try {
    const out = sh('ovs-vsctl', ['--timeout=5', '--format=json', '--columns=name,external_ids', 'list', 'Interface']);
    const rows = (JSON.parse(out) as { data: [string, unknown][] }).data;
    return rows.filter(([name]) => name.startsWith(RUN)).map((r) => JSON.stringify(r)).sort();
  } catch {
    return ['no OVS'];
  }
}

/** What a bad call must not change: links and their aliases, netns contents, OVS rows, state files. */
export function hostView(b: Bed, namespaces: string[]): string {
  const view = {
    host: ownLinks()
      .map((l) => `${l.name} ${l.alias} ${l.mtu} ${l.up}`)
      .sort(),
    pods: namespaces.map((n) => links(n).map((l) => `${l.name} ${l.alias}`)),
    ovs: ovsRows(),
    state: (() => {
      try {
        return readdirSync(join(b.stateDir, 'attachments'));
      } catch {
        return [];
      }
    })(),
  };
  return JSON.stringify(view, null, 1);
}

/** Starts the binary and resolves `paused` when it reports the VDPA_CNI_TEST_PAUSE point. */
export function startCni(b: Bed, command: string, conf: object, c: CallArgs): { child: ChildProcess; paused: Promise<void> } {
  const child = spawn(CNI_BIN, [], { env: callEnv(b, command, c), stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(JSON.stringify(conf));
  let err = '';
  const paused = new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('"testPause"')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`exited ${code} before pausing: ${err}`)));
  });
  paused.catch(() => undefined);
  return { child, paused };
}

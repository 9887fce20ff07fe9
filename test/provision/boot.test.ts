// `provision --install-boot` on a fixture node: the boot unit (checked by systemd-analyze verify),
// its multi-user.target link, the udev and NetworkManager rules, the recorded policy and the copy
// of the executable, each recorded for teardown; a second run writes nothing; a file provision
// did not write is refused; the recorded policy replayed on a fresh node brings it to the same
// state; teardown removes every file. The roots are a temporary /etc (VDPA_ETC_DIR).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bootPaths } from '../../deviceplugin/provision/boot.js';
import { PlanError } from '../../deviceplugin/provision/plan.js';
import { parsePolicyFile } from '../../deviceplugin/provision/policy.js';
import { DP_BIN, ROOT } from '../support/paths.js';
import { Bench, FOUR_VFS, VFS } from './harness.js';
import { FakeKernel } from './kernel.js';

const PF = '0000:65:00.0';
const freshNode = () => new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] }), DP_BIN);
const pathsOf = (b: Bench) => bootPaths({ etc: b.etc, stateFile: b.stateFile, self: b.self });

test.before(() => {
  // systemd-analyze comes with Debian's systemd package.
  const r = spawnSync('bash', ['-c', 'source hack/lib/packages.sh && ensure_packages provision-boot systemd'], { cwd: ROOT, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

test('--install-boot: unit, link, rules, recorded policy and executable, each with its undo; systemd-analyze verify passes; a second run writes nothing', async () => {
  const b = freshNode();
  try {
    const p = pathsOf(b);
    const dry = await b.run('provision', FOUR_VFS, true, { installBoot: true });
    assert.equal(dry.out.split('\n').slice(2, 14), [
      `   2. [boot] copy ${DP_BIN} to ${p.executable}`,
      `      undo: remove ${p.executable}`,
      `   3. [boot] write ${p.policy}`,
      `      undo: remove ${p.policy}`,
      `   4. [boot] write ${p.udevRules}`,
      `      undo: remove ${p.udevRules}`,
      `   5. [boot] write ${p.networkManager}`,
      `      undo: remove ${p.networkManager}`,
      `   6. [boot] write ${p.unit}`,
      `      undo: remove ${p.unit}`,
      `   7. [boot] link ${p.wants} to ../vdpa-k8s-provision.service`,
      `      undo: remove ${p.wants}`,
    ]);
    assert.not.ok(existsSync(p.unit), 'a dry run writes nothing');

    await b.run('provision', FOUR_VFS, false, { installBoot: true });
    const unit = readFileSync(p.unit, 'utf8');
    for (const line of [
      'DefaultDependencies=no',
      'After=network-pre.target systemd-udev-settle.service systemd-sysusers.service systemd-sysctl.service',
      'Before=network.target NetworkManager.service systemd-networkd.service ovs-vswitchd.service ovsdb-server.service openvswitch-switch.service kubelet.service',
      `ExecStart=${p.executable} provision --policy ${p.policy} --state ${b.stateFile}`,
      'WantedBy=multi-user.target',
    ]) {
      assert.ok(unit.split('\n').includes(line), `${line} in\n${unit}`);
    }
    const verify = spawnSync('systemd-analyze', ['verify', p.unit], { encoding: 'utf8' });
    assert.is(verify.status, 0, verify.stderr);
    assert.not.match(verify.stderr, 'vdpa-k8s-provision', verify.stderr);
    assert.is(readlinkSync(p.wants), '../vdpa-k8s-provision.service');
    assert.is(statSync(p.executable).size, statSync(DP_BIN).size);
    assert.is(statSync(p.executable).mode & 0o777, 0o755);

    assert.equal(readFileSync(p.udevRules, 'utf8').split('\n').slice(1), [
      '# NetworkManager leaves alone the netdevs on the VFs and functions we provision and under our vDPA devices.',
      `SUBSYSTEM=="net", ACTION=="add|change|move", KERNELS=="${VFS.join('|')}", ENV{NM_UNMANAGED}="1"`,
      'SUBSYSTEM=="net", ACTION=="add|change|move", KERNELS=="vdpa:*", ENV{NM_UNMANAGED}="1"',
      '# The VF representors too; the uplink keeps its name when switchdev makes it again.',
      `SUBSYSTEM=="net", ACTION=="add|change|move", KERNELS=="${PF}", ATTR{phys_port_name}=="pf*vf*", ENV{NM_UNMANAGED}="1"`,
      `SUBSYSTEM=="net", ACTION=="add", KERNELS=="${PF}", ATTR{phys_port_name}=="p[0-9]*", NAME="enp101s0f0np0"`,
      '',
    ]);
    assert.equal(readFileSync(p.networkManager, 'utf8').split('\n').slice(1), ['[keyfile]', 'unmanaged-devices+=mac:02:00:00:00:65:00;mac:02:00:00:00:65:01', '']);
    // The recorded policy names the PF by address and leaves OVS out (the unit runs before ovsdb-server).
    const recorded = parsePolicyFile(JSON.parse(readFileSync(p.policy, 'utf8')));
    assert.equal(recorded.policies[0]!.pfs.map((pf) => [pf.select, pf.numVfs, pf.vdpa.map((g) => g.vfs)]), [[{ pciAddress: PF }, 4, [[0, 1], [2, 3]]]]);

    const state = JSON.parse(readFileSync(b.stateFile, 'utf8')) as { entries: { key: string }[] };
    assert.equal(state.entries.filter((e) => e.key.startsWith('file:')).map((e) => e.key.slice(5)), [p.executable, p.policy, p.udevRules, p.networkManager, p.unit, p.wants]);
    const before = statSync(p.unit).mtimeMs;
    assert.equal((await b.run('provision', FOUR_VFS, false, { installBoot: true })).changes, []);
    assert.is(statSync(p.unit).mtimeMs, before, 'a second run writes nothing');
  } finally {
    b.cleanup();
  }
});

test('the recorded policy, replayed on a node fresh from a reboot, brings it to the same state', async () => {
  const b = freshNode();
  const rebooted = freshNode();
  try {
    await b.run('provision', FOUR_VFS, false, { installBoot: true });
    const recorded = parsePolicyFile(JSON.parse(readFileSync(pathsOf(b).policy, 'utf8')));
    await rebooted.run('provision', recorded);
    const shape = (x: Bench) => [x.k.eswitch.get(`pci/${PF}`), x.k.hwTc.get('enp101s0f0np0'), x.k.fx.vfs.map((vf) => [vf.vdpa, vf.driver]), [...x.k.vdpaConfig]];
    assert.equal(shape(rebooted), shape(b));
    assert.equal((await rebooted.run('provision', recorded)).changes, []);
  } finally {
    b.cleanup();
    rebooted.cleanup();
  }
});

test('teardown removes every boot file with the rest; the node is as it was', async () => {
  const b = freshNode();
  try {
    const p = pathsOf(b);
    await b.run('provision', FOUR_VFS, false, { installBoot: true });
    await b.run('teardown', null);
    for (const path of Object.values(p)) assert.not.ok(existsSync(path) || isLink(path), `${path} is gone`);
    assert.not.ok(existsSync(b.stateFile));
    assert.is(b.k.eswitch.get(`pci/${PF}`), 'legacy');
    assert.equal(b.k.fx.vfs.flatMap((vf) => vf.vdpa), []);
  } finally {
    b.cleanup();
  }
});

test('refused: a boot file provision did not write; --install-boot without the executable. A stale recorded policy is a note', async () => {
  const b = freshNode();
  try {
    const p = pathsOf(b);
    mkdirSync(dirname(p.unit), { recursive: true });
    writeFileSync(p.unit, '[Unit]\nDescription=someone else\n');
    const problems = await b.run('provision', FOUR_VFS, false, { installBoot: true }).then(
      () => [],
      (err: unknown) => (err instanceof PlanError ? [...err.problems] : Promise.reject(err)),
    );
    assert.equal(problems, [`--install-boot: ${p.unit} exists and provision did not write it: move it away (teardown would not know what to put back)`]);
    assert.is(readFileSync(p.unit, 'utf8'), '[Unit]\nDescription=someone else\n');
    rmSync(p.unit);

    const script = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false }] }), null);
    try {
      await script.run('provision', FOUR_VFS, false, { installBoot: true });
      assert.unreachable('refused');
    } catch (err) {
      assert.match((err as Error).message, '--install-boot: this is not the vdpa-device-plugin executable');
    } finally {
      script.cleanup();
    }

    await b.run('provision', FOUR_VFS, false, { installBoot: true });
    const fewer = parsePolicyFile({ pfs: [{ pciAddress: PF, numVfs: 4, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-3', vdpaType: 'vhost' }] }] });
    const dry = await b.run('provision', fewer, true);
    assert.match(dry.out, `note: the boot unit replays another policy (${p.policy}): run with --install-boot to record this one`);
    // With --install-boot: the recorded policy is rewritten, and the NetworkManager snippet, now without MACs, removed.
    await b.run('provision', fewer, false, { installBoot: true });
    assert.not.ok(existsSync(p.networkManager));
    assert.equal(parsePolicyFile(JSON.parse(readFileSync(p.policy, 'utf8'))).policies[0]!.pfs[0]!.vdpa.map((g) => g.vdpaType), ['vhost']);
  } finally {
    b.cleanup();
  }
});

test('the CLI: --install-boot copies the single executable that runs it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-boot-cli-'));
  const fx = new FakeKernel({ pfs: [], plainFunction: { vdpa: 'none' } }).fx;
  try {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ mgmtDevs: [{ mgmtDev: 'pci/0000:00:05.0', vdpaType: 'vhost' }] }));
    const state = join(dir, 'state', 'provision.json');
    const r = spawnSync(DP_BIN, ['provision', '--policy', policy, '--state', state, '--sysfs-root', fx.sysfsRoot, '--dev-root', fx.devRoot, '--install-boot', '--dry-run'], {
      encoding: 'utf8',
      env: { ...process.env, VDPA_ETC_DIR: join(dir, 'etc') },
    });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, `[boot] copy ${DP_BIN} to ${join(dir, 'state', 'vdpa-device-plugin')}`);
    assert.match(r.stdout, `[boot] write ${join(dir, 'etc', 'systemd', 'system', 'vdpa-k8s-provision.service')}`);
  } finally {
    fx.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

test.run();

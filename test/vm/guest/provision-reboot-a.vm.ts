// Boot replay, part 1 of 2, against the guest's real kernel: a cluster's policy file applied to
// this node (--node; the other node's policy is skipped) with --install-boot, which writes the
// boot unit, its udev and NetworkManager rules, the recorded policy and a copy of the executable
// (onto the results share, under reboot.ts's BOOT_DIR). The guest then powers off without a
// teardown; provision-reboot-b.vm.ts boots a fresh kernel, runs the unit's ExecStart there, and
// tears down.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { assertFresh, assertProvisioned, BOOT, BOOT_DIR, bootFilesThere, changed, cli, CLUSTER, FN, HANDLE, newNetdevsim, NODE, POLICY, STATE } from './reboot.js';

const provision = (...more: string[]) => cli('provision', '--policy', POLICY, '--state', STATE, '--node', NODE, '--install-boot', ...more);

test('a fresh node; the dry-run says which policies apply here and lists the boot files', () => {
  rmSync(BOOT_DIR, { recursive: true, force: true });
  mkdirSync(dirname(STATE), { recursive: true });
  writeFileSync(POLICY, JSON.stringify(CLUSTER));
  newNetdevsim();
  assertFresh();
  const r = provision('--dry-run');
  assert.is(r.code, 0, JSON.stringify(r.logs));
  const lines = r.stdout.split('\n');
  assert.equal(lines.slice(0, 3), [`node ${NODE}: 1 of 2 policies apply`, `  + testbed (priority 10): nodeName ${NODE}`, '  - elsewhere: nodeName is another-node']);
  for (const want of [`[boot] copy `, `[boot] write ${BOOT.unit}`, `[boot] write ${BOOT.udevRules}`, `[boot] link ${BOOT.wants}`, `set sriov_numvfs of ${HANDLE} to 2`]) {
    assert.ok(lines.some((l) => l.includes(want)), `${want} in\n${r.stdout}`);
  }
  assert.equal(bootFilesThere(), []);
});

test('provision --install-boot: the node as the policy says, and the boot files in place', () => {
  const r = provision();
  console.log(`provision --install-boot (${changed(r).length} steps): ${r.ms} ms`);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assertProvisioned();
  assert.equal(bootFilesThere().sort(), Object.values(BOOT).sort());
  const unit = readFileSync(BOOT.unit, 'utf8');
  assert.match(unit, `ExecStart=${BOOT.executable} provision --policy ${BOOT.policy} --state ${STATE}\n`);
  const verify = spawnSync('systemd-analyze', ['verify', BOOT.unit], { encoding: 'utf8' });
  assert.is(verify.status, 0, verify.stderr);
  const rules = readFileSync(BOOT.udevRules, 'utf8');
  assert.match(rules, `KERNELS=="${FN}", ENV{NM_UNMANAGED}="1"`);
  assert.match(rules, `KERNELS=="netdevsim78", ATTR{phys_port_name}=="pf*vf*", ENV{NM_UNMANAGED}="1"`);
  assert.match(readFileSync(BOOT.networkManager, 'utf8'), 'unmanaged-devices+=mac:02:00:00:00:78:00;mac:02:00:00:00:78:01');
  // The recorded policy is this node's alone, its PF by devlink handle, without the other node's.
  assert.equal(JSON.parse(readFileSync(BOOT.policy, 'utf8')).pfs, [{ devlink: HANDLE, numVfs: 2, eSwitchMode: 'switchdev' }]);
  // The guest now powers off without a teardown: the next one boots as after a reboot.
});

test.run();

// Boot replay, part 2 of 2, in a guest booted after provision-reboot-a.vm.ts installed the boot
// unit (in the guest before it): on the fresh kernel nothing is provisioned; the unit's ExecStart,
// run as systemd would, brings the node to the recorded policy. Then drift: a simulator device
// made again by hand with another MAC is made again by provision with the policy's. Teardown
// leaves the node as it was booted and removes the unit, its link, the rules, the recorded policy
// and the executable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { addVdpa, delVdpa, link, virtioOf } from './testbed.js';
import { assertFresh, assertProvisioned, BOOT, bootFilesThere, changed, cli, newNetdevsim, NODE, NSIM_DIR, ourDevices, POLICY, runExecStart, SIM, SIM_MACS, STATE } from './reboot.js';

test.after(() => {
  if (existsSync(STATE)) cli('teardown', '--state', STATE);
  for (const name of ourDevices()) delVdpa(name);
  if (existsSync(NSIM_DIR)) writeFileSync('/sys/bus/netdevsim/del_device', NSIM_DIR.replace(/.*netdevsim/, ''));
});

test('a freshly booted kernel: nothing of the policy is there, the state file and boot files are', () => {
  // A test, not a hook: uvu reports a failed hook by no line at all.
  assert.ok(existsSync(BOOT.unit), `${BOOT.unit} is missing: provision-reboot-a.vm.ts runs first, in the guest before this one`);
  // The PF is there at boot on real hardware; netdevsim's device has to be made again.
  newNetdevsim();
  assertFresh();
  assert.ok(existsSync(STATE));
  assert.equal(bootFilesThere().sort(), Object.values(BOOT).sort());
});

test("the unit's ExecStart brings the node to the recorded policy", () => {
  const r = runExecStart();
  console.log(`boot replay (${changed(r).length} steps): ${r.ms} ms`);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assert.is(r.logs.find((l) => l.msg === 'provision: done')?.rounds, 2, 'and its second round found nothing left');
  assertProvisioned();
});

test('drift: a device made again by hand with another MAC is made again by provision, with the policy’s', () => {
  delVdpa(SIM[0]);
  addVdpa(SIM[0], 'vdpasim_net', '02:00:00:00:78:99');
  assert.is(link(virtioOf(SIM[0])?.netdev ?? '')?.address, '02:00:00:00:78:99');
  // The cluster's file gives this node what the recorded policy does: only the drifted device changes.
  const r = cli('provision', '--policy', POLICY, '--state', STATE, '--node', NODE);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assert.not.ok(r.logs.some((l) => /replays another policy/.test(l.msg)), 'the recorded policy is this node\'s');
  assert.equal(changed(r), [`recreate vDPA device ${SIM[0]} on vdpasim_net (mac ${SIM_MACS[0]}), bound to virtio_vdpa: it has mac 02:00:00:00:78:99, not ${SIM_MACS[0]}`]);
  assertProvisioned();
});

test('teardown: the node as it was booted, and the unit, link, rules, recorded policy and executable gone', () => {
  const r = cli('teardown', '--state', STATE);
  console.log(`teardown (${changed(r).length} steps): ${r.ms} ms`);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assertFresh();
  assert.equal(bootFilesThere(), []);
  assert.not.ok(existsSync(STATE), 'the state file is gone');
});

test.run();

// The built executable's provision/teardown subcommands as an operator meets them: --help, bad
// flags (exit 2), a bad policy (exit 1, the field named, nothing touched), the example policy
// that ships with the repo parses, and a dry-run against a fixture node prints the plan.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicyFile } from '../../deviceplugin/provision/policy.js';
import { DP_BIN, ROOT } from '../support/paths.js';
import { buildFixture } from '../support/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-provision-cli-'));
const state = join(dir, 'state.json');

function run(...args: string[]) {
  const r = spawnSync(DP_BIN, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('--help describes each subcommand and its flags', () => {
  for (const cmd of ['provision', 'teardown']) {
    const r = run(cmd, '--help');
    assert.is(r.code, 0);
    assert.match(r.stdout, `Usage: vdpa-device-plugin ${cmd}`);
    assert.match(r.stdout, '--dry-run');
    assert.match(r.stdout, '--state FILE');
  }
  const help = run('provision', '--help').stdout;
  for (const flag of ['--policy FILE', '--node NAME', '--node-labels FILE', '--install-boot']) assert.match(help, flag);
  // The merge rule, as README states it.
  assert.match(help, 'each setting comes from\n  the highest priority that sets it');
  assert.match(help, 'two policies of the same priority that disagree are a conflict, refused');
  const teardown = run('teardown', '--help').stdout;
  for (const flag of ['--policy', '--node', '--install-boot']) assert.not.match(teardown, flag);
});

test('bad flags exit 2 with the reason', () => {
  assert.equal([run('provision').code, run('provision').stderr.trim()], [2, 'vdpa-device-plugin provision: --policy FILE is required']);
  const r = run('teardown', '--policy', 'x.json');
  assert.is(r.code, 2);
  assert.match(r.stderr, 'unknown argument "--policy"');
  assert.match(run('provision', '--policy', 'p.json', '--log-level', 'loud').stderr, '--log-level: must be one of debug, info, warn, error');
});

test('a bad policy exits 1 naming the field; a missing one names the file; nothing is written', () => {
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ pfs: [{ pciAddress: '0000:65:00.0', numVfs: 4, vdpa: [{ vfs: '0-3', vdpaType: 'virtio' }] }] }));
  const r = run('provision', '--policy', file, '--state', state);
  assert.is(r.code, 1);
  assert.match(String(r.lines[0]?.msg), 'pfs[0].vdpa[0].vdpaType: needs pfs[0].eSwitchMode "switchdev"');
  const missing = run('provision', '--policy', join(dir, 'nosuch.json'), '--state', state);
  assert.is(missing.code, 1);
  assert.match(String(missing.lines[0]?.msg), 'nosuch.json');
  assert.not.ok(existsSync(state));
});

test('the example policy parses (test/provision/nodes.test.ts plans it for two nodes)', () => {
  const file = parsePolicyFile(JSON.parse(readFileSync(join(ROOT, 'hack', 'provision', 'policy.example.json'), 'utf8')));
  assert.equal(
    file.policies.map((p) => `${p.name} ${p.priority}: ${p.pfs.map((pf) => pf.vdpa.map((g) => `${g.vdpaType}:${g.vfs.join(',')}`).join(' ')).join('; ')}`),
    ['connectx 99: ', 'cx6dx-nodes 20: virtio:0,1 vhost:2,3', 'node-b 10: vhost:0,1,2'],
  );
});

test('--dry-run on a fixture node prints the plan and changes nothing', () => {
  const fx = buildFixture({ pfs: [], plainFunction: { vdpa: 'none' } });
  try {
    const file = join(dir, 'fn.json');
    writeFileSync(file, JSON.stringify({ mgmtDevs: [{ mgmtDev: 'pci/0000:00:05.0', vdpaType: 'vhost' }] }));
    const before = readFileSync(join(fx.sysfsRoot, 'bus', 'pci', 'devices', '0000:00:05.0', 'driver_override'), 'utf8');
    const r = run('provision', '--policy', file, '--state', state, '--sysfs-root', fx.sysfsRoot, '--dev-root', fx.devRoot, '--dry-run');
    assert.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^provision plan: \d steps?$/);
    assert.ok(lines.some((l) => l.includes('bind PCI function 0000:00:05.0 to vp-vdpa')), r.stdout);
    assert.ok(lines.some((l) => l.includes('create vDPA device vdpa:0000:00:05.0 on pci/0000:00:05.0, bound to vhost_vdpa')), r.stdout);
    assert.is(readFileSync(join(fx.sysfsRoot, 'bus', 'pci', 'devices', '0000:00:05.0', 'driver_override'), 'utf8'), before);
    assert.not.ok(existsSync(state));
  } finally {
    fx.cleanup();
  }
});

test.run();

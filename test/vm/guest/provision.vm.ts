// The built `vdpa-device-plugin provision|teardown` against the guest's real kernel: a netdevsim
// eswitch (numVfs + switchdev + hw-tc-offload, by devlink handle: netdevsim is not PCI), two
// virtio-net functions moved to vp_vdpa with a vDPA device each (virtio, vhost), two simulator
// devices, OVS hw-offload with a real ovs-vswitchd restart. A second run changes nothing, a
// half-done node is completed, a driver change rebinds, the device plugin that was already running
// picks the pools up, an allocated device stops teardown, and teardown leaves nothing behind but
// what was there before. Run times are printed (TCG guest: slow, but the same for every run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeletStandIn, type ConnectedPlugin } from '../../support/kubelet.js';
import { DP_BIN } from '../../support/paths.js';
import { PluginProcess, Workspace, type LogLine } from '../../deviceplugin/harness.js';
import { addVdpa, delVdpa, link, OVS_RUNDIR, ovsVsctl, pciDriver, sh, startOvs, toVirtioPci, vdpaDriver, vhostOf, virtioNetFunctions, virtioOf } from './testbed.js';

const WAIT_MS = 90_000;
const NSIM = 77;
const HANDLE = `netdevsim/netdevsim${NSIM}`;
const NSIM_DIR = `/sys/bus/netdevsim/devices/netdevsim${NSIM}`;
const [fnA, fnB] = virtioNetFunctions() as [string, string];
const SIM = ['vdpa:vdpasim_net:0', 'vdpa:vdpasim_net:1'] as const;
const FOREIGN = 'pvforeign0';
const VIRTIO = 'example.com/prov_virtio';
const VHOST = 'example.com/prov_vhost';

const ws = new Workspace();
const stateFile = join(ws.dir, 'provision.json');
const policyFile = join(ws.dir, 'policy.json');
const restartScript = join(ws.dir, 'restart-ovs.sh');
const vswitchdPid = () => readFileSync(join(OVS_RUNDIR, 'ovs-vswitchd.pid'), 'utf8').trim();
let ovs: { stop(): void };
let kubelet: KubeletStandIn;
let plugin: PluginProcess;
let virtioPool: ConnectedPlugin;
let vhostPool: ConnectedPlugin;

function policy(fnAType: 'virtio' | 'vhost') {
  return {
    pfs: [{ devlink: HANDLE, numVfs: 4, eSwitchMode: 'switchdev', hwTcOffload: true }],
    mgmtDevs: [
      { mgmtDev: `pci/${fnA}`, vdpaType: fnAType, macBase: '02:00:00:00:77:00' },
      { mgmtDev: `pci/${fnB}`, vdpaType: 'vhost' },
      { mgmtDev: 'vdpasim_net', count: 2, vdpaType: 'virtio', macBase: '02:00:00:00:77:10', maxVqp: 2 },
    ],
    ovs: { hwOffload: true, restartCommand: ['sh', restartScript] },
  };
}

interface Run {
  code: number | null;
  stdout: string;
  logs: LogLine[];
  ms: number;
}

function cli(cmd: 'provision' | 'teardown', ...args: string[]): Run {
  const started = performance.now();
  const r = spawnSync(DP_BIN, [cmd, '--state', stateFile, '--devinfo-dir', ws.devinfoDir, ...(cmd === 'provision' ? ['--policy', policyFile] : []), ...args], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  const logs = r.stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return { level: 'raw', msg: l };
      }
    });
  return { code: r.status, stdout: r.stdout, logs, ms: Math.round(performance.now() - started) };
}

const done = (r: Run) => r.logs.find((l) => /^(provision|teardown): (done|nothing to do)$/.test(l.msg));
const changed = (r: Run) => r.logs.filter((l) => l.msg === 'step done').map((l) => String(l.action));
const ids = (devices: readonly { ID: string }[]) => devices.map((d) => d.ID);
const attr = (p: string) => readFileSync(p, 'utf8').trim();
const hwTc = (dev: string) => /^hw-tc-offload:\s*(on|off)/m.exec(sh('ethtool', ['-k', dev]))?.[1];
const ourDevices = () => readdirSync('/sys/bus/vdpa/devices').filter((n) => n.startsWith('vdpa:')).sort();
const uplink = () => readdirSync(join(NSIM_DIR, 'net')).find((n) => /^p\d+$/.test(attr(join(NSIM_DIR, 'net', n, 'phys_port_name'))))!;
const timings: string[] = [];

test.before(async () => {
  writeFileSync(NSIM_DIR.replace(/devices\/.*/, 'new_device'), `${NSIM} 1`);
  addVdpa(FOREIGN, 'vdpasim_net', '02:00:00:00:77:99');
  ovs = startOvs();
  ovsVsctl('remove', 'Open_vSwitch', '.', 'other_config', 'hw-offload');
  writeFileSync(
    restartScript,
    `ovs-appctl -t ovs-vswitchd exit\novs-vswitchd --pidfile=${OVS_RUNDIR}/ovs-vswitchd.pid --log-file=${OVS_RUNDIR}/ovs-vswitchd.log --detach\n`,
  );
  writeFileSync(policyFile, JSON.stringify(policy('virtio')));
  ws.writeConfig({
    resourceList: [
      { resourceName: 'prov_virtio', resourcePrefix: 'example.com', selectors: { vendors: ['1af4'], vdpaType: 'virtio' } },
      { resourceName: 'prov_vhost', resourcePrefix: 'example.com', selectors: { vendors: ['1af4'], vdpaType: 'vhost' } },
    ],
  });
  kubelet = await KubeletStandIn.start();
  plugin = PluginProcess.start({ ws, sysfsRoot: '/sys', devRoot: '/dev', kubeletDir: kubelet.dir });
  virtioPool = await kubelet.waitForPlugin(VIRTIO, 1, WAIT_MS);
  vhostPool = await kubelet.waitForPlugin(VHOST, 1, WAIT_MS);
});

test.after(async () => {
  await plugin?.stop();
  await kubelet?.stop();
  if (existsSync(stateFile)) cli('teardown');
  for (const name of [...ourDevices(), FOREIGN]) delVdpa(name);
  for (const fn of [fnA, fnB]) if (pciDriver(fn) !== 'virtio-pci') toVirtioPci(fn);
  if (existsSync(NSIM_DIR)) writeFileSync('/sys/bus/netdevsim/del_device', String(NSIM));
  ovs?.stop();
  ws.cleanup();
  console.log(`\nprovisioning timings (TCG guest):\n  ${timings.join('\n  ')}`);
});

test('before: the functions are on virtio-pci, the eswitch legacy without VFs, no pool holds them', async () => {
  assert.is(pciDriver(fnA), 'virtio-pci');
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '0');
  assert.match(sh('devlink', ['dev', 'eswitch', 'show', HANDLE]), 'mode legacy');
  const all = [...ids(virtioPool.stream.latest ?? []), ...ids(vhostPool.stream.latest ?? [])];
  assert.not.ok(all.includes(fnA) || all.includes(fnB), all.join(', '));
});

test('--dry-run prints the plan and changes nothing', () => {
  const r = cli('provision', '--dry-run');
  assert.is(r.code, 0, JSON.stringify(r.logs));
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^provision plan: \d+ steps$/);
  for (const want of [
    `set sriov_numvfs of ${HANDLE} to 4`,
    `put the eswitch of ${HANDLE} in switchdev mode`,
    `bind PCI function ${fnA} to vp-vdpa`,
    `create vDPA device vdpa:${fnB} on pci/${fnB}, bound to vhost_vdpa`,
    `create vDPA device ${SIM[1]} on vdpasim_net (mac 02:00:00:00:77:11, max_vqp 2), bound to virtio_vdpa`,
    'set OVS other_config:hw-offload=true and run sh',
  ]) {
    assert.ok(lines.some((l) => l.includes(want)), `${want} in\n${r.stdout}`);
  }
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '0');
  assert.equal(ourDevices(), []);
  assert.is(pciDriver(fnA), 'virtio-pci');
  assert.not.ok(existsSync(stateFile));
});

test('provision: VFs, switchdev, TC offload, functions on vp-vdpa, vDPA devices on their drivers, OVS offload restarted', () => {
  const before = vswitchdPid();
  const r = cli('provision');
  timings.push(`provision (${changed(r).length} steps): ${r.ms} ms`);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  // netdevsim: VFs with representors in switchdev mode.
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '4');
  assert.match(sh('devlink', ['dev', 'eswitch', 'show', HANDLE]), 'mode switchdev');
  const ports = JSON.parse(sh('devlink', ['-j', 'port', 'show'])) as { port: Record<string, { flavour: string; vfnum?: number }> };
  assert.equal(
    Object.entries(ports.port).filter(([p, v]) => p.startsWith(`${HANDLE}/`) && v.flavour === 'pcivf').map(([, v]) => v.vfnum).sort(),
    [0, 1, 2, 3],
  );
  assert.is(hwTc(uplink()), 'on');
  // vp_vdpa functions: vp_vdpa refuses mac, so fnA keeps qemu's MAC.
  assert.is(pciDriver(fnA), 'vp-vdpa');
  assert.is(pciDriver(fnB), 'vp-vdpa');
  assert.is(vdpaDriver(`vdpa:${fnA}`), 'virtio_vdpa');
  const virtio = virtioOf(`vdpa:${fnA}`);
  assert.ok(virtio?.netdev, 'virtio_net made the netdev');
  assert.is(link(virtio.netdev)?.address, `52:54:00:12:34:${fnA.slice(8, 10)}`);
  assert.is(vdpaDriver(`vdpa:${fnB}`), 'vhost_vdpa');
  const vhost = vhostOf(`vdpa:${fnB}`)!;
  assert.is(vhost.rdev, vhost.dev, `${vhost.path} is the char device`);
  // The simulator takes mac but not max_vqp.
  assert.equal(SIM.map((n) => link(virtioOf(n)!.netdev!)?.address), ['02:00:00:00:77:10', '02:00:00:00:77:11']);
  const dropped = r.logs.filter((l) => l.level === 'warn' && Array.isArray(l.dropped)).map((l) => `${String(l.device)}:${String(l.dropped)}`);
  assert.equal(dropped.sort(), [`vdpa:${fnA}:mac`, `${SIM[0]}:max_vqp`, `${SIM[1]}:max_vqp`].sort());
  // OVS: the key, and a restarted ovs-vswitchd that turned the flow API on.
  assert.is(ovsVsctl('get', 'Open_vSwitch', '.', 'other_config:hw-offload'), '"true"');
  assert.is.not(vswitchdPid(), before, 'ovs-vswitchd was restarted');
  assert.match(readFileSync(join(OVS_RUNDIR, 'ovs-vswitchd.log'), 'utf8'), 'Flow API Enabled');
  assert.equal(done(r)?.rounds, 2, 'round 2 found nothing left');
});

test('the device plugin that was already running picks the new pools up', async () => {
  try {
    await virtioPool.stream.waitFor((d) => d.some((x) => x.ID === fnA && x.health === 'Healthy'), WAIT_MS, `${fnA} in ${VIRTIO}`);
    await vhostPool.stream.waitFor((d) => d.some((x) => x.ID === fnB && x.health === 'Healthy'), WAIT_MS, `${fnB} in ${VHOST}`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nplugin log tail:\n${plugin.logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
  }
});

test('a second run changes nothing', () => {
  const stamp = statSync(stateFile).mtimeMs;
  const r = cli('provision');
  timings.push(`provision, nothing to do: ${r.ms} ms`);
  assert.is(r.code, 0);
  assert.is(done(r)?.msg, 'provision: nothing to do');
  assert.equal(changed(r), []);
  assert.is(statSync(stateFile).mtimeMs, stamp, 'the state file was not rewritten');
});

test('a half-done node (device unbound, device deleted, function off its driver) is completed by the next run', () => {
  sh('sh', ['-c', `echo ${SIM[0]} > /sys/bus/vdpa/devices/${SIM[0]}/driver/unbind`]);
  delVdpa(SIM[1]);
  delVdpa(`vdpa:${fnB}`);
  writeFileSync(`/sys/bus/pci/devices/${fnB}/driver/unbind`, fnB);
  const r = cli('provision');
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assert.equal(changed(r), [
    `bind PCI function ${fnB} to vp-vdpa`,
    `create vDPA device vdpa:${fnB} on pci/${fnB}, bound to vhost_vdpa`,
    `bind vDPA device ${SIM[0]} to virtio_vdpa`,
    `create vDPA device ${SIM[1]} on vdpasim_net (mac 02:00:00:00:77:11, max_vqp 2), bound to virtio_vdpa`,
  ]);
  assert.equal([vdpaDriver(SIM[0]), vdpaDriver(SIM[1]), vdpaDriver(`vdpa:${fnB}`)], ['virtio_vdpa', 'virtio_vdpa', 'vhost_vdpa']);
  assert.equal(done(r)?.rounds, 2, 'and the run checked that nothing was left');
});

test('a policy that changes the vDPA type rebinds the device; the plugin moves it to the other pool', async () => {
  writeFileSync(policyFile, JSON.stringify(policy('vhost')));
  const r = cli('provision');
  assert.is(r.code, 0);
  assert.equal(changed(r), [`bind vDPA device vdpa:${fnA} to vhost_vdpa`]);
  assert.ok(vhostOf(`vdpa:${fnA}`), 'a vhost-vdpa char device');
  await vhostPool.stream.waitFor((d) => d.some((x) => x.ID === fnA && x.health === 'Healthy'), WAIT_MS, `${fnA} in ${VHOST}`);
  await virtioPool.stream.waitFor((d) => !d.some((x) => x.ID === fnA), WAIT_MS, `${fnA} out of ${VIRTIO}`);
});

test('teardown is refused while a pod holds a device it would remove, changing nothing', async () => {
  await vhostPool.client.allocate([[fnB]]);
  const file = join(ws.devinfoDir, 'dp', `${VHOST.replace('/', '-')}-${fnB}-device.json`);
  assert.ok(existsSync(file), 'the plugin wrote the DeviceInfo file');
  const r = cli('teardown');
  assert.is(r.code, 1);
  const refusal = r.logs.find((l) => l.msg === 'teardown refused; nothing was changed');
  assert.match(JSON.stringify(refusal?.problems), `${fnB} (${file})`);
  assert.equal(changed(r), []);
  assert.is(vdpaDriver(`vdpa:${fnB}`), 'vhost_vdpa');
  rmSync(file);
});

test('teardown leaves nothing behind but what was there before', async () => {
  const r = cli('teardown');
  timings.push(`teardown (${changed(r).length} steps): ${r.ms} ms`);
  assert.is(r.code, 0, JSON.stringify(r.logs, null, 1));
  assert.equal(ourDevices(), []);
  assert.ok(existsSync(`/sys/bus/vdpa/devices/${FOREIGN}`), 'the simulator device we did not create stays');
  for (const fn of [fnA, fnB]) {
    assert.is(pciDriver(fn), 'virtio-pci');
    assert.is(attr(`/sys/bus/pci/devices/${fn}/driver_override`), '(null)');
  }
  assert.is(attr(join(NSIM_DIR, 'sriov_numvfs')), '0');
  assert.match(sh('devlink', ['dev', 'eswitch', 'show', HANDLE]), 'mode legacy');
  assert.throws(() => ovsVsctl('get', 'Open_vSwitch', '.', 'other_config:hw-offload'), /no key/);
  assert.not.ok(existsSync(stateFile), 'the state file is gone');
  assert.is(done(cli('teardown'))?.msg, 'teardown: nothing to do');
  // The plugin keeps a member that stops being usable, as Unhealthy, until it restarts.
  const gone = (d: readonly { ID: string; health: string }[]) => !d.some((x) => (x.ID === fnA || x.ID === fnB) && x.health === 'Healthy');
  try {
    await virtioPool.stream.waitFor(gone, WAIT_MS, 'no healthy vp_vdpa function in the virtio pool');
    await vhostPool.stream.waitFor(gone, WAIT_MS, 'no healthy vp_vdpa function in the vhost pool');
  } catch (err) {
    throw new Error(`${(err as Error).message}\nplugin log tail:\n${plugin.logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
  }
});

test.run();

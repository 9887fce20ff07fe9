/**
 * The end-to-end flow on the simulated node (hack/sim/up.sh), shared by `npm run demo` and
 * test/e2e: the built device plugin against the fixture NIC → the kubelet stand-in registers it,
 * follows ListAndWatch and allocates VFs to pods → the Multus stand-in runs the built vdpa-cni,
 * which creates each pod's Logical_Switch_Port itself (ovn.mode "managed": no OVN controller or
 * stand-in creates logical ports) → pods ping through OVN →
 * a vhost pod → a kubelet restart → pods deleted, node back as it was. Every check is an
 * assertion: the flow throws at the first one that fails, after cleaning up what it created.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { dpDeviceInfoPath, readDeviceInfo } from '../../host/deviceinfo.js';
import type { ContainerAllocateResponse } from '../../proto/gen/deviceplugin_v1beta1.js';
import { addresses, link } from '../../test/support/cni.js';
import { KubeletStandIn, type ConnectedPlugin, type PodRef } from '../../test/support/kubelet.js';
import { MultusStandIn, parseNad, type Attachment, type NetworkAttachmentDefinition } from '../../test/support/multus.js';
import { BRIDGE, ovsInterface, ovsPort, ping, run } from '../../test/support/ovn.js';
import { CNI_BIN, DP_BIN } from '../../test/support/paths.js';
import { readSimNode, type SimNode, type SimVf } from '../sim/node.js';
import { lspName, NAMESPACE, PODS, podAddress, VHOST_NAD, VHOST_RESOURCE, VIRTIO_NAD, VIRTIO_RESOURCE, type DemoPod } from './networks.js';

/** Where the flow tells what it does; the demo prints it, the test keeps it quiet. */
export interface Narrator {
  /** A new step: a title and, in plain words, what happens in it. */
  step(title: string, about: string): void;
  say(line: string): void;
}

export interface PingResult {
  readonly from: string;
  readonly to: string;
  readonly loss: string;
  readonly avgMs: number | null;
}

export interface FlowSummary {
  readonly pings: readonly PingResult[];
  /** ADD and DEL wall times of the CNI per pod, in ms. */
  readonly add: Readonly<Record<string, number>>;
  readonly del: Readonly<Record<string, number>>;
  /** Devices in use and free per resource while all pods ran, and at the end. */
  readonly peak: Readonly<Record<string, { inUse: number; free: number }>>;
  readonly end: Readonly<Record<string, { inUse: number; free: number }>>;
  /** From the kubelet's restart until every pool was registered again and listed its devices. */
  readonly reregisterMs: number;
  readonly totalMs: number;
}

const RESOURCES = [VIRTIO_RESOURCE, VHOST_RESOURCE];
const NADS: NetworkAttachmentDefinition[] = [parseNad(VIRTIO_NAD), parseNad(VHOST_NAD)];

/** A running pod as the flow keeps it. */
interface RunningPod {
  readonly spec: DemoPod;
  readonly sandbox: { namespace: string; name: string; uid: string; containerId: string; netns: string };
  readonly netnsName: string;
  readonly lsp: string;
  readonly ip: string;
  readonly cidr: string;
  readonly mac: string;
  readonly vf: SimVf;
  readonly allocation: ContainerAllocateResponse;
  attachments: Attachment[];
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/**
 * The kubelet's device manager, as far as pods need it: a stand-in that serves Registration and
 * follows each plugin's ListAndWatch, plus the kubelet's own bookkeeping of which device went to
 * which pod (kept in its checkpoint, so it survives a kubelet restart), which it serves to the
 * plugin as the pod resources API.
 */
class Kubelet {
  private registrations = 1;

  private constructor(readonly standIn: KubeletStandIn) {}

  static async start(dir: string): Promise<Kubelet> {
    return new Kubelet(await KubeletStandIn.start({ dir }));
  }

  /** Waits for the current registration of every resource and its first device list. */
  async plugins(): Promise<ConnectedPlugin[]> {
    const plugins = await Promise.all(RESOURCES.map((r) => this.standIn.waitForPlugin(r, this.registrations, 15_000)));
    await Promise.all(plugins.map((p) => p.stream.waitFor((d) => d.length > 0, 10_000, `devices of ${p.resource}`)));
    return plugins;
  }

  plugin(resource: string): ConnectedPlugin {
    const p = this.standIn.plugin(resource);
    assert.ok(p, `the kubelet has no plugin for ${resource}`);
    return p;
  }

  healthy(resource: string): string[] {
    return (this.plugin(resource).stream.latest ?? []).filter((d) => d.health === 'Healthy').map((d) => d.ID);
  }

  free(resource: string): string[] {
    return this.healthy(resource).filter((id) => this.standIn.holders(id).length === 0);
  }

  usage(): Record<string, { inUse: number; free: number }> {
    return Object.fromEntries(RESOURCES.map((r) => [r, { inUse: this.healthy(r).length - this.free(r).length, free: this.free(r).length }]));
  }

  /** What the kubelet does for a container asking for one device: preferred allocation, then Allocate. */
  async admit(pod: PodRef, resource: string): Promise<{ id: string; response: ContainerAllocateResponse }> {
    const p = this.plugin(resource);
    const available = this.free(resource);
    assert.ok(available.length > 0, `no free device of ${resource}`);
    let id = available[0]!;
    if (p.options.getPreferredAllocationAvailable) {
      const pref = await p.client.preferred([{ available, size: 1 }]);
      id = pref.containerResponses[0]?.deviceIDs[0] ?? id;
    }
    const resp = await p.client.allocate([[id]], pod);
    const response = resp.containerResponses[0];
    assert.ok(response, `Allocate of ${id} answered no container response`);
    return { id, response };
  }

  /** The pod is gone: its devices are free in the kubelet's book. */
  release(pod: PodRef): void {
    this.standIn.deletePod(pod.namespace, pod.name);
  }

  /** Deletes every socket in the directory and serves kubelet.sock anew; plugins must register again. */
  async restart(): Promise<void> {
    await this.standIn.restart();
    this.registrations++;
  }

  stop(): Promise<void> {
    return this.standIn.stop();
  }
}

/** The built device plugin as the DaemonSet runs it, with the simulated node's paths. */
class DevicePlugin {
  private constructor(
    private readonly proc: ChildProcess,
    readonly logFile: string,
    private readonly pidFile: string,
    private readonly exited: Promise<number | null>,
  ) {}

  static start(node: SimNode): DevicePlugin {
    const logFile = join(node.dir, 'device-plugin.log');
    const log = createWriteStream(logFile);
    const proc = spawn(
      DP_BIN,
      [
        '--config', node.configPath,
        '--kubelet-dir', node.kubeletDir,
        '--registration', 'kubelet',
        '--devinfo-dir', node.devinfoDir,
        '--sysfs-root', node.sysfsRoot,
        '--dev-root', node.devRoot,
        '--metrics-addr', '',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr!.pipe(log);
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const pidFile = join(node.dir, 'plugin.pid');
    writeFileSync(pidFile, `${proc.pid}\n`);
    return new DevicePlugin(proc, logFile, pidFile, exited);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  logTail(lines = 20): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n') : '';
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const code = await this.exited;
    rmSync(this.pidFile, { force: true });
    return code;
  }
}

/** One flow at a time on the node: the demo and the e2e test share it. */
function claimNode(node: SimNode): () => void {
  const file = join(node.dir, 'flow.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      closeSync(openSync(file, 'wx'));
      writeFileSync(file, `${process.pid}\n`);
      return () => rmSync(file, { force: true });
    } catch {
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid && existsSync(`/proc/${pid}`)) throw new Error(`another demo or e2e run (pid ${pid}) is using the simulated node`);
      rmSync(file, { force: true });
    }
  }
  throw new Error(`cannot claim ${file}`);
}

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

function parsePing(output: string): { loss: string; avgMs: number | null } {
  const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(output)?.[1] ?? '?';
  const avg = /= [\d.]+\/([\d.]+)\//.exec(output)?.[1];
  return { loss: `${loss}%`, avgMs: avg ? Number(avg) : null };
}

/** external_ids of the Interface rows on br-int that carry an iface-id of one of `lsps`. */
async function podPorts(lsps: readonly string[]): Promise<string[]> {
  const out = await must('ovs-vsctl', ['--format=json', '--columns=name,external_ids', 'list', 'Interface']);
  const rows = (JSON.parse(out) as { data: [string, ['map', [string, string][]]][] }).data;
  return rows.filter(([, ids]) => ids[1].some(([k, v]) => k === 'iface-id' && lsps.includes(v))).map(([name]) => name);
}

export async function runFlow(say: Narrator): Promise<FlowSummary> {
  const t0 = performance.now();
  const node = readSimNode();
  const release = claimNode(node);
  const leftovers = (await must('ip', ['netns', 'list'])).split('\n').filter((l) => l.startsWith('vdpa-sim-'));
  if (leftovers.length) {
    release();
    throw new Error(`pods of an interrupted run are still there (${leftovers.map((l) => l.split(' ')[0]).join(', ')}): run hack/sim/down.sh, then try again`);
  }
  const env = {
    VDPA_SYSFS_ROOT: node.sysfsRoot,
    VDPA_DEV_ROOT: node.devRoot,
    VDPA_DEVINFO_DIR: node.devinfoDir,
    VDPA_STATE_DIR: node.cniStateDir,
  };
  const multus = new MultusStandIn({ cniPath: [join(CNI_BIN, '..'), '/usr/lib/cni'], devinfoDir: node.devinfoDir, env });
  const pods: RunningPod[] = [];
  const add: Record<string, number> = {};
  const del: Record<string, number> = {};
  let kubelet: Kubelet | undefined;
  let plugin: DevicePlugin | undefined;

  /** Creates the sandbox, the LSP and runs Multus; the pod is tracked before the first host change. */
  async function startPod(i: number): Promise<RunningPod> {
    const spec = PODS[i]!;
    const addr = podAddress(node.subnet, i);
    const uid = randomUUID();
    const { id, response } = await kubelet!.admit({ namespace: NAMESPACE, name: spec.name }, spec.resource);
    const vf = node.vfs.find((v) => v.pci === id);
    assert.ok(vf, `the kubelet allocated ${id}, which is not a VF of the node`);
    const netnsName = `vdpa-sim-${spec.name}`;
    const pod: RunningPod = {
      spec,
      sandbox: { namespace: NAMESPACE, name: spec.name, uid, containerId: randomBytes(32).toString('hex'), netns: `/run/netns/${netnsName}` },
      netnsName,
      lsp: lspName(spec.network, spec.name),
      ...addr,
      vf,
      allocation: response,
      attachments: [],
    };
    pods.push(pod);
    say.say(`kubelet: ${spec.name} asks for 1 × ${spec.resource}; the device plugin allocates VF ${id} (${vf.vdpa}, ${vf.driver})`);
    await must('ip', ['netns', 'add', netnsName]);
    await must('ip', ['-n', netnsName, 'link', 'set', 'lo', 'up']);
    pod.attachments = await multus.add(
      pod.sandbox,
      [{ name: spec.network, mac: addr.mac, ips: [addr.cidr] }],
      NADS,
      new Map([[spec.resource, [id]]]),
    );
    const a = pod.attachments[0]!;
    add[spec.name] = a.addMs;
    say.say(`Multus: ${spec.network} with deviceID ${id} → vdpa-cni ADD took ${fmt(a.addMs)}`);
    return pod;
  }

  async function checkVirtioPod(pod: RunningPod): Promise<void> {
    const a = pod.attachments[0]!;
    const inPod = link(pod.netnsName, 'net1');
    assert.ok(inPod, `${pod.spec.name}: no net1 in its netns`);
    assert.equal(inPod.mac, pod.mac, `${pod.spec.name}: MAC of net1`);
    assert.ok(inPod.up, `${pod.spec.name}: net1 is up`);
    assert.deepEqual(addresses(pod.netnsName, 'net1'), [pod.cidr], `${pod.spec.name}: addresses of net1`);
    assert.equal(link(null, pod.vf.netdev), undefined, `${pod.vf.netdev} left the host`);
    say.say(`${pod.spec.name}: net1 ${inPod.mac} ${pod.cidr} (was ${pod.vf.netdev} in the host)`);
    const iface = await ovsInterface(pod.vf.representor);
    assert.ok(iface, `${pod.vf.representor} has an OVS Interface row`);
    assert.deepEqual(
      {
        'iface-id': iface.externalIds['iface-id'],
        'iface-id-ver': iface.externalIds['iface-id-ver'],
        attached_mac: iface.externalIds.attached_mac,
        sandbox: iface.externalIds.sandbox,
        'pod-if-name': iface.externalIds['pod-if-name'],
        'vf-netdev-name': iface.externalIds['vf-netdev-name'],
        'ovn-installed': iface.externalIds['ovn-installed'],
      },
      {
        'iface-id': pod.lsp,
        'iface-id-ver': pod.sandbox.uid,
        attached_mac: pod.mac,
        sandbox: pod.sandbox.containerId,
        'pod-if-name': 'net1',
        'vf-netdev-name': pod.vf.netdev,
        'ovn-installed': 'true',
      },
    );
    const port = await ovsPort(pod.vf.representor);
    assert.equal(port?.bridge, BRIDGE, `${pod.vf.representor} is a port of ${BRIDGE}`);
    assert.equal(port?.otherConfig.transient, 'true', `${pod.vf.representor}: other_config:transient`);
    say.say(`${pod.spec.name}: representor ${pod.vf.representor} on ${BRIDGE}, iface-id=${pod.lsp}, ovn-installed=true`);
    const lsp = (await must('ovn-nbctl', ['--bare', '--columns=addresses,external_ids', 'find', 'Logical_Switch_Port', `name="${pod.lsp}"`])).trim();
    assert.match(lsp, new RegExp(`^${pod.mac} ${pod.ip}\n.*vdpa-k8s-owner=vdpa-cni`, 's'), `${pod.lsp}: created by vdpa-cni with the pod's addresses`);
    say.say(`${pod.spec.name}: vdpa-cni created Logical_Switch_Port ${pod.lsp} on ${node.logicalSwitch} with "${pod.mac} ${pod.ip}"`);
    checkStatus(pod, a);
  }

  /** The network-status entry Multus publishes, with the device plugin's DeviceInfo as device-info. */
  function checkStatus(pod: RunningPod, a: Attachment): void {
    const dp = readDeviceInfo(dpDeviceInfoPath(node.devinfoDir, pod.spec.resource, pod.vf.pci));
    assert.ok(dp, `the device plugin wrote a DeviceInfo file for ${pod.vf.pci}`);
    assert.deepEqual(dp.vdpa, {
      'parent-device': pod.vf.vdpa,
      driver: pod.vf.driver,
      path: pod.vf.driver === 'vhost' ? pod.vf.vhost! : join(node.sysfsRoot, 'bus', 'virtio', 'devices', dp.vdpa?.path.split('/').at(-1) ?? ''),
      'pci-address': pod.vf.pci,
      'pf-pci-address': pod.vf.pf,
      'representor-device': pod.vf.representor,
    });
    const expectedMac = pod.vf.driver === 'virtio' ? pod.mac : a.status.mac;
    assert.deepEqual(a.status, {
      name: `${NAMESPACE}/${pod.spec.network}`,
      interface: 'net1',
      ips: [pod.ip],
      mac: expectedMac,
      default: false,
      dns: a.status.dns,
      'device-info': dp,
    });
    assert.ok(a.deviceInfoFile && existsSync(a.deviceInfoFile), 'Multus keeps the cni/ DeviceInfo copy while the pod runs');
    say.say(`${pod.spec.name}: network-status ${JSON.stringify({ ...a.status, 'device-info': undefined })}`);
    say.say(`${pod.spec.name}: device-info ${JSON.stringify(a.status['device-info'])}`);
  }

  async function pingBoth(a: RunningPod, b: RunningPod, count: number): Promise<PingResult[]> {
    const out: PingResult[] = [];
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const r = await ping({ netns: from.netnsName, ifname: 'net1', rep: from.vf.representor, mac: from.mac, cidr: from.cidr }, to.ip, count);
      assert.ok(r.ok, `${from.spec.name} → ${to.spec.name} (${to.ip}) through OVN:\n${r.output}`);
      const p = { from: from.spec.name, to: to.spec.name, ...parsePing(r.output) };
      say.say(`ping ${p.from} → ${p.to} (${to.ip}): ${count} sent, ${p.loss} loss, avg ${p.avgMs ?? '?'} ms`);
      out.push(p);
    }
    return out;
  }

  async function deletePod(pod: RunningPod): Promise<void> {
    if (pod.attachments.length) {
      const [ms] = await multus.del(pod.attachments);
      del[pod.spec.name] = ms!;
      for (const a of pod.attachments) assert.ok(!a.deviceInfoFile || !existsSync(a.deviceInfoFile), 'Multus removed the cni/ DeviceInfo copy');
      pod.attachments = [];
    }
    await run('ip', ['netns', 'delete', pod.netnsName]);
    kubelet?.release(pod.sandbox);
    pods.splice(pods.indexOf(pod), 1);
  }

  try {
    say.step('The simulated node', 'A ConnectX-6 Dx style NIC is simulated: its sysfs tree is a fixture, but every VF netdev and representor is a real Linux interface, and OVS/OVN are real.');
    say.say(`PF ${node.vfs[0]!.pf} with ${node.vfs.length} VFs (fixture sysfs in ${node.sysfsRoot}):`);
    for (const vf of node.vfs) {
      say.say(`  VF ${vf.pci}  ${vf.vdpa} on ${vf.driver}_vdpa  ${vf.driver === 'vhost' ? vf.vhost : `virtio netdev ${vf.netdev}`}  representor ${vf.representor}`);
    }
    say.say(`OVS/OVN: ${BRIDGE} on the userspace datapath; logical switch ${node.logicalSwitch} (${node.subnet})`);

    say.step('Device plugin and kubelet', 'The device plugin finds the vDPA VFs, groups them into one pool per vDPA driver and registers each pool with the kubelet, which then watches the device lists.');
    kubelet = await Kubelet.start(node.kubeletDir);
    plugin = DevicePlugin.start(node);
    say.say(`started ${DP_BIN} (pid ${plugin.pid}); logs in ${plugin.logFile}`);
    for (const p of await kubelet.plugins()) {
      const ids = kubelet.healthy(p.resource);
      say.say(`registered ${p.resource}: ListAndWatch lists ${ids.length} healthy: ${ids.join(', ')}`);
    }
    const expectIds = (driver: string) => node.vfs.filter((v) => v.driver === driver).map((v) => v.pci).sort();
    assert.deepEqual(kubelet.healthy(VIRTIO_RESOURCE).sort(), expectIds('virtio'), `${VIRTIO_RESOURCE} devices`);
    assert.deepEqual(kubelet.healthy(VHOST_RESOURCE).sort(), expectIds('vhost'), `${VHOST_RESOURCE} devices`);

    say.step('Two pods on virtio VFs', 'For each pod the kubelet allocates a VF and Multus calls vdpa-cni: it creates the pod\'s logical port in OVN (managed mode, no OVN controller needed), the VF\'s virtio netdev moves into the pod and its representor joins br-int.');
    const a = await startPod(0);
    const b = await startPod(1);
    for (const pod of [a, b]) {
      assert.deepEqual(pod.allocation.devices, [], `${pod.spec.name}: a virtio VF needs no device node`);
      await checkVirtioPod(pod);
    }

    say.step('The pods ping each other through OVN', 'Traffic leaves pod A through its VF, enters OVS through the representor, crosses the OVN logical switch and reaches pod B the same way back.');
    const pings = await pingBoth(a, b, 5);

    say.step('A third pod on a vhost VF', 'A vhost VF is for a VM (KubeVirt, Kata): the pod gets /dev/vhost-vdpa-N instead of a netdev, and its representor still joins OVN.');
    const c = await startPod(2);
    const vhostName = c.vf.vhost!.split('/').at(-1)!;
    assert.deepEqual(
      c.allocation.devices,
      [{ containerPath: `/dev/${vhostName}`, hostPath: c.vf.vhost!, permissions: 'rw' }],
      'the vhost DeviceSpec',
    );
    say.say(`${c.spec.name}: DeviceSpec ${c.allocation.devices.map((d) => `${d.hostPath} → ${d.containerPath} (${d.permissions})`).join(', ')}`);
    const cIface = await ovsInterface(c.vf.representor);
    assert.equal(cIface?.externalIds['iface-id'], c.lsp, `${c.vf.representor} iface-id`);
    assert.equal(cIface?.externalIds['ovn-installed'], 'true', `${c.vf.representor} ovn-installed`);
    assert.equal((await ovsPort(c.vf.representor))?.bridge, BRIDGE, `${c.vf.representor} on ${BRIDGE}`);
    say.say(`${c.spec.name}: representor ${c.vf.representor} on ${BRIDGE}, iface-id=${c.lsp}, ovn-installed=true (the VM's virtio-net rides /dev/${vhostName})`);
    checkStatus(c, c.attachments[0]!);
    const peak = kubelet.usage();

    say.step('The kubelet restarts', 'A restarting kubelet deletes every socket; the device plugin must notice and register again, and running pods must not notice anything.');
    const before = await Promise.all(pods.map(async (p) => JSON.stringify([await ovsInterface(p.vf.representor), p.vf.driver === 'virtio' ? [link(p.netnsName, 'net1'), addresses(p.netnsName, 'net1')] : null])));
    const restartedAt = performance.now();
    await kubelet.restart();
    say.say('kubelet.sock and every plugin socket deleted; the kubelet serves again');
    const again = await kubelet.plugins();
    const reregisterMs = performance.now() - restartedAt;
    for (const p of again) say.say(`${p.resource} registered again; ListAndWatch lists ${kubelet.healthy(p.resource).length} healthy`);
    assert.deepEqual(kubelet.healthy(VIRTIO_RESOURCE).sort(), expectIds('virtio'), `${VIRTIO_RESOURCE} devices after the restart`);
    assert.deepEqual(kubelet.healthy(VHOST_RESOURCE).sort(), expectIds('vhost'), `${VHOST_RESOURCE} devices after the restart`);
    const after = await Promise.all(pods.map(async (p) => JSON.stringify([await ovsInterface(p.vf.representor), p.vf.driver === 'virtio' ? [link(p.netnsName, 'net1'), addresses(p.netnsName, 'net1')] : null])));
    assert.deepEqual(after, before, 'pods and their OVS rows are unchanged by the restart');
    for (const p of pods) assert.ok(existsSync(dpDeviceInfoPath(node.devinfoDir, p.spec.resource, p.vf.pci)), `DeviceInfo of ${p.vf.pci} kept`);
    await pingBoth(a, b, 2);
    say.say('running pods unchanged: same interfaces, addresses and OVS rows; DeviceInfo files kept; ping still works');

    say.step('The pods are deleted', 'Multus calls vdpa-cni DEL for each pod: the VF goes back to the host under its original name and its representor leaves br-int; the kubelet frees the devices.');
    for (const pod of [...pods]) {
      await deletePod(pod);
      say.say(`Multus: vdpa-cni DEL for ${pod.spec.name} took ${fmt(del[pod.spec.name]!)}; its logical port ${pod.lsp} removed by vdpa-cni`);
    }
    for (const vf of node.vfs) {
      assert.ok(link(null, vf.netdev), `${vf.netdev} is back in the host under its original name`);
      assert.equal(await ovsInterface(vf.representor), undefined, `${vf.representor} is off ${BRIDGE}`);
    }
    assert.deepEqual(await podPorts(PODS.map((p) => lspName(p.network, p.name))), [], `${BRIDGE} has no pod ports`);
    assert.equal((await run('ovn-nbctl', ['lsp-list', node.logicalSwitch])).stdout.trim(), '', `vdpa-cni removed every logical port it created on ${node.logicalSwitch}`);
    say.say(`every VF netdev is back in the host (${node.vfs.map((v) => v.netdev).join(', ')}); ${BRIDGE} has no pod ports`);
    await kubelet.plugins();
    const end = kubelet.usage();
    for (const r of RESOURCES) assert.deepEqual(end[r], { inUse: 0, free: kubelet.healthy(r).length }, `${r}: all devices available`);
    assert.equal(kubelet.healthy(VIRTIO_RESOURCE).length + kubelet.healthy(VHOST_RESOURCE).length, node.vfs.length, 'every VF healthy');
    say.say(`the pools report every device available: ${RESOURCES.map((r) => `${r} ${end[r]!.free}/${kubelet!.healthy(r).length}`).join(', ')}`);

    return { pings, add, del, peak, end, reregisterMs, totalMs: performance.now() - t0 };
  } catch (err) {
    if (plugin) say.say(`device plugin log (last lines):\n${plugin.logTail()}`);
    throw err;
  } finally {
    for (const pod of [...pods].reverse()) await deletePod(pod).catch((e: Error) => say.say(`cleanup of ${pod.spec.name}: ${e.message}`));
    await kubelet?.stop();
    const code = await plugin?.stop();
    if (plugin && code !== 0) say.say(`device plugin exited with ${code}`);
    release();
  }
}

// The built vdpa-cni on real virtio_vdpa netdevs, one on a vp_vdpa PCI function and one on the
// simulator: ADD moves the netdev into a pod netns with the MAC, MTU and address asked for; DEL
// brings it back under its original name, also when the runtime already deleted the netns (the
// kernel hands the netdev back to the host). Two pods then ping each other through qemu.
// Legacy mode ("bridge": ""): no representor; the OVS path is cni-ovs.vm.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { cni, writeCniDeviceInfo, type CniCall, type CniOutcome } from './cni.js';
import { addVdpa, delVdpa, link, sh, toVirtioPci, toVpVdpa, virtioNetFunctions, virtioOf } from './testbed.js';

const [fnA, fnB] = virtioNetFunctions() as [string, string];
const namespaces: string[] = [];
const netns = (name: string): string => {
  sh('ip', ['netns', 'add', name]);
  namespaces.push(name);
  return name;
};

/** Netdev names as the kernel has them before any ADD. */
let pciNetdev: string;
let pciNetdevB: string;
let simNetdev: string;
let simInfo: string;
// The simulator has no PCI function: the DeviceInfo file gives it a stand-in ID, as it would
// give the VF of a real NIC.
const SIM_ID = '0000:00:1f.6';

const conf = (extra: Record<string, unknown>, subnet: string) => ({
  cniVersion: '1.0.0',
  name: 'vdpa-testbed',
  type: 'vdpa-cni',
  bridge: '',
  mtu: 1400,
  ipam: { type: 'host-local', dataDir: '/run/cni-ipam', ranges: [[{ subnet }]] },
  ...extra,
});

test.before(() => {
  addVdpa('cpci0', toVpVdpa(fnA));
  addVdpa('cpci1', toVpVdpa(fnB));
  addVdpa('csim0', 'vdpasim_net', '02:00:00:00:c5:01');
  pciNetdev = virtioOf('cpci0')!.netdev!;
  pciNetdevB = virtioOf('cpci1')!.netdev!;
  simNetdev = virtioOf('csim0')!.netdev!;
  simInfo = writeCniDeviceInfo('testbed-sim-csim0_net1', {
    'parent-device': 'csim0',
    driver: 'virtio',
    path: `/sys/bus/virtio/devices/${virtioOf('csim0')!.device}`,
    'pci-address': SIM_ID,
  });
});

test.after(() => {
  for (const n of namespaces) if (existsSync(`/run/netns/${n}`)) sh('ip', ['netns', 'del', n]);
  for (const name of ['cpci0', 'cpci1', 'csim0']) delVdpa(name);
  toVirtioPci(fnA);
  toVirtioPci(fnB);
});

/** Attachments added and not yet deleted: a failed test must not leave a netdev in a pod. */
const live = new Map<string, { conf: object; call: CniCall }>();

async function cniAdd(c: object, call: CniCall): Promise<CniOutcome> {
  const r = await cni('ADD', c, call);
  live.set(call.containerId, { conf: c, call });
  return r;
}

async function cniDel(c: object, call: CniCall): Promise<CniOutcome> {
  const r = await cni('DEL', c, call);
  if (r.code === 0) live.delete(call.containerId);
  return r;
}

test.after.each(async () => {
  for (const { conf: c, call } of [...live.values()]) await cniDel(c, call);
});

const addressesOf = (dev: string, ns: string) => (link(dev, ns)?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);

test('vp_vdpa netdev: ADD into the pod, DEL back under its original name', async () => {
  const pod = netns('cpod-pci');
  const add = await cniAdd(conf({ deviceID: fnA, runtimeConfig: { mac: '02:00:00:00:c1:01' } }, '10.88.1.0/24'), {
    containerId: 'ctr-pci',
    netns: pod,
  });
  assert.is(add.code, 0, add.stderr);
  assert.is(link(pciNetdev), null, `${pciNetdev} left the host`);
  const inPod = link('net1', pod);
  assert.ok(inPod, 'net1 in the pod');
  assert.is(inPod.address, '02:00:00:00:c1:01');
  assert.is(inPod.mtu, 1400);
  assert.equal(addressesOf('net1', pod), ['10.88.1.2/24']);
  assert.ok(existsSync(`/sys/bus/pci/devices/${fnA}/${virtioOf('cpci0')!.device}`), 'still the PCI function’s virtio device');
  assert.equal(add.json!.interfaces, [{ name: 'net1', mac: '02:00:00:00:c1:01', sandbox: `/run/netns/${pod}` }]);

  const del = await cniDel(conf({ deviceID: fnA }, '10.88.1.0/24'), { containerId: 'ctr-pci', netns: pod });
  assert.is(del.code, 0, del.stderr);
  assert.is(link('net1', pod), null, 'gone from the pod');
  assert.ok(link(pciNetdev), `${pciNetdev} is back in the host`);
  assert.equal(virtioOf('cpci0')!.netdev, pciNetdev, 'under the name the kernel gave it');
});

test('simulator netdev through a DeviceInfo file: ADD into the pod, DEL back under its original name', async () => {
  const pod = netns('cpod-sim');
  const c = conf({ runtimeConfig: { CNIDeviceInfoFile: simInfo, mac: '02:00:00:00:c1:02' } }, '10.88.2.0/24');
  const add = await cniAdd(c, { containerId: 'ctr-sim', netns: pod });
  assert.is(add.code, 0, add.stderr);
  assert.is(link(simNetdev), null);
  const inPod = link('net1', pod)!;
  assert.is(inPod.address, '02:00:00:00:c1:02');
  assert.is(inPod.mtu, 1400);
  assert.equal(addressesOf('net1', pod), ['10.88.2.2/24']);

  const del = await cniDel(c, { containerId: 'ctr-sim', netns: pod });
  assert.is(del.code, 0, del.stderr);
  assert.is(link('net1', pod), null);
  assert.is(virtioOf('csim0')!.netdev, simNetdev);
});

test('netns deleted before DEL: the kernel returns the real netdev, DEL renames it back', async () => {
  const pod = netns('cpod-gone');
  const c = conf({ deviceID: fnA }, '10.88.3.0/24');
  const add = await cniAdd(c, { containerId: 'ctr-gone', netns: pod });
  assert.is(add.code, 0, add.stderr);
  sh('ip', ['netns', 'del', pod]);
  // Netns teardown runs in the kernel's background work: wait for the device to come home.
  const deadline = Date.now() + 30_000;
  while (!link('net1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok(link('net1'), 'the kernel moved the pod-side netdev back into the host as net1');

  const del = await cniDel(c, { containerId: 'ctr-gone', netns: pod });
  assert.is(del.code, 0, del.stderr);
  assert.is(link('net1'), null, 'no net1 left in the host');
  assert.is(virtioOf('cpci0')!.netdev, pciNetdev, 'back under its original name');
  assert.equal(
    readdirSync('/var/lib/cni/vdpa-k8s', { recursive: true }).filter((f) => String(f).includes('ctr-gone')),
    [],
    'no attachment state left',
  );
});

test('two pods on vp_vdpa netdevs ping each other through qemu', async () => {
  const pods = [
    { fn: fnA, pod: netns('cpod-a') },
    { fn: fnB, pod: netns('cpod-b') },
  ];
  const call = (pod: string): CniCall => ({ containerId: `ctr-${pod}`, netns: pod });
  const c = (fn: string) => conf({ deviceID: fn }, '10.88.4.0/24');
  for (const { fn, pod } of pods) {
    const add = await cniAdd(c(fn), call(pod));
    assert.is(add.code, 0, add.stderr);
  }
  const peer = addressesOf('net1', pods[1]!.pod)[0]!.split('/')[0]!;
  assert.match(sh('ip', ['netns', 'exec', pods[0]!.pod, 'ping', '-c', '3', '-i', '0.2', '-W', '5', peer]), / 0% packet loss/);
  for (const { fn, pod } of pods) {
    const del = await cniDel(c(fn), call(pod));
    assert.is(del.code, 0, del.stderr);
  }
  assert.is(virtioOf('cpci0')!.netdev, pciNetdev);
  assert.is(virtioOf('cpci1')!.netdev, pciNetdevB);
});

test.run();

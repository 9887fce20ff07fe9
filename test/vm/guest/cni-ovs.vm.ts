// The built vdpa-cni plugging real switchdev representors (netdevsim) into a real OVS br-int on
// the kernel datapath with hw-offload=true. No emulated NIC has vDPA-capable VFs *and*
// representors, so each vDPA device (vp_vdpa, simulator) is paired with a netdevsim representor
// through the DeviceInfo file's representor-device, as the device plugin writes it for a real VF.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { cni, writeCniDeviceInfo, type CniCall } from './cni.js';
import {
  addVdpa,
  delVdpa,
  link,
  netdevsim,
  ovsVsctl,
  sh,
  startOvs,
  toVirtioPci,
  toVpVdpa,
  virtioNetFunctions,
  virtioOf,
  type Eswitch,
} from './testbed.js';

const [fn] = virtioNetFunctions() as [string];
const SIM_ID = '0000:00:1f.5';
let esw: Eswitch;
let ovs: { stop(): void };
const namespaces: string[] = [];

interface Pairing {
  label: string;
  vdpa: string;
  pci: string;
  representor: string;
  info: string;
  netdev: string;
}
const pairings: Pairing[] = [];

test.before(() => {
  ovs = startOvs();
  esw = netdevsim(91, 2);
  addVdpa('opci0', toVpVdpa(fn));
  addVdpa('osim0', 'vdpasim_net', '02:00:00:00:0e:01');
  for (const [label, vdpa, pci, vf] of [
    ['vp_vdpa', 'opci0', fn, 0],
    ['simulator', 'osim0', SIM_ID, 1],
  ] as const) {
    const virtio = virtioOf(vdpa)!;
    const representor = esw.representors.get(vf)!;
    const info = writeCniDeviceInfo(`testbed-ovs-${vdpa}_net1`, {
      'parent-device': vdpa,
      driver: 'virtio',
      path: `/sys/bus/virtio/devices/${virtio.device}`,
      'pci-address': pci,
      'representor-device': representor,
    });
    pairings.push({ label, vdpa, pci, representor, info, netdev: virtio.netdev! });
  }
});

test.after(() => {
  for (const n of namespaces) if (existsSync(`/run/netns/${n}`)) sh('ip', ['netns', 'del', n]);
  ovs.stop();
  esw.remove();
  delVdpa('opci0');
  delVdpa('osim0');
  toVirtioPci(fn);
});

const externalIds = (iface: string): Record<string, string> => {
  const out = ovsVsctl('--format=json', '--columns=external_ids', 'list', 'Interface', iface);
  const cell = (JSON.parse(out) as { data: [[string, [string, string][]]][] }).data[0]![0][1];
  return Object.fromEntries(cell);
};
const datapathPorts = (): string => sh('ovs-dpctl', ['show']);
const isUp = (dev: string): boolean => sh('ip', ['-j', 'link', 'show', 'dev', dev]).includes('"UP"');

for (const [i, label] of ['vp_vdpa', 'simulator'].entries()) {
  test(`${label}: ADD plugs the paired representor into br-int, moves the netdev; DEL undoes both`, async () => {
    const p = pairings.find((x) => x.label === label)!;
    const pod = `opod-${i}`;
    sh('ip', ['netns', 'add', pod]);
    namespaces.push(pod);
    const mac = `02:00:00:00:0e:1${i}`;
    const conf = {
      cniVersion: '1.0.0',
      name: 'vdpa-ovs',
      type: 'vdpa-cni',
      bridge: 'br-int',
      ovn: { waitInstalled: false },
      runtimeConfig: { CNIDeviceInfoFile: p.info, mac },
      ipam: { type: 'host-local', dataDir: '/run/cni-ipam', ranges: [[{ subnet: `10.89.${i}.0/24` }]] },
    };
    const call: CniCall = { containerId: `ctr-ovs-${i}`, netns: pod };
    const add = await cni('ADD', conf, call);
    let deleted = false;
    try {
      assert.is(add.code, 0, add.stderr);
      assert.is(link('net1', pod)?.address, mac);
      assert.is(link(p.netdev), null, `${p.netdev} left the host`);
      assert.ok(ovsVsctl('list-ports', 'br-int').split('\n').includes(p.representor), 'the representor is a br-int port');
      const ids = externalIds(p.representor);
      assert.is(ids['iface-id'], 'vdpa-vdpa-ovs_testbed_pod', 'the default ovn.ifaceId, vdpa-{network}_{namespace}_{pod}');
      assert.is(ids.attached_mac, mac);
      assert.is(ids.sandbox, call.containerId);
      assert.is(ids['pod-if-name'], 'net1');
      assert.match(datapathPorts(), new RegExp(`: ${p.representor}\\b`), 'on the kernel datapath');
      assert.ok(isUp(p.representor), 'the representor is up');

      const del = await cni('DEL', conf, call);
      deleted = del.code === 0;
      assert.is(del.code, 0, del.stderr);
      assert.not.ok(ovsVsctl('list-ports', 'br-int').split('\n').includes(p.representor), 'the port is gone');
      assert.not.match(datapathPorts(), new RegExp(`: ${p.representor}\\b`));
      assert.not.ok(isUp(p.representor), 'the representor is down again');
      assert.is(virtioOf(p.vdpa)!.netdev, p.netdev, 'the netdev is back under its original name');
    } finally {
      if (!deleted) await cni('DEL', conf, call);
    }
  });
}

test('hw-offload stays on and br-int stays on the kernel datapath', () => {
  assert.is(ovsVsctl('get', 'Open_vSwitch', '.', 'other_config:hw-offload'), '"true"');
  assert.is(ovsVsctl('get', 'Bridge', 'br-int', 'datapath_type'), 'system');
});

test.run();

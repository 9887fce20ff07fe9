// vdpa-cni without OVS ("bridge": ""): the netdev's trip into the pod and back, per cniVersion.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addresses, bed, cni, hostLocal, link, links, routes, testIpam } from '../support/cni.js';

const b = bed('l', { count: 3, legacy: true });
const ipam = testIpam(b);

const conf = (v: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: v,
  name: 'legacy',
  type: 'vdpa-cni',
  bridge: '',
  ...extra,
});

for (const [i, v] of ['0.3.0', '0.3.1', '0.4.0', '1.0.0'].entries()) {
  test(`cniVersion ${v}: ADD moves the netdev in with host-local addresses, DEL brings it back`, async () => {
    const vf = b.vfs[0]!;
    const pod = b.netns(`p${i}`);
    const hostMac = link(null, vf.netdev)!.mac;
    const c = conf(v, {
      deviceID: vf.pci,
      mtu: 1400,
      ipam: hostLocal(b, '10.77.0.0/24', { routes: [{ dst: '10.78.0.0/16' }] }),
    });
    const add = await cni(b, 'ADD', c, { containerId: `c${i}`, netns: pod });
    assert.is(add.code, 0, add.stdout + add.stderr);
    const r = add.json as { cniVersion: string; interfaces: { name: string; mac: string; sandbox: string }[]; ips: Record<string, unknown>[] };
    assert.is(r.cniVersion, v);
    assert.equal(r.interfaces.length, 1);
    assert.equal(r.interfaces[0], { name: 'net1', mac: hostMac, sandbox: `/run/netns/${pod}` });
    assert.is(r.ips[0]!.interface, 0);
    assert.is(r.ips[0]!.version, v.startsWith('0.') ? '4' : undefined);
    assert.not.ok(link(null, vf.netdev), 'netdev left the host');
    const inPod = link(pod, 'net1')!;
    assert.ok(inPod, 'net1 in the pod');
    assert.is(inPod.mtu, 1400);
    assert.ok(inPod.up);
    assert.equal(addresses(pod, 'net1'), [r.ips[0]!.address]);
    assert.ok(routes(pod, 'net1').includes('10.78.0.0/16 via 10.77.0.1'), routes(pod, 'net1').join());

    const del = await cni(b, 'DEL', c, { containerId: `c${i}`, netns: pod });
    assert.is(del.code, 0, del.stdout + del.stderr);
    assert.is(del.stdout, '');
    const back = link(null, vf.netdev);
    assert.ok(back, 'netdev back in the host under its original name');
    assert.is(back!.alias, '');
    assert.is(back!.mac, hostMac);
    assert.equal(
      links(pod).map((l) => l.name),
      ['lo'],
    );
  });
}

test('cniVersion 1.1.0 with a 1.1.0 IPAM: mac, mtu and pciID in the result; IPv4 + IPv6', async () => {
  const vf = b.vfs[1]!;
  const pod = b.netns('p11');
  const c = conf('1.1.0', {
    runtimeConfig: { deviceID: vf.pci, mac: '02:00:00:aa:bb:01' },
    ipam: { type: 'test-ipam', address: 'fd00:77::5/64', gateway: 'fd00:77::1', routes: [{ dst: '::/0' }] },
  });
  const add = await cni(b, 'ADD', c, { containerId: 'c11', netns: pod, path: ipam.path, ifname: 'eth0' });
  assert.is(add.code, 0, add.stdout + add.stderr);
  const r = add.json as { interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[]; routes: Record<string, unknown>[] };
  assert.equal(r.interfaces[0], {
    name: 'eth0',
    mac: '02:00:00:aa:bb:01',
    mtu: 1500,
    sandbox: `/run/netns/${pod}`,
    pciID: vf.pci,
  });
  assert.equal(r.ips, [{ address: 'fd00:77::5/64', gateway: 'fd00:77::1', interface: 0 }]);
  assert.is(link(pod, 'eth0')!.mac, '02:00:00:aa:bb:01');
  assert.ok(routes(pod, 'eth0').includes('default via fd00:77::1'), routes(pod, 'eth0').join());
  // The host's own eth0 must not be touched by a pod-side eth0 coming home.
  const hostEth0 = link(null, 'eth0');
  const del = await cni(b, 'DEL', c, { containerId: 'c11', netns: pod, path: ipam.path, ifname: 'eth0' });
  assert.is(del.code, 0, del.stdout + del.stderr);
  assert.ok(link(null, vf.netdev), 'netdev back under its original name');
  assert.equal(link(null, 'eth0'), hostEth0, "host's eth0 unchanged");
  assert.equal(ipam.calls(), ['ADD c11', 'DEL c11']);
});

test.after(() => b.cleanup());
test.run();

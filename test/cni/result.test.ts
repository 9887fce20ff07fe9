import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniError } from '../../cni/errors.js';
import { canonicalIp, parseCidr } from '../../cni/ip.js';
import { parseResult, resultForVersion, type Result } from '../../cni/result.js';

const full: Result = {
  interfaces: [
    { name: 'rep0', mac: '02:00:00:00:00:01', mtu: 1500 },
    { name: 'net1', mac: '02:00:00:00:00:02', mtu: 1400, sandbox: '/run/netns/p', pciID: '0000:65:00.2' },
  ],
  ips: [
    { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
    { address: 'fd00::5/64', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, priority: 10 }],
  dns: { nameservers: ['10.1.0.1'] },
};

test('1.1.0 prints everything', () => {
  assert.equal(resultForVersion(full, '1.1.0'), { cniVersion: '1.1.0', ...full });
});

test('1.0.0 drops the 1.1-only keys', () => {
  const r = resultForVersion(full, '1.0.0') as { interfaces: object[]; routes: object[]; ips: object[] };
  assert.equal(r.interfaces[1], { name: 'net1', mac: '02:00:00:00:00:02', sandbox: '/run/netns/p' });
  assert.equal(r.routes[0], { dst: '0.0.0.0/0', gw: '10.1.0.1' });
  assert.equal(r.ips[0], { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 });
});

for (const v of ['0.3.0', '0.3.1', '0.4.0'] as const) {
  test(`${v} adds ips[].version`, () => {
    const r = resultForVersion(full, v) as { cniVersion: string; ips: { version: string }[]; interfaces: object[] };
    assert.is(r.cniVersion, v);
    assert.equal(
      r.ips.map((i) => i.version),
      ['4', '6'],
    );
    assert.not.ok('pciID' in (r.interfaces[1] as object));
  });
}

test('empty lists are left out, dns always present', () => {
  assert.equal(resultForVersion({ interfaces: [], ips: [], routes: [], dns: {} }, '1.0.0'), { cniVersion: '1.0.0', dns: {} });
});

test('parses any version back (round trip) and ignores ips[].version', () => {
  for (const v of ['0.3.1', '1.0.0', '1.1.0'] as const) {
    const back = parseResult(JSON.parse(JSON.stringify(resultForVersion(full, v))), 'prevResult');
    assert.equal(back.ips[1], { address: 'fd00::5/64', interface: 1 });
  }
});

test('bad results name the field', () => {
  const bad = (v: unknown, re: RegExp) => {
    try {
      parseResult(v, 'prevResult');
      assert.unreachable();
    } catch (err) {
      assert.instance(err, CniError);
      assert.match((err as Error).message, re);
    }
  };
  bad({ ips: [{ address: '10.0.0.1/24', interface: 0 }] }, /prevResult.ips\[0\].interface: must be an integer/);
  bad({ routes: [{ dst: 'default' }] }, /prevResult.routes\[0\].dst/);
  bad({ interfaces: [{ mac: 'x' }] }, /prevResult.interfaces\[0\].name: is required/);
  bad({ dns: { nameservers: [1] } }, /prevResult.dns.nameservers\[0\]/);
});

test('ip helpers', () => {
  assert.is(canonicalIp('2001:0db8:0:0::1'), '2001:db8::1');
  assert.equal(parseCidr('fd00:0::5/64'), { ip: 'fd00::5', prefix: 64, family: 6 });
  assert.is(parseCidr('10.0.0.1/33'), null);
  assert.is(parseCidr('10.0.0.1'), null);
});

test.run();

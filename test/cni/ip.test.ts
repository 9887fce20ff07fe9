// cni/ip.ts's address syntax is node:net's isIPv4/isIPv6, written out so that the Bun-built CNI
// need not load node:net: the two must agree on every address, well-formed or not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isIPv4 as nodeIsIPv4, isIPv6 as nodeIsIPv6 } from 'node:net';
import { canonicalIp, ipFamily, isIPv4, isIPv6 } from '../../cni/ip.js';

const agree = (s: string) => {
  assert.is(isIPv4(s), nodeIsIPv4(s), `isIPv4(${JSON.stringify(s)})`);
  assert.is(isIPv6(s), nodeIsIPv6(s), `isIPv6(${JSON.stringify(s)})`);
};

test('the addresses results carry, and their near misses', () => {
  for (const s of [
    '10.1.2.3', '0.0.0.0', '255.255.255.255', '01.2.3.4', '256.1.1.1', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4 ',
    '::', '::1', 'fd00::5', 'FD00::A', 'fe80::1%eth0', 'fe80::1%', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3',
    '::ffff:10.0.0.1', '64:ff9b::192.0.2.33', '1:2:3:4:5:6:1.2.3.4', 'abcd::12345', ':1', '1:', '', '10.0.0.1/24',
  ]) {
    agree(s);
  }
  assert.is(ipFamily('10.1.2.3'), 4);
  assert.is(ipFamily('fd00::5'), 6);
  assert.is(ipFamily('nope'), null);
  assert.is(canonicalIp('FD00:0:0::5'), 'fd00::5');
});

test('generated IPv6 forms: groups, compressions, embedded IPv4 tails and zones', () => {
  let seed = 13;
  const r = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const v4 = () => Array.from({ length: 3 + r(3) }, () => String(r(300))).join('.');
  for (let i = 0; i < 50_000; i++) {
    const groups = Array.from({ length: 1 + r(9) }, () => r(0x10000).toString(16).slice(0, 1 + r(5)));
    if (r(3) === 0) groups.push(v4());
    let s = groups.join(':');
    if (r(2)) {
      const at = r(s.length + 1);
      s = s.slice(0, at) + (r(2) ? '::' : ':') + s.slice(at);
    }
    if (r(8) === 0) s += `%${['eth0', 'a.b', '1', '', 'x_y'][r(5)]}`;
    agree(r(10) === 0 ? v4() : s);
  }
});

test.run();

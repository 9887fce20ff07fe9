import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { preferredAllocation, type Placement } from '../../deviceplugin/preferred.js';

// NUMA 0: PF a (a1-a4), PF b (b1-b2). NUMA 1: PF c (c1-c3), PF d (d1). No NUMA: PF e (e1-e2).
const layout: Record<string, Placement> = {};
for (const [pf, numa, n] of [['a', 0, 4], ['b', 0, 2], ['c', 1, 3], ['d', 1, 1], ['e', null, 2]] as const) {
  for (let i = 1; i <= n; i++) layout[`${pf}${i}`] = { pf, numaNode: numa };
}
const all = Object.keys(layout);
const place = (id: string) => layout[id];
const pick = (size: number, opts: { available?: string[]; mustInclude?: string[] } = {}) =>
  preferredAllocation({ available: opts.available ?? all, mustInclude: opts.mustInclude ?? [], size }, place);
const pfs = (ids: string[]) => new Set(ids.map((id) => layout[id]?.pf));
const numas = (ids: string[]) => new Set(ids.map((id) => layout[id]?.numaNode));

test('must-include devices come first and are always kept', () => {
  const got = pick(3, { mustInclude: ['c2', 'a1'] });
  assert.equal(got.slice(0, 2), ['c2', 'a1']);
  assert.is(got.length, 3);
  assert.equal(pick(2, { mustInclude: ['c2', 'a1'] }), ['c2', 'a1']);
});

test('one NUMA node when it can hold the request, on the node of the must-include devices', () => {
  const got = pick(3, { mustInclude: ['c1'] });
  assert.equal(numas(got), new Set([1]));
  assert.equal(got, ['c1', 'c2', 'c3']);
  // NUMA 1 cannot hold 5 more: NUMA 0 can.
  const five = pick(5);
  assert.equal(numas(five), new Set([0]));
});

test('the fewest PFs, and the PF that fits best', () => {
  // Two devices: PF b holds them exactly (best fit), leaving PF a whole for bigger requests.
  assert.equal(pick(2, { available: ['a1', 'a2', 'a3', 'a4', 'b1', 'b2'] }), ['b1', 'b2']);
  // Four: only PF a holds four alone.
  assert.equal(pfs(pick(4, { available: ['a1', 'a2', 'a3', 'a4', 'b1', 'b2'] })), new Set(['a']));
  // Six on NUMA 0 needs both PFs there.
  assert.equal(pfs(pick(6)), new Set(['a', 'b']));
  // A must-include device's PF is used before another PF.
  assert.equal(pick(2, { mustInclude: ['a2'], available: ['a1', 'a2', 'a3', 'b1', 'b2'] }), ['a2', 'a1']);
  // With one NUMA node per candidate set the NUMA choice falls to the node needing fewer PFs.
  assert.equal(pick(1, { available: ['a1', 'c1'] }).length, 1);
});

test('when no node holds the request alone, devices spread over the fewest PFs overall', () => {
  const got = pick(9, { available: ['a1', 'a2', 'a3', 'a4', 'c1', 'c2', 'c3', 'd1', 'b1', 'b2'] });
  assert.is(got.length, 9);
  assert.equal(pfs(got).size, 3);
});

test('devices unknown to the pool are offered last; short supply returns what there is', () => {
  assert.equal(pick(2, { available: ['zz', 'a1'] }), ['a1', 'zz']);
  assert.equal(pick(4, { available: ['a1', 'b1'] }).sort(), ['a1', 'b1']);
  assert.equal(pick(0), []);
  // Devices without NUMA affinity still form a group of their own.
  assert.equal(pick(2, { available: ['e1', 'e2', 'a1'] }), ['e1', 'e2']);
});

test('the answer is deterministic and never repeats a device', () => {
  const a = pick(7, { mustInclude: ['d1', 'd1'] });
  assert.equal(a, pick(7, { mustInclude: ['d1', 'd1'] }));
  assert.is(new Set(a).size, a.length);
  assert.is(a.length, 7);
});

test.run();

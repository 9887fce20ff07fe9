// Measurement, in the kernel testbed: vDPA create+delete through the project's path (host/vdpa.ts,
// one iproute2 `vdpa` process per operation) against raw generic netlink from one process
// (hack/bench/vdpa-netlink.py), in the same run on the same management device (vdpasim_net; the
// virtio_vdpa bind and virtio_net probe are part of every create). Prints the ratio; asserts only
// that both paths really created and deleted the devices.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { realMachine } from '../../../host/machine.js';
import { createVdpa, deleteVdpa } from '../../../host/vdpa.js';
import { ROOT } from '../../support/paths.js';
import { sh } from './testbed.js';

test('measurement: vDPA create+delete through host/vdpa.ts (vdpa tool) vs raw generic netlink, same run', async () => {
  const pairs = 10;
  const m = realMachine();
  const started = performance.now();
  for (let i = 0; i < pairs; i++) {
    await createVdpa(m, { name: `pvtool${i}`, mgmtDev: 'vdpasim_net', mac: null, mtu: null, maxVqp: null });
    assert.ok(existsSync(`/sys/bus/vdpa/devices/pvtool${i}`));
    await deleteVdpa(m, `pvtool${i}`);
  }
  const tool = (performance.now() - started) / pairs;
  const py = JSON.parse(sh('python3', [join(ROOT, 'hack', 'bench', 'vdpa-netlink.py'), 'vdpasim_net', String(pairs), 'pvnl'])) as { ms_per_pair: number };
  const spawnOnly = performance.now();
  for (let i = 0; i < pairs; i++) sh('vdpa', ['-j', 'mgmtdev', 'show']);
  const spawn = (performance.now() - spawnOnly) / pairs;
  console.log(
    `\nvDPA create+delete on vdpasim_net (virtio_vdpa + virtio_net probe included), ${pairs} pairs: vdpa tool ${tool.toFixed(1)} ms/pair, raw netlink ${py.ms_per_pair} ms/pair, ratio ${(tool / py.ms_per_pair).toFixed(2)}; one vdpa process start ${spawn.toFixed(1)} ms`,
  );
  assert.equal(readdirSync('/sys/bus/vdpa/devices').filter((n) => /^pv(tool|nl)\d/.test(n)), [], 'both paths deleted what they made');
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDevlinkPorts, parseDevlinkPorts } from '../../host/devlink.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-devlink-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

// `devlink -j port show` on a ConnectX-6 Dx PF in switchdev mode with two VFs (iproute2 6.1).
const MLX5 = {
  port: {
    'pci/0000:65:00.0/65535': { type: 'eth', netdev: 'enp101s0f0np0', flavour: 'physical', port: 0, splittable: false },
    'pci/0000:65:00.0/1': { type: 'eth', netdev: 'enp101s0f0_0', flavour: 'pcivf', controller: 0, pfnum: 0, vfnum: 0, external: false, splittable: false, function: { hw_addr: '00:00:00:00:00:00' } },
    'pci/0000:65:00.0/2': { type: 'eth', netdev: 'enp101s0f0_1', flavour: 'pcivf', controller: 0, pfnum: 0, vfnum: 1, external: false, splittable: false },
    'pci/0000:03:00.0/3': { type: 'eth', flavour: 'pcivf', controller: 1, pfnum: 0, vfnum: 0, external: true, splittable: false },
  },
};

/** A stand-in devlink executable: the real one needs a NIC this machine does not have. */
function fakeDevlink(name: string, body: string): string {
  const bin = join(dir, name);
  writeFileSync(bin, `#!/bin/sh\n${body}\n`);
  chmodSync(bin, 0o755);
  return bin;
}

test('parse: ports with their device handle, flavour, numbers and netdev', () => {
  assert.equal(parseDevlinkPorts(MLX5), [
    { port: 'pci/0000:65:00.0/65535', device: 'pci/0000:65:00.0', flavour: 'physical', netdev: 'enp101s0f0np0', pfnum: null, vfnum: null, controller: null, external: false },
    { port: 'pci/0000:65:00.0/1', device: 'pci/0000:65:00.0', flavour: 'pcivf', netdev: 'enp101s0f0_0', pfnum: 0, vfnum: 0, controller: 0, external: false },
    { port: 'pci/0000:65:00.0/2', device: 'pci/0000:65:00.0', flavour: 'pcivf', netdev: 'enp101s0f0_1', pfnum: 0, vfnum: 1, controller: 0, external: false },
    { port: 'pci/0000:03:00.0/3', device: 'pci/0000:03:00.0', flavour: 'pcivf', netdev: null, pfnum: 0, vfnum: 0, controller: 1, external: true },
  ]);
});

test('parse: anything that is not devlink output gives no ports', () => {
  for (const x of [null, 3, 'x', [], {}, { port: null }, { port: [1] }, { port: { noslash: {} } }, { port: { 'pci/x/1': 'str' } }]) {
    assert.equal(parseDevlinkPorts(x), [], JSON.stringify(x));
  }
});

test('list: runs devlink -j port show and parses its output', async () => {
  const bin = fakeDevlink('devlink-ok', `[ "$*" = "-j port show" ] || exit 9\ncat <<'EOF'\n${JSON.stringify(MLX5)}\nEOF`);
  const ports = await listDevlinkPorts({ bin });
  assert.equal(ports.map((p) => p.netdev), ['enp101s0f0np0', 'enp101s0f0_0', 'enp101s0f0_1', null]);
});

test('list: a missing tool, a failing tool, bad output or a hang give [] and never throw', async () => {
  assert.equal(await listDevlinkPorts({ bin: join(dir, 'no-such-devlink') }), []);
  assert.equal(await listDevlinkPorts({ bin: fakeDevlink('devlink-fail', 'echo "Failed to connect to devlink Netlink" >&2; exit 1') }), []);
  assert.equal(await listDevlinkPorts({ bin: fakeDevlink('devlink-junk', 'echo "{not json"') }), []);
  const t0 = Date.now();
  assert.equal(await listDevlinkPorts({ bin: fakeDevlink('devlink-hang', 'exec sleep 10'), timeoutMs: 200 }), []);
  assert.ok(Date.now() - t0 < 5000, 'timed out instead of waiting for the hang');
});

test('list: the real devlink of this machine (no NIC) gives no ports', async () => {
  assert.equal(await listDevlinkPorts(), []);
});

test.run();

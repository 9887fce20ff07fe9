import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeviceInfoError,
  cniDeviceInfoPath,
  deviceInfoFromEndpoint,
  dpDeviceInfoFileOf,
  dpDeviceInfoFiles,
  dpDeviceInfoPath,
  endpointFromDeviceInfo,
  parseDeviceInfo,
  readDeviceInfo,
  removeDeviceInfo,
  writeDeviceInfo,
  type DeviceInfo,
} from '../../host/deviceinfo.js';
import { discover } from '../../host/discover.js';
import { endpointFor } from '../../host/endpoint.js';
import { buildFixture } from '../support/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-devinfo-'));
const fx = buildFixture({ pfs: [{ vfs: [{ representor: 'enp101s0f0_0' }, { vdpa: 'vhost' }] }] });
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
  fx.cleanup();
});

const SPEC_EXAMPLE = {
  type: 'vdpa',
  version: '1.1.0',
  vdpa: {
    'parent-device': 'vdpa2',
    driver: 'virtio',
    path: '/sys/bus/virtio/devices/virtio5',
    'pci-address': '0000:65:00.2',
    'pf-pci-address': '0000:65:00.0',
    'representor-device': 'enp101s0f0_0',
  },
};

test('file names follow the spec: dp/<resource>-<id>-device.json with "/" → "-", cni/<name>', () => {
  assert.equal(
    dpDeviceInfoPath('/var/run/k8s.cni.cncf.io/devinfo', 'example.com/vdpa_virtio', '0000:65:00.2'),
    '/var/run/k8s.cni.cncf.io/devinfo/dp/example.com-vdpa_virtio-0000:65:00.2-device.json',
  );
  assert.equal(dpDeviceInfoPath('/d', 'a/b/c', 'x/y'), '/d/dp/a-b-c-x-y-device.json');
  assert.equal(cniDeviceInfoPath('/d', 'default-vdpa-net-1234_net1'), '/d/cni/default-vdpa-net-1234_net1');
  assert.equal(cniDeviceInfoPath('/d', 'ns/net-1234_net1'), '/d/cni/ns-net-1234_net1');
});

test('dp files are listed by that name, of all resources or of one device ID', () => {
  const root = join(dir, 'listed');
  assert.is(dpDeviceInfoFiles(root), null, 'no dp/ directory');
  assert.is(dpDeviceInfoFileOf(root, '0000:65:00.2'), null);
  const a = dpDeviceInfoPath(root, 'example.com/vdpa', '0000:65:00.2');
  const b = dpDeviceInfoPath(root, 'example.com/vhost', '0000:65:00.3');
  writeDeviceInfo(a, SPEC_EXAMPLE as DeviceInfo);
  writeDeviceInfo(b, SPEC_EXAMPLE as DeviceInfo);
  writeFileSync(join(root, 'dp', 'x.json.123.tmp'), '');
  assert.equal(dpDeviceInfoFiles(root)?.sort(), [a, b]);
  assert.equal(dpDeviceInfoFiles(root, '0000:65:00.3'), [b]);
  assert.is(dpDeviceInfoFileOf(root, '0000:65:00.2'), a);
  assert.is(dpDeviceInfoFileOf(root, '0000:65:00.4'), null);
});

test('the spec example parses to itself; a pci document parses too', () => {
  assert.equal(parseDeviceInfo(SPEC_EXAMPLE), SPEC_EXAMPLE);
  const pci = { type: 'pci', version: '1.0.0', pci: { 'pci-address': '0000:65:00.2', 'vhost-net': '/dev/vhost-net', 'rdma-device': 'mlx5_3' } };
  assert.equal(parseDeviceInfo(pci), pci);
  // Unknown fields from a later 1.x are ignored, not kept.
  assert.equal(parseDeviceInfo({ ...SPEC_EXAMPLE, version: '1.2.0', extra: 1 }), { ...SPEC_EXAMPLE, version: '1.2.0' });
});

test('round trip: snapshot endpoint → file → endpoint, virtio and vhost', () => {
  const s = discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot });
  for (const vf of fx.vfs) {
    const ep = endpointFor(s, vf.pci);
    const path = dpDeviceInfoPath(join(dir, 'rt'), 'example.com/vdpa', vf.pci);
    writeDeviceInfo(path, deviceInfoFromEndpoint(ep));
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(doc, {
      type: 'vdpa',
      version: '1.1.0',
      vdpa: {
        'parent-device': vf.vdpa[0],
        driver: vf.driver,
        path: vf.driver === 'vhost' ? vf.vhost : join(fx.sysfsRoot, 'bus/virtio/devices', vf.virtio!),
        'pci-address': vf.pci,
        'pf-pci-address': '0000:65:00.0',
        'representor-device': vf.representor,
      },
    });
    const back = endpointFromDeviceInfo(readDeviceInfo(path)!, vf.pci);
    assert.equal(back, { ...ep, netdev: null, numaNode: null });
  }
});

test('optional fields are left out when unknown, never written as null', () => {
  const di = deviceInfoFromEndpoint({
    pciAddress: '0000:00:05.0',
    pfPciAddress: null,
    vdpaDevice: 'vdpa0',
    driver: 'vhost',
    path: '/dev/vhost-vdpa-0',
    netdev: null,
    representor: null,
    numaNode: null,
  });
  assert.equal(di, { type: 'vdpa', version: '1.1.0', vdpa: { 'parent-device': 'vdpa0', driver: 'vhost', path: '/dev/vhost-vdpa-0', 'pci-address': '0000:00:05.0' } });
});

test('write creates missing directories and replaces an older file atomically (rename, no leftovers)', () => {
  const path = dpDeviceInfoPath(join(dir, 'deep', 'er'), 'r', '0000:65:00.2');
  writeDeviceInfo(path, SPEC_EXAMPLE as DeviceInfo);
  const first = statSync(path).ino;
  const newer = { ...SPEC_EXAMPLE, vdpa: { ...SPEC_EXAMPLE.vdpa, driver: 'vhost', path: '/dev/vhost-vdpa-9' } } as DeviceInfo;
  writeDeviceInfo(path, newer);
  assert.equal(readDeviceInfo(path), newer);
  assert.not.equal(statSync(path).ino, first, 'a new inode: the old file was replaced, not rewritten in place');
  assert.equal(readdirSync(join(dir, 'deep', 'er', 'dp')), ['r-0000:65:00.2-device.json']);
  assert.equal(statSync(path).mode & 0o777, 0o644);
});

test('a concurrent reader never sees a partial file while it is replaced', async () => {
  const path = join(dir, 'race', 'dp', 'x-device.json');
  const docs = [0, 1].map((i) => ({ ...SPEC_EXAMPLE, vdpa: { ...SPEC_EXAMPLE.vdpa, path: `/dev/vhost-vdpa-${i}`.padEnd(3000 * (i + 1), 'x') } }) as DeviceInfo);
  writeDeviceInfo(path, docs[0]!);
  const reader = spawn(
    process.execPath,
    ['-e', `const fs=require('fs');let n=0,bad=0;const end=Date.now()+1500;while(Date.now()<end){try{JSON.parse(fs.readFileSync(${JSON.stringify(path)},'utf8'));n++}catch(e){bad++}}console.log(JSON.stringify({n,bad}))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  reader.stdout.on('data', (d) => (out += d));
  const done = new Promise((r) => reader.on('close', r));
  let writes = 0;
  const end = Date.now() + 1500;
  while (Date.now() < end) {
    writeDeviceInfo(path, docs[writes++ % 2]!);
    await new Promise((r) => setImmediate(r));
  }
  await done;
  const { n, bad } = JSON.parse(out) as { n: number; bad: number };
  assert.ok(n > 100 && writes > 100, `reads ${n}, writes ${writes}`);
  assert.equal(bad, 0, 'torn reads');
});

test('read: a missing file is null; bad JSON and bad fields name the file and the field', () => {
  assert.equal(readDeviceInfo(join(dir, 'nope.json')), null);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"type":');
  assert.throws(() => readDeviceInfo(bad), (e: unknown) => e instanceof DeviceInfoError && e.field === '' && e.message.startsWith(`${bad}: not valid JSON`));
  writeFileSync(bad, JSON.stringify({ ...SPEC_EXAMPLE, vdpa: { ...SPEC_EXAMPLE.vdpa, driver: 'vfio' } }));
  assert.throws(
    () => readDeviceInfo(bad),
    (e: unknown) => e instanceof DeviceInfoError && e.field === 'vdpa.driver' && e.message === `${bad}: vdpa.driver: must be "virtio" or "vhost", got "vfio"`,
  );
});

test('every invalid field is named', () => {
  const v = SPEC_EXAMPLE.vdpa;
  const pci = { 'pci-address': '0000:65:00.2' };
  const cases: [unknown, string, RegExp][] = [
    [[], '', /^must be an object$/],
    [{ ...SPEC_EXAMPLE, type: undefined }, 'type', /^type: is required/],
    [{ ...SPEC_EXAMPLE, type: 'memif' }, 'type', /^type: must be "vdpa" or "pci", got "memif"$/],
    [{ ...SPEC_EXAMPLE, version: undefined }, 'version', /^version: is required/],
    [{ ...SPEC_EXAMPLE, version: '2.0.0' }, 'version', /^version: must be a 1.x spec version/],
    [{ ...SPEC_EXAMPLE, version: 1.1 }, 'version', /^version: must be .* got 1.1$/],
    [{ ...SPEC_EXAMPLE, vdpa: undefined }, 'vdpa', /^vdpa: must be an object$/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, 'parent-device': undefined } }, 'vdpa.parent-device', /^vdpa.parent-device: is required/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, 'parent-device': '../vdpa2' } }, 'vdpa.parent-device', /must be a vDPA device name/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, driver: undefined } }, 'vdpa.driver', /^vdpa.driver: is required \("virtio" or "vhost"\)$/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, driver: 'VIRTIO' } }, 'vdpa.driver', /^vdpa.driver: must be "virtio" or "vhost"/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, path: undefined } }, 'vdpa.path', /^vdpa.path: is required/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, path: 'dev/vhost-vdpa-1' } }, 'vdpa.path', /^vdpa.path: must be an absolute path/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, 'pci-address': '65:00.2' } }, 'vdpa.pci-address', /^vdpa.pci-address: must be a PCI address/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, 'pf-pci-address': 7 } }, 'vdpa.pf-pci-address', /^vdpa.pf-pci-address: must be a PCI address/],
    [{ ...SPEC_EXAMPLE, vdpa: { ...v, 'representor-device': 'a-netdev-name-too-long' } }, 'vdpa.representor-device', /must be a netdev name/],
    [{ type: 'pci', version: '1.1.0' }, 'pci', /^pci: must be an object$/],
    [{ type: 'pci', version: '1.1.0', pci: {} }, 'pci.pci-address', /^pci.pci-address: is required/],
    [{ type: 'pci', version: '1.1.0', pci: { ...pci, 'vhost-net': 'vhost-net' } }, 'pci.vhost-net', /must be an absolute path/],
    [{ type: 'pci', version: '1.1.0', pci: { ...pci, 'rdma-device': '' } }, 'pci.rdma-device', /must be an RDMA device name/],
    [{ type: 'pci', version: '1.1.0', pci: { ...pci, 'pf-pci-address': '0000:65:00.9' } }, 'pci.pf-pci-address', /must be a PCI address/],
    [{ type: 'pci', version: '1.1.0', pci: { ...pci, 'representor-device': 'a b' } }, 'pci.representor-device', /must be a netdev name/],
  ];
  for (const [doc, field, message] of cases) {
    try {
      parseDeviceInfo(doc);
      assert.unreachable(`accepted a document with a bad ${field || 'document'}`);
    } catch (e) {
      assert.instance(e, DeviceInfoError);
      assert.equal((e as DeviceInfoError).field, field);
      assert.match((e as DeviceInfoError).message, message);
    }
  }
});

test('write refuses an invalid document and leaves nothing behind', () => {
  const path = join(dir, 'refused', 'dp', 'r-device.json');
  const bad = { ...SPEC_EXAMPLE, vdpa: { ...SPEC_EXAMPLE.vdpa, path: 'relative' } } as DeviceInfo;
  assert.throws(() => writeDeviceInfo(path, bad), (e: unknown) => e instanceof DeviceInfoError && e.field === 'vdpa.path');
  assert.equal(existsSync(path), false);
});

test('endpointFromDeviceInfo: checks the type and the PCI address it is used for', () => {
  const di = parseDeviceInfo(SPEC_EXAMPLE);
  assert.equal(endpointFromDeviceInfo(di, '0000:65:00.2').representor, 'enp101s0f0_0');
  assert.throws(() => endpointFromDeviceInfo(di, '0000:65:00.3'), (e: Error) => e.message === 'vdpa.pci-address: is 0000:65:00.2, but the device is 0000:65:00.3');
  const pci = parseDeviceInfo({ type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:65:00.2' } });
  assert.throws(() => endpointFromDeviceInfo(pci, '0000:65:00.2'), (e: Error) => e.message === 'type: must be "vdpa" for a vDPA device, got "pci"');
});

test('remove: deletes the file; an absent file is fine', () => {
  const path = join(dir, 'rm', 'dp', 'r-device.json');
  writeDeviceInfo(path, SPEC_EXAMPLE as DeviceInfo);
  removeDeviceInfo(path);
  assert.equal(existsSync(path), false);
  removeDeviceInfo(path);
});

test.run();

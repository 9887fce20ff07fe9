// Device resolution: sysfs is the truth; Multus' CNIDeviceInfoFile and the device plugin's dp/
// file are hints, read only under the devinfo directory and refused when they disagree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../cni/errors.js';
import { resolveDevice } from '../../cni/resolve.js';
import { cniDeviceInfoPath, deviceInfoFromEndpoint, dpDeviceInfoPath, writeDeviceInfo } from '../../host/deviceinfo.js';
import { discover } from '../../host/discover.js';
import { endpointFor } from '../../host/endpoint.js';
import { createLogger } from '../../host/log.js';
import type { HostPaths } from '../../host/paths.js';
import { buildFixture } from '../support/fixture.js';

const fx = buildFixture({
  pfs: [
    { vfs: [{ vdpa: 'virtio', netdev: 'vfnet0', representor: 'vfrep0' }, { vdpa: 'vhost', representor: 'vfrep1' }, { vdpa: 'unbound' }] },
    { switchdev: false, vfs: [{ vdpa: 'virtio', netdev: 'legacy0' }] },
  ],
  simulator: { vdpa: 'virtio', netdev: 'simnet0' },
});
const devinfoDir = mkdtempSync(join(tmpdir(), 'vdpa-resolve-'));
const paths: HostPaths = { sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, devinfoDir, stateDir: join(devinfoDir, 'state') };
const logFile = join(devinfoDir, 'log');
const log = createLogger({ level: 'debug', file: logFile, stderr: false });
const [virtio, vhost, unbound] = fx.pfs[0]!.vfs;
const legacy = fx.pfs[1]!.vfs[0]!;
const truth = (pci: string) => endpointFor(discover({ sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot }), pci);

test('sysfs discovery when there is no file: virtio netdev and representor', () => {
  const r = resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: null, needRepresentor: true }, paths, log);
  assert.is(r.source, 'sysfs');
  assert.is(r.endpoint.netdev, 'vfnet0');
  assert.is(r.endpoint.representor, 'vfrep0');
});

test("the device plugin's dp/ file is found by deviceID alone", () => {
  writeDeviceInfo(dpDeviceInfoPath(devinfoDir, 'example.com/vdpa_vhost', vhost!.pci), deviceInfoFromEndpoint(truth(vhost!.pci)));
  const r = resolveDevice({ deviceId: vhost!.pci, deviceInfoFile: null, needRepresentor: true }, paths, log);
  assert.is(r.source, 'device plugin file');
  assert.is(r.endpoint.driver, 'vhost');
  assert.is(r.endpoint.representor, 'vfrep1');
});

test('CNIDeviceInfoFile wins, and names the device even without a deviceID', () => {
  const file = cniDeviceInfoPath(devinfoDir, 'ns-net-ctr_net1');
  writeDeviceInfo(file, deviceInfoFromEndpoint(truth(virtio!.pci)));
  const r = resolveDevice({ deviceId: null, deviceInfoFile: file, needRepresentor: true }, paths, log);
  assert.is(r.source, 'CNIDeviceInfoFile');
  assert.is(r.endpoint.pciAddress, virtio!.pci);
  assert.is(r.endpoint.netdev, 'vfnet0', 'netdev read from the virtio path');
});

const refused = (req: Parameters<typeof resolveDevice>[0], re: RegExp) => {
  try {
    resolveDevice(req, paths, log);
    assert.unreachable('resolved');
  } catch (err) {
    assert.instance(err, CniError);
    assert.is((err as CniError).code, 7, (err as Error).message);
    assert.match((err as Error).message, re);
  }
};

test('a file that disagrees with sysfs is refused naming the field; one without a representor gets sysfs\'s; an unreadable one is ignored', () => {
  const base = deviceInfoFromEndpoint(truth(virtio!.pci));
  const stale = cniDeviceInfoPath(devinfoDir, 'stale');
  writeDeviceInfo(stale, { ...base, vdpa: { ...base.vdpa!, path: '/nonexistent/virtio9' } });
  refused({ deviceId: virtio!.pci, deviceInfoFile: stale, needRepresentor: true }, /vdpa\.path is \/nonexistent\/virtio9, but sysfs has .* for /);
  writeDeviceInfo(stale, { ...base, vdpa: { ...base.vdpa!, 'pci-address': vhost!.pci } });
  refused({ deviceId: virtio!.pci, deviceInfoFile: stale, needRepresentor: true }, new RegExp(`vdpa\\.pci-address is ${vhost!.pci}`));
  writeDeviceInfo(stale, { ...base, vdpa: { ...base.vdpa!, 'representor-device': 'vfrep1' } });
  refused({ deviceId: virtio!.pci, deviceInfoFile: stale, needRepresentor: true }, /vdpa\.representor-device is vfrep1, but sysfs has vfrep0/);
  const noRep = cniDeviceInfoPath(devinfoDir, 'norep');
  writeDeviceInfo(noRep, deviceInfoFromEndpoint({ ...truth(virtio!.pci), representor: null }));
  const r = resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: noRep, needRepresentor: true }, paths, log);
  assert.is(r.endpoint.representor, 'vfrep0');
  writeFileSync(noRep, '{"type":');
  assert.is(resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: noRep, needRepresentor: false }, paths, log).source, 'sysfs');
});

test('a DeviceInfo file outside the devinfo directory (a tenant\'s emptyDir) is refused; one that does not exist is no hint', () => {
  const outside = mkdtempSync(join(tmpdir(), 'vdpa-tenant-'));
  const file = join(outside, 'evil.json');
  writeDeviceInfo(file, deviceInfoFromEndpoint(truth(virtio!.pci)));
  refused({ deviceId: virtio!.pci, deviceInfoFile: file, needRepresentor: true }, /runtimeConfig\.CNIDeviceInfoFile: .* is not under the DeviceInfo directory/);
  assert.is(resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: join(outside, 'none.json'), needRepresentor: true }, paths, log).source, 'sysfs');
  rmSync(outside, { recursive: true, force: true });
});

test('a representor a file names for a function sysfs pairs none with is accepted only if it is a free switchdev VF representor', () => {
  // legacy0's PF is not in switchdev mode: sysfs pairs no representor with it.
  const file = cniDeviceInfoPath(devinfoDir, 'legacy');
  const base = deviceInfoFromEndpoint(truth(legacy.pci));
  writeDeviceInfo(file, { ...base, vdpa: { ...base.vdpa!, 'representor-device': 'vfrep0' } });
  refused({ deviceId: legacy.pci, deviceInfoFile: file, needRepresentor: true }, new RegExp(`representor-device vfrep0 is the representor of ${virtio!.pci}`));
  writeDeviceInfo(file, { ...base, vdpa: { ...base.vdpa!, 'representor-device': 'lo' } });
  refused({ deviceId: legacy.pci, deviceInfoFile: file, needRepresentor: true }, /representor-device lo is not a switchdev VF representor/);
});

test('errors are code 7 and name the device and the reason', () => {
  const fails = (deviceId: string, needRepresentor: boolean, re: RegExp) => {
    try {
      resolveDevice({ deviceId, deviceInfoFile: null, needRepresentor }, paths, log);
      assert.unreachable();
    } catch (err) {
      assert.instance(err, CniError);
      assert.is((err as CniError).code, 7);
      assert.match((err as Error).message, re);
    }
  };
  fails(unbound!.pci, false, new RegExp(`deviceID ${unbound!.pci} has no usable vDPA device`));
  fails('0000:aa:00.1', false, /no usable vDPA device/);
  fails(legacy.pci, true, /has no VF representor/);
  assert.is(resolveDevice({ deviceId: legacy.pci, deviceInfoFile: null, needRepresentor: false }, paths, log).endpoint.netdev, 'legacy0');
});

test('a vDPA device with no PCI function (the simulator) resolves through the file that names it, as sysfs shows it', () => {
  const sim = fx.simulator!;
  const file = cniDeviceInfoPath(devinfoDir, 'sim');
  const path = join(fx.sysfsRoot, 'bus', 'virtio', 'devices', sim.virtio!);
  const info = { 'parent-device': sim.vdpa, driver: 'virtio' as const, path, 'pci-address': '0000:00:1f.6' };
  writeDeviceInfo(file, { type: 'vdpa', version: '1.1.0', vdpa: info });
  const r = resolveDevice({ deviceId: null, deviceInfoFile: file, needRepresentor: false }, paths, log);
  assert.equal([r.endpoint.vdpaDevice, r.endpoint.netdev, r.endpoint.pciAddress], [sim.vdpa, 'simnet0', '0000:00:1f.6']);
  writeDeviceInfo(file, { type: 'vdpa', version: '1.1.0', vdpa: { ...info, path: `${path}9` } });
  refused({ deviceId: null, deviceInfoFile: file, needRepresentor: false }, /vdpa\.path is .*9, but sysfs has/);
  writeDeviceInfo(file, { type: 'vdpa', version: '1.1.0', vdpa: { ...info, 'pci-address': virtio!.pci } });
  refused({ deviceId: null, deviceInfoFile: file, needRepresentor: false }, /vdpa\.parent-device is .*, but sysfs has/);
});

test.after(() => {
  log.close();
  fx.cleanup();
  rmSync(devinfoDir, { recursive: true, force: true });
});
test.run();

// Device resolution, source by source: Multus' CNIDeviceInfoFile, then the device plugin's dp/
// file for the deviceID, then sysfs discovery; stale or incomplete files fall through.
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

test('a stale file (virtio path gone) and a file without a representor fall through to sysfs', () => {
  const stale = join(devinfoDir, 'stale.json');
  writeDeviceInfo(stale, { ...deviceInfoFromEndpoint(truth(virtio!.pci)), vdpa: { ...deviceInfoFromEndpoint(truth(virtio!.pci)).vdpa!, path: '/nonexistent/virtio9' } });
  assert.is(resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: stale, needRepresentor: true }, paths, log).source, 'sysfs');
  const noRep = join(devinfoDir, 'norep.json');
  const di = deviceInfoFromEndpoint({ ...truth(virtio!.pci), representor: null });
  writeDeviceInfo(noRep, di);
  const r = resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: noRep, needRepresentor: true }, paths, log);
  assert.is(r.source, 'sysfs');
  assert.is(r.endpoint.representor, 'vfrep0');
  writeFileSync(noRep, '{"type":');
  assert.is(resolveDevice({ deviceId: virtio!.pci, deviceInfoFile: noRep, needRepresentor: false }, paths, log).source, 'sysfs');
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

test.after(() => {
  log.close();
  fx.cleanup();
  rmSync(devinfoDir, { recursive: true, force: true });
});
test.run();

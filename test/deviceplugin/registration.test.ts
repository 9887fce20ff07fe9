// --registration auto on a node whose plugins_registry directory exists but is not the one the
// kubelet watches (a DaemonSet's DirectoryOrCreate made it): the plugin waits --watcher-grace,
// then registers through kubelet.sock with a warning; /readyz says not ready until a pool is
// registered, and the registered gauge follows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture } from '../support/fixture.js';
import { KubeletStandIn } from '../support/kubelet.js';
import { PluginProcess, Workspace } from './harness.js';

const fx = buildFixture({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'vhost' }] }] });
const RESOURCE = 'example.com/vdpa';

test("auto falls back to kubelet.sock when the watcher never picks the sockets up; /readyz and the gauge tell", async () => {
  const ws = new Workspace();
  ws.writeConfig({ resourceList: [{ resourceName: 'vdpa', resourcePrefix: 'example.com', selectors: { vdpaType: 'virtio' } }] });
  const kubelet = await KubeletStandIn.start();
  const unwatched = mkdtempSync(join(tmpdir(), 'vdpa-registry-'));
  const plugin = PluginProcess.start({ ws, sysfsRoot: fx.sysfsRoot, devRoot: fx.devRoot, kubeletDir: kubelet.dir, registryDir: unwatched, registration: 'auto', metrics: true, args: ['--watcher-grace=2'] });
  try {
    const url = await plugin.metricsUrl();
    await plugin.waitForLog((l) => l.msg === 'serving' && String(l.socket).startsWith(unwatched));
    const before = await fetch(`${url.replace(/\/metrics$/, '')}/readyz`);
    assert.is(before.status, 503);
    assert.match(await before.text(), `not registered with the kubelet (watcher): ${RESOURCE}`);
    assert.match(await (await fetch(url)).text(), `vdpa_device_plugin_registered{resource="${RESOURCE}",mode="watcher"} 0`);
    const warned = await plugin.waitForLog((l) => l.level === 'warn' && l.msg === 'the kubelet never picked up the plugin-watcher sockets; registering through kubelet.sock instead', 8000);
    assert.is(warned.pluginsRegistryDir, unwatched);
    await kubelet.waitForPlugin(RESOURCE);
    const after = await fetch(`${url.replace(/\/metrics$/, '')}/readyz`);
    assert.is(after.status, 200, await after.text());
    assert.match(await (await fetch(url)).text(), `vdpa_device_plugin_registered{resource="${RESOURCE}",mode="kubelet"} 1`);
    assert.is((await fetch(`${url.replace(/\/metrics$/, '')}/healthz`)).status, 200);
  } finally {
    await plugin.stop('SIGKILL');
    await kubelet.stop();
    rmSync(unwatched, { recursive: true, force: true });
    ws.cleanup();
  }
});

test.after(() => fx.cleanup());
test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CNI_BIN, DP_BIN } from '../support/paths.js';
import { run } from '../support/exec.js';

// env -i: no PATH, so no node to fall back on; the executables must carry their runtime.
const bare = (extra: Record<string, string> = {}) => ({ ...extra });

for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  test(`vdpa-cni VERSION answers for cniVersion ${v} without node on PATH`, async () => {
    const r = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION' }), input: JSON.stringify({ cniVersion: v }) });
    assert.is(r.code, 0, r.stderr);
    const answer = JSON.parse(r.stdout);
    assert.is(answer.cniVersion, v);
    assert.equal(answer.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  });
}

test('vdpa-cni VERSION with empty stdin answers with the latest version', async () => {
  const r = await run(CNI_BIN, [], { env: bare({ CNI_COMMAND: 'VERSION' }), input: '' });
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).cniVersion, '1.1.0');
});

test('vdpa-cni --help describes the plugin', async () => {
  const r = await run(CNI_BIN, ['--help'], { env: bare() });
  assert.is(r.code, 0);
  assert.match(r.stdout, /CNI_COMMAND/);
});

test('vdpa-device-plugin --help lists its flags without node on PATH', async () => {
  const r = await run(DP_BIN, ['--help'], { env: bare() });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /--help/);
});

test.run();

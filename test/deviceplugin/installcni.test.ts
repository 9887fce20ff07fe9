// `vdpa-device-plugin install-cni`, as the DaemonSet's init container runs it: the CNI executable
// lands in the given bin directory, whole and executable, replacing the old one by a rename.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CNI_BIN, DP_BIN } from '../support/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-cni-bin-'));
const install = (...args: string[]) => spawnSync(DP_BIN, ['install-cni', ...args], { encoding: 'utf8', env: {} });

test('installs over an old binary atomically; the result is the CNI, executable, nothing else left', () => {
  writeFileSync(join(dir, 'vdpa-cni'), 'old');
  const r = install('--bin-dir', dir, '--source', CNI_BIN);
  assert.is(r.status, 0, r.stderr);
  assert.ok(readFileSync(join(dir, 'vdpa-cni')).equals(readFileSync(CNI_BIN)));
  assert.is(statSync(join(dir, 'vdpa-cni')).mode & 0o777, 0o755);
  assert.equal(readdirSync(dir), ['vdpa-cni']);
  const version = spawnSync(join(dir, 'vdpa-cni'), [], { env: { CNI_COMMAND: 'VERSION' }, input: '', encoding: 'utf8' });
  assert.match(version.stdout, /"supportedVersions"/);
});

test('a missing directory or source fails (1) and leaves nothing; bad flags are 2; --help', () => {
  const missing = install('--bin-dir', join(dir, 'nope'), '--source', CNI_BIN);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /nope/);
  assert.not.ok(existsSync(join(dir, 'nope')));
  const nosrc = install('--bin-dir', dir, '--source', join(dir, 'absent'));
  assert.is(nosrc.status, 1);
  assert.equal(readdirSync(dir), ['vdpa-cni'], 'no temporary copy left');
  assert.is(install('--bogus').status, 2);
  assert.match(install('--help').stdout, /Usage: vdpa-device-plugin install-cni/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listStates, readState, removeState, StateError, statePath, writeState, type AttachmentState } from '../../host/state.js';

const stateDir = mkdtempSync(join(tmpdir(), 'vdpa-state-'));
const sample: AttachmentState = {
  network: 'net-a',
  containerId: 'abc.1',
  ifname: 'net 1',
  netns: '/run/netns/p',
  pciAddress: '0000:65:00.2',
  driver: 'virtio',
  netdev: 'eth5',
  netdevAlias: '',
  netdevMac: '02:00:00:00:00:05',
  netdevMtu: 1500,
  netdevIdentity: { ifindex: 7, parent: 'virtio/virtio3' },
  mark: 'vdpa-cni/x/eth5',
  representor: 'pf0vf0',
  representorMtu: 1500,
  lsp: null,
  bridge: 'br-int',
  ifaceId: 'ns_p',
  steps: ['ipam'],
  createdAt: new Date().toISOString(),
};

test('state: write, read, list, remove; no temp files left', () => {
  assert.is(readState(stateDir, 'abc.1', 'net 1'), null);
  writeState(stateDir, sample);
  writeState(stateDir, { ...sample, steps: ['ipam', 'netdev'] });
  assert.equal(readState(stateDir, 'abc.1', 'net 1')?.steps, ['ipam', 'netdev']);
  assert.equal(readdirSync(join(stateDir, 'attachments')), ['abc.1@net%201.json']);
  assert.is(listStates(stateDir).states.length, 1);
  removeState(stateDir, 'abc.1', 'net 1');
  removeState(stateDir, 'abc.1', 'net 1');
  assert.is(readState(stateDir, 'abc.1', 'net 1'), null);
});

test('state: a corrupt file is a StateError for read and a reported error for list', () => {
  writeState(stateDir, sample);
  writeFileSync(statePath(stateDir, 'bad', 'eth0'), '{"containerId": 1}');
  assert.throws(() => readState(stateDir, 'bad', 'eth0'), (e: unknown) => e instanceof StateError && /containerId/.test(String(e)));
  const { states, errors } = listStates(stateDir);
  assert.is(states.length, 1);
  assert.is(errors.length, 1);
});

test.after(() => rmSync(stateDir, { recursive: true, force: true }));
test.run();

// The CNI's SLIs: the built binary appends one outcome per call to its state directory, and the
// device plugin's exporter (deviceplugin/cnimetrics.ts) turns them into Prometheus metrics.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { registerCniMetrics } from '../../deviceplugin/cnimetrics.js';
import { bed, cni, sh } from '../support/cni.js';

const b = bed('q', { count: 2, legacy: true });
const conf = (vf: number) => ({ cniVersion: '1.0.0', name: 'slinet', type: 'vdpa-cni', deviceID: b.vfs[vf]!.pci, bridge: '' });

test('each call leaves one outcome line; the exporter counts calls by verb and code, durations, rollbacks', async () => {
  const pod = b.netns('a');
  const registry = new Registry();
  registerCniMetrics(registry, b.stateDir);
  assert.is((await cni(b, 'ADD', conf(0), { containerId: 'ok', netns: pod })).code, 0);
  assert.is((await cni(b, 'DEL', conf(0), { containerId: 'ok', netns: pod })).code, 0);
  assert.is((await cni(b, 'ADD', conf(0), { containerId: 'bad', netns: '/nonexistent' })).json?.code, 4);
  // The pod already has net1: the netdev step fails and ADD rolls back.
  sh('ip', ['-n', pod, 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'net1p']);
  assert.is((await cni(b, 'ADD', conf(1), { containerId: 'clash', netns: pod })).code, 1);
  const lines = readFileSync(join(b.stateDir, 'outcomes.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.map((l) => [l.verb, l.network, l.code, l.rollback]), [
    ['ADD', 'slinet', 0, false],
    ['DEL', 'slinet', 0, false],
    ['ADD', 'slinet', 4, false],
    ['ADD', 'slinet', 999, true],
  ]);
  const text = await registry.metrics();
  assert.match(text, 'vdpa_cni_operations_total{verb="ADD",network="slinet",code="0"} 1');
  assert.match(text, 'vdpa_cni_operations_total{verb="ADD",network="slinet",code="4"} 1');
  assert.match(text, 'vdpa_cni_operations_total{verb="ADD",network="slinet",code="999"} 1');
  assert.match(text, 'vdpa_cni_operations_total{verb="DEL",network="slinet",code="0"} 1');
  assert.match(text, 'vdpa_cni_rollbacks_total{network="slinet"} 1');
  assert.match(text, /vdpa_cni_operation_duration_seconds_count\{verb="ADD",network="slinet"\} 3/);
  // A second scrape sees only what is new.
  assert.is((await cni(b, 'DEL', conf(1), { containerId: 'clash', netns: pod })).code, 0);
  assert.match(await registry.metrics(), 'vdpa_cni_operations_total{verb="DEL",network="slinet",code="0"} 2');
});

test.after(() => b.cleanup());
test.run();

// build/manifests/alerts.yaml: its rules pass Prometheus' own `promtool check rules`, and
// `promtool test rules` (test/build/alerts.rules-test.yaml) shows each alert firing on its
// symptom in synthetic series and staying quiet on healthy ones.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runProcess } from '../../host/proc.js';
import { ROOT } from '../support/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-alerts-'));
const rule = parse(readFileSync(join(ROOT, 'build', 'manifests', 'alerts.yaml'), 'utf8')) as { kind: string; spec: { groups: unknown[] } };

test('the PrometheusRule holds the alerts the runbook documents', () => {
  assert.is(rule.kind, 'PrometheusRule');
  const names = (rule.spec.groups as { rules: { alert: string }[] }[]).flatMap((g) => g.rules.map((r) => r.alert));
  assert.equal(names, ['VdpaPoolNoHealthyDevice', 'VdpaCniAddFailing', 'VdpaCniAddSlow', 'VdpaDevicePluginNotRegistered', 'VdpaDiscoveryFailing']);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const n of names) assert.match(readme, `**${n}**`, `README has a runbook line for ${n}`);
});

test('promtool check rules, then promtool test rules on synthetic series', async () => {
  writeFileSync(join(dir, 'alerts.rules.yaml'), stringify({ groups: rule.spec.groups }));
  copyFileSync(join(ROOT, 'test', 'build', 'alerts.rules-test.yaml'), join(dir, 'alerts.rules-test.yaml'));
  const check = await runProcess('promtool', ['check', 'rules', join(dir, 'alerts.rules.yaml')]);
  assert.is(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout + check.stderr, 'SUCCESS: 5 rules found');
  const t = await runProcess('promtool', ['test', 'rules', join(dir, 'alerts.rules-test.yaml')]);
  assert.is(t.code, 0, t.stdout + t.stderr);
  assert.match(t.stdout + t.stderr, 'SUCCESS');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();

// build/manifests says what the demo does: the same pools, networks and pod addresses, flags the
// device plugin accepts, a policy `provision` accepts. The YAML is read with a few exact patterns
// (block scalars and plain keys), enough for these files and strict enough to fail on a change.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../../deviceplugin/config.js';
import { parseFlags } from '../../deviceplugin/flags.js';
import { parsePolicyText } from '../../deviceplugin/provision/policy.js';
import { podAddress, VHOST_NAD, VIRTIO_NAD, VIRTIO_RESOURCE } from '../../hack/demo/networks.js';
import { POOL_CONFIG } from '../../hack/sim/node.js';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../support/paths.js';

const manifest = (name: string) => readFileSync(join(ROOT, 'build', 'manifests', name), 'utf8');

/** The `key: |` block scalars in a YAML text, dedented, in file order. */
function blocks(text: string, key: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = new RegExp(`^(\\s*)${key.replaceAll('.', '\\.')}: \\|$`).exec(line);
    if (!m) return;
    const body: string[] = [];
    for (const next of lines.slice(i + 1)) {
      if (next.trim() !== '' && next.search(/\S/) <= m[1]!.length) break;
      body.push(next);
    }
    const indent = Math.min(...body.filter((l) => l.trim()).map((l) => l.search(/\S/)));
    out.push(body.map((l) => l.slice(indent)).join('\n').trim());
  });
  return out;
}

/** Every YAML document's kind, in order. */
const kinds = (text: string) => [...text.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);

test('device-plugin.yaml: the ConfigMap holds the demo pool config, valid for the plugin', () => {
  const text = manifest('device-plugin.yaml');
  assert.equal(kinds(text), ['ConfigMap', 'ConfigMap', 'DaemonSet']);
  const [config] = blocks(text, 'config.json');
  assert.equal(JSON.parse(config!), POOL_CONFIG);
  assert.equal(parseConfigText(config!).pools.map((p) => p.resource), ['vdpa-k8s.io/vdpa_virtio', 'vdpa-k8s.io/vdpa_vhost']);
});

test('device-plugin.yaml: the plugin flags parse; mounts cover every path they name', () => {
  const text = manifest('device-plugin.yaml');
  const args = [...text.matchAll(/^\s+- (--[a-z-]+=\S*)$/gm)].map((m) => m[1]!);
  const parsed = parseFlags(args, {});
  assert.ok(!parsed.help);
  const flags = parsed.flags;
  const mounts = [...text.matchAll(/mountPath: ([^,}\s]+)/g)].map((m) => m[1]!);
  for (const path of [flags.kubeletDir, flags.pluginsRegistryDir, flags.devinfoDir, flags.sysfsRoot, flags.devRoot, flags.cniStateDir, '/etc/vdpa-k8s']) {
    assert.ok(mounts.includes(path), `${path} is mounted`);
  }
  assert.is(flags.config, '/etc/vdpa-k8s/config.json');
  assert.is(flags.devinfoDir, '/var/run/k8s.cni.cncf.io/devinfo', "Multus' fixed DeviceInfo directory");
  assert.match(text, /args: \["install-cni", "--bin-dir", "\/host\/opt\/cni\/bin"\]/);
  assert.match(text, /\{ name: cni-bin, mountPath: \/host\/opt\/cni\/bin \}/);
  assert.match(text, /path: \/opt\/cni\/bin,/);
});

test('every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-models), the DaemonSet as a node needs it', async () => {
  const { ConfigMap, Namespace, Pod } = await import('kubernetes-models/v1');
  const { DaemonSet } = await import('kubernetes-models/apps/v1');
  const { PrometheusRule } = await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1');
  const models: Record<string, new (o: never) => { validate(): void }> = { ConfigMap, Namespace, Pod, DaemonSet, PrometheusRule };
  let validated = 0;
  for (const file of ['device-plugin.yaml', 'networks.yaml', 'pod.yaml', 'alerts.yaml']) {
    for (const doc of parseAllDocuments(manifest(file))) {
      const o = doc.toJS() as { kind: string; spec?: unknown };
      const Model = models[o.kind];
      if (o.kind === 'NetworkAttachmentDefinition') {
        // A CRD without models in the registry: its schema is apiVersion/kind/metadata/spec.config (a string).
        assert.type((o.spec as { config?: unknown }).config, 'string', `${file}: NAD spec.config`);
        continue;
      }
      assert.ok(Model, `${file}: no model for ${o.kind}`);
      try {
        new Model(o as never).validate();
      } catch (err) {
        assert.unreachable(`${file} ${o.kind}: ${(err as Error).message}`);
      }
      validated++;
    }
  }
  assert.is(validated, 6, "2 ConfigMaps, the DaemonSet, the Namespace, the Pod and the PrometheusRule");
  const ds = parseAllDocuments(manifest('device-plugin.yaml')).map((d) => d.toJS() as Record<string, never>).find((o) => o.kind === 'DaemonSet') as unknown as {
    spec: { updateStrategy: { type: string }; template: { spec: { hostNetwork: boolean; priorityClassName: string; tolerations: unknown[]; containers: { livenessProbe?: { httpGet: { path: string } }; readinessProbe?: { httpGet: { path: string } }; resources?: { requests?: unknown } }[] } } };
  };
  const pod = ds.spec.template.spec;
  assert.equal(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  assert.is(pod.priorityClassName, 'system-node-critical');
  assert.is(pod.hostNetwork, true);
  assert.is(ds.spec.updateStrategy.type, 'RollingUpdate');
  assert.is(pod.containers[0]!.livenessProbe?.httpGet.path, '/healthz');
  assert.is(pod.containers[0]!.readinessProbe?.httpGet.path, '/readyz');
  assert.ok(pod.containers[0]!.resources?.requests);
});

test('device-plugin.yaml: the provisioning policy is one `provision` accepts', () => {
  const [policy] = blocks(manifest('device-plugin.yaml'), 'policy.json');
  const p = parsePolicyText(policy!, 'policy.json');
  assert.equal(p.pfs.map((pf) => pf.vdpa.map((g) => [g.vdpaType, g.vfs])), [[['virtio', [0, 1]], ['vhost', [2, 3]]]]);
  assert.is(p.ovs?.hwOffload, true);
});

test('networks.yaml: the two NADs the demo attaches, config and resource annotation', () => {
  const text = manifest('networks.yaml');
  assert.equal(kinds(text), ['Namespace', 'NetworkAttachmentDefinition', 'NetworkAttachmentDefinition']);
  const configs = blocks(text, 'config').map((c) => JSON.parse(c) as unknown);
  assert.equal(configs, [JSON.parse(VIRTIO_NAD.spec.config), JSON.parse(VHOST_NAD.spec.config)]);
  const resources = [...text.matchAll(/k8s\.v1\.cni\.cncf\.io\/resourceName: (\S+)/g)].map((m) => m[1]);
  assert.equal(resources, [
    VIRTIO_NAD.metadata.annotations['k8s.v1.cni.cncf.io/resourceName'],
    VHOST_NAD.metadata.annotations['k8s.v1.cni.cncf.io/resourceName'],
  ]);
  const names = [...text.matchAll(/^  name: (\S+)$/gm)].map((m) => m[1]);
  assert.equal(names, ['demo', VIRTIO_NAD.metadata.name, VHOST_NAD.metadata.name]);
});

test('pod.yaml: asks for one virtio VF and the demo pod-a addresses on vdpa-virtio', () => {
  const text = manifest('pod.yaml');
  const [selection] = blocks(text, 'k8s.v1.cni.cncf.io/networks');
  const addr = podAddress('10.56.0.0/24', 0);
  assert.equal(JSON.parse(selection!), [{ name: VIRTIO_NAD.metadata.name, mac: addr.mac, ips: [addr.cidr] }]);
  assert.equal([...text.matchAll(/^\s+(\S+): "1"$/gm)].map((m) => m[1]), [VIRTIO_RESOURCE, VIRTIO_RESOURCE]);
});

test.run();

// One policy file for a cluster of different nodes: which policies select a node (by name, by
// labels from the Downward API's labels file, every node), how they merge on its devices by
// priority (overrides noted, equal-priority conflicts refused), PFs selected by vendor and
// device ID, and the plan each of two fixture nodes with different NICs gets from one file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PlanError } from '../../deviceplugin/provision/plan.js';
import { parsePolicyFile } from '../../deviceplugin/provision/policy.js';
import { mergePolicies, parseLabels, selectPolicies, type NodeIdentity } from '../../deviceplugin/provision/select.js';
import { discover } from '../../host/discover.js';
import { ROOT } from '../support/paths.js';
import { Bench, changes } from './harness.js';
import { FakeKernel } from './kernel.js';

const ALL_MODULES = ['vdpa', 'virtio_vdpa', 'vhost_vdpa', 'virtio_net', 'mlx5_vdpa'];

/** The example that ships with the repository: a floor for every ConnectX, one policy per NIC kind or node. */
const CLUSTER: unknown = JSON.parse(readFileSync(join(ROOT, 'hack', 'provision', 'policy.example.json'), 'utf8'));

const labels = (text: string) => parseLabels(text, 'labels');
const nodeA: NodeIdentity = { name: 'node-a', labels: labels('kubernetes.io/hostname="node-a"\nvdpa-k8s.io/nic="cx6dx"\n') };
const nodeB: NodeIdentity = { name: 'node-b', labels: labels('kubernetes.io/hostname="node-b"\nvdpa-k8s.io/nic="cx7"\n') };

/** A node with one ConnectX PF in legacy mode without VFs: 101d (ConnectX-6 Dx) or 1021 (ConnectX-7). */
const nicNode = (device: number) => new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8, device }] }, { modules: ALL_MODULES }));

test('the Downward API labels file: key="value" lines, quoted as Go quotes; anything else is refused by line', () => {
  assert.equal([...labels('a="1"\nvdpa-k8s.io/nic="cx7"\n\nq="say \\"hi\\""\n')], [
    ['a', '1'],
    ['vdpa-k8s.io/nic', 'cx7'],
    ['q', 'say "hi"'],
  ]);
  assert.throws(() => labels('a="1"\nb=2\n'), /labels:2: not a key="value" line/);
});

test('selection: by name, by labels, every node; what did not hold is said', () => {
  const file = parsePolicyFile(CLUSTER);
  const show = (n: NodeIdentity) => {
    const s = selectPolicies(file, n);
    return [s.matched.map((v) => `${v.policy.name}: ${v.why}`), s.skipped.map((v) => `${v.policy.name}: ${v.why}`)];
  };
  assert.equal(show(nodeA), [['cx6dx-nodes: vdpa-k8s.io/nic=cx6dx', 'connectx: every node'], ['node-b: nodeName is node-b']]);
  assert.equal(show(nodeB), [['node-b: nodeName node-b', 'connectx: every node'], ['cx6dx-nodes: matchLabels vdpa-k8s.io/nic=cx6dx (the node has vdpa-k8s.io/nic=cx7)']]);
  assert.equal(show({ name: null, labels: null }), [
    ['connectx: every node'],
    ['cx6dx-nodes: matchLabels vdpa-k8s.io/nic=cx6dx; this node\'s labels are unknown (--node-labels)', "node-b: nodeName is node-b; this node's name is unknown (--node or NODE_NAME)"],
  ]);
});

test('two nodes with different NICs, one file: each gets its own plan (dry-run), and converges to it', async () => {
  const a = nicNode(0x101d);
  const b = nicNode(0x1021);
  try {
    const dryA = await a.run('provision', parsePolicyFile(CLUSTER), true, { node: nodeA });
    assert.equal(dryA.changes, []);
    assert.equal(dryA.out.split('\n'), [
      'node node-a: 2 of 3 policies apply',
      '  + cx6dx-nodes (priority 20): vdpa-k8s.io/nic=cx6dx',
      '  + connectx (priority 99): every node',
      '  - node-b: nodeName is node-b',
      'provision plan: 7 steps',
      '   1. [cx6dx-nodes.pfs[0]@0000:65:00.0+connectx.pfs[0]@0000:65:00.0] set sriov_numvfs of pci/0000:65:00.0 to 4',
      '      undo: set sriov_numvfs of pci/0000:65:00.0 to 0',
      '   2. [cx6dx-nodes.pfs[0]@0000:65:00.0+connectx.pfs[0]@0000:65:00.0] put the eswitch of pci/0000:65:00.0 in switchdev mode (its VFs unbound meanwhile, then rebound)',
      '      undo: put the eswitch of pci/0000:65:00.0 in legacy mode (its VFs unbound meanwhile, then rebound)',
      '   3. [cx6dx-nodes.pfs[0]@0000:65:00.0+connectx.pfs[0]@0000:65:00.0] turn hw-tc-offload on on enp101s0f0np0',
      '      undo: turn hw-tc-offload off on enp101s0f0np0',
      '   4. [cx6dx-nodes.pfs[0].vdpa[0]] create vDPA device vdpa:0000:65:00.2 on pci/0000:65:00.2 (mac 02:00:00:00:6d:00, mtu 9000), bound to virtio_vdpa',
      '      undo: delete vDPA device vdpa:0000:65:00.2',
      '   5. [cx6dx-nodes.pfs[0].vdpa[0]] create vDPA device vdpa:0000:65:00.3 on pci/0000:65:00.3 (mac 02:00:00:00:6d:01, mtu 9000), bound to virtio_vdpa',
      '      undo: delete vDPA device vdpa:0000:65:00.3',
      '   6. [cx6dx-nodes.pfs[0].vdpa[1]] create vDPA device vdpa:0000:65:00.4 on pci/0000:65:00.4, bound to vhost_vdpa',
      '      undo: delete vDPA device vdpa:0000:65:00.4',
      '   7. [cx6dx-nodes.pfs[0].vdpa[1]] create vDPA device vdpa:0000:65:00.5 on pci/0000:65:00.5, bound to vhost_vdpa',
      '      undo: delete vDPA device vdpa:0000:65:00.5',
      '  note: connectx.pfs[0]@0000:65:00.0: numVfs 2 of pci/0000:65:00.0 is overridden by cx6dx-nodes.pfs[0]@0000:65:00.0 (priority 20): 4',
      '',
    ]);
    const dryB = await b.run('provision', parsePolicyFile(CLUSTER), true, { node: nodeB });
    assert.equal(dryB.out.split('\n').slice(0, 5), [
      'node node-b: 2 of 3 policies apply',
      '  + node-b (priority 10): nodeName node-b',
      '  + connectx (priority 99): every node',
      '  - cx6dx-nodes: matchLabels vdpa-k8s.io/nic=cx6dx (the node has vdpa-k8s.io/nic=cx7)',
      'provision plan: 6 steps',
    ]);
    assert.ok(dryB.out.includes('set sriov_numvfs of pci/0000:65:00.0 to 3'), dryB.out);
    assert.ok(dryB.out.includes('create vDPA device vdpa:0000:65:00.4 on pci/0000:65:00.4 (max_vqp 4), bound to vhost_vdpa'), dryB.out);
    assert.ok(dryB.out.includes('note: connectx.pfs[0]@0000:65:00.0: numVfs 2 of pci/0000:65:00.0 is overridden by node-b.pfs[0]@0000:65:00.0 (priority 10): 3'), dryB.out);

    for (const [bench, node, vdpa] of [
      [a, nodeA, ['virtio', 'virtio', 'vhost', 'vhost']],
      [b, nodeB, ['vhost', 'vhost', 'vhost']],
    ] as const) {
      await bench.run('provision', parsePolicyFile(CLUSTER), false, { node });
      assert.equal(
        bench.k.fx.vfs.map((vf) => vf.driver),
        vdpa,
      );
      assert.equal((await bench.run('provision', parsePolicyFile(CLUSTER), false, { node })).changes, [], 'and a second run changes nothing');
    }
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('a node no policy selects: nothing is done, and the dry-run says why', async () => {
  const b = nicNode(0x101d);
  try {
    const only = parsePolicyFile({ policies: [{ name: 'b-only', nodeSelector: { nodeName: 'node-b' }, pfs: [{ vendor: '15b3', numVfs: 1 }] }] });
    const { out, changes: c } = await b.run('provision', only, true, { node: nodeA });
    assert.equal(out.split('\n'), ['node node-a: no policy applies; nothing to do', '  - b-only: nodeName is node-b', 'provision plan: nothing to do', '']);
    assert.equal(c, []);
    assert.equal((await b.run('provision', only, false, { node: nodeA })).changes, []);
  } finally {
    b.cleanup();
  }
});

test('merging: a lower-priority group that shares a VF is dropped; equal priorities that disagree are refused, naming both', async () => {
  const b = new Bench(new FakeKernel({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }, { vfs: 0, switchdev: false, totalVfs: 8, device: 0x1021 }] }, { modules: ALL_MODULES }));
  try {
    const snapshot = discover({ sysfsRoot: b.k.sysfsRoot, devRoot: b.k.fx.devRoot });
    const merge = (file: unknown) => mergePolicies(selectPolicies(parsePolicyFile(file), nodeA).matched.map((v) => v.policy), snapshot);
    const dropped = merge({
      policies: [
        { name: 'low', pfs: [{ name: 'enp101s0f0np0', numVfs: 4, eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio' }, { vfs: '3', vdpaType: 'vhost' }] }] },
        { name: 'high', priority: 1, pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '1-2', vdpaType: 'vhost' }] }] },
      ],
    });
    assert.equal(dropped.problems, []);
    assert.equal(dropped.notes, ['low.pfs[0].vdpa[0]: dropped on pci/0000:65:00.0: VF 1 is in high.pfs[0].vdpa[0] (priority 1)']);
    const pf = dropped.policy.pfs[0]!;
    assert.equal([pf.at, pf.select, pf.numVfs, pf.vdpa.map((g) => `${g.at} ${g.vdpaType} ${g.vfs.join(',')}`)], [
      'high.pfs[0]+low.pfs[0]',
      { pciAddress: '0000:65:00.0' },
      4,
      ['high.pfs[0].vdpa[0] vhost 1,2', 'low.pfs[0].vdpa[1] vhost 3'],
    ]);

    const conflict = merge({
      policies: [
        { name: 'one', pfs: [{ vendor: '15b3', numVfs: 4 }], mgmtDevs: [{ mgmtDev: 'vdpasim_net', vdpaType: 'virtio' }] },
        { name: 'two', pfs: [{ vendor: '15b3', deviceID: '1021', numVfs: 2 }], mgmtDevs: [{ mgmtDev: 'vdpasim_net', vdpaType: 'vhost' }] },
      ],
    });
    assert.equal(conflict.problems, [
      'two.pfs[0]@0000:65:00.1 and one.pfs[0]@0000:65:00.1 set numVfs of pci/0000:65:00.1 to 2 and 4 at the same priority 99: give one of them a lower number (a higher priority)',
      'two.mgmtDevs[0] and one.mgmtDevs[0] set management device vdpasim_net differently at the same priority 99: give one of them a lower number (a higher priority)',
    ]);
    // The CLI path refuses it before anything is read from the devices.
    try {
      await b.run('provision', parsePolicyFile({ policies: [{ name: 'one', pfs: [{ vendor: '15b3', numVfs: 4 }] }, { name: 'two', pfs: [{ pciAddress: '0000:65:00.1', numVfs: 2 }] }] }), false, { node: nodeA });
      assert.unreachable('refused');
    } catch (err) {
      assert.instance(err, PlanError);
      assert.match((err as PlanError).message, 'two.pfs[0] and one.pfs[0]@0000:65:00.1 set numVfs of pci/0000:65:00.1 to 2 and 4 at the same priority 99');
    }
    assert.equal(changes(b.k.ops), []);

    // A vendor selector that matches nothing here is a note, not a refusal: other nodes have that NIC.
    const none = merge({ policies: [{ name: 'bf3', pfs: [{ vendor: '15b3', deviceID: 'a2dc', numVfs: 2 }] }] });
    assert.equal([none.policy.pfs, none.notes, none.problems], [[], ['bf3.pfs[0]: no PF with vendor 15b3 and device a2dc on this node'], []]);
  } finally {
    b.cleanup();
  }
});

test('policy files: the forms and their errors, each naming the field', () => {
  const top = parsePolicyFile({ pfs: [{ name: 'eth0', numVfs: 1 }] });
  assert.equal([top.policies.length, top.policies[0]!.name, top.policies[0]!.priority, top.policies[0]!.pfs[0]!.at], [1, null, 99, 'pfs[0]']);
  const cases: [unknown, string][] = [
    [{ policies: [] }, 'policies: names no policy'],
    [{ policies: [{ pfs: [{ name: 'eth0' }] }] }, 'policies[0].name: required'],
    [{ policies: [{ name: 'Big', pfs: [{ name: 'eth0' }] }] }, 'policies[0].name: must be lower-case letters'],
    [{ policies: [{ name: 'a', pfs: [{ name: 'eth0' }] }, { name: 'a', pfs: [{ name: 'eth1' }] }] }, 'policies[1].name: "a" is also the name of policies[0]'],
    [{ policies: [{ name: 'a' }] }, 'a: sets nothing'],
    [{ policies: [{ name: 'a', priority: 100, pfs: [{ name: 'eth0' }] }] }, 'a.priority: must be a whole number from 0 to 99'],
    [{ policies: [{ name: 'a', nodeSelector: { nodename: 'x' }, pfs: [{ name: 'eth0' }] }] }, 'a.nodeSelector.nodename: unknown key'],
    [{ policies: [{ name: 'a', nodeSelector: { matchLabels: { 'a b': 'x' } }, pfs: [{ name: 'eth0' }] }] }, 'a.nodeSelector.matchLabels: "a b" is not a label key'],
    [{ policies: [{ name: 'a', nodeSelector: { matchLabels: { k: 7 } }, pfs: [{ name: 'eth0' }] }] }, 'a.nodeSelector.matchLabels.k: must be a label value'],
    [{ policies: [{ name: 'a', pfs: [{ vendor: '15b3', deviceID: 'x' }] }] }, 'a.pfs[0].deviceID: must be four hex digits'],
    [{ policies: [{ name: 'a', pfs: [{ deviceID: '101d' }] }] }, 'a.pfs[0]: needs exactly one of pciAddress, name, devlink or vendor'],
    [{ policies: [{ name: 'a', pfs: [{ name: 'eth0', flowSteeringMode: 'fast' }] }] }, 'a.pfs[0].flowSteeringMode: must be "smfs" or "dmfs" or "hmfs"'],
    [{ policies: [{ name: 'a', ovs: { hwOffload: 1 } }] }, 'a.ovs.hwOffload: must be true or false'],
    [{ policies: [{ name: 'a', pfs: [{ name: 'eth0' }] }], pfs: [] }, 'policy.pfs: unknown key'],
  ];
  for (const [file, message] of cases) {
    assert.throws(
      () => parsePolicyFile(file),
      (err: Error) => err.name === 'PolicyError' && err.message.startsWith(message),
      `${JSON.stringify(file)} → ${message}`,
    );
  }
});

test.run();

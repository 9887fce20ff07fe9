// The planner on fixture trees: the plan for each kind of policy, and each refusal, with the host
// unchanged (the fake kernel recorded no write and no mutating tool run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy } from '../../deviceplugin/provision/policy.js';
import { Bench, changes, FOUR_VFS, refused, VFS } from './harness.js';
import { FakeKernel } from './kernel.js';

const ALL_MODULES = ['vdpa', 'virtio_vdpa', 'vhost_vdpa', 'virtio_net', 'mlx5_vdpa', 'vp_vdpa'];

function bench(...args: ConstructorParameters<typeof FakeKernel>): Bench {
  return new Bench(new FakeKernel(...args));
}

/** A PF whose VF i carries our device `vdpa:<VF>` of the given type (or nothing). */
function provisioned(types: readonly ('virtio' | 'vhost' | 'unbound' | 'none')[]) {
  return { pfs: [{ vfs: types.map((t, i) => (t === 'none' ? { vdpa: t } : { vdpa: t, vdpaName: `vdpa:${VFS[i]}` })) }] };
}

test('fresh PF in legacy mode: modules, VFs, switchdev, TC offload, then one vDPA device per VF with its undo', async () => {
  const b = bench({ pfs: [{ vfs: 0, switchdev: false, totalVfs: 8 }] });
  try {
    const plan = await b.plan(FOUR_VFS);
    assert.equal(
      plan.steps.map((s) => s.description),
      [
        'load kernel modules mlx5_vdpa, vdpa, vhost_vdpa, virtio_net, virtio_vdpa',
        'set sriov_numvfs of pci/0000:65:00.0 to 4',
        'put the eswitch of pci/0000:65:00.0 in switchdev mode (its VFs unbound meanwhile, then rebound)',
        'turn hw-tc-offload on on enp101s0f0np0',
        'create vDPA device vdpa:0000:65:00.2 on pci/0000:65:00.2 (mac 02:00:00:00:65:00, mtu 9000), bound to virtio_vdpa',
        'create vDPA device vdpa:0000:65:00.3 on pci/0000:65:00.3 (mac 02:00:00:00:65:01, mtu 9000), bound to virtio_vdpa',
        'create vDPA device vdpa:0000:65:00.4 on pci/0000:65:00.4 (max_vqp 2), bound to vhost_vdpa',
        'create vDPA device vdpa:0000:65:00.5 on pci/0000:65:00.5 (max_vqp 2), bound to vhost_vdpa',
      ],
    );
    const undo = plan.steps.map((s) => (s.journal && 'record' in s.journal ? `${s.journal.record} → ${s.journal.undo.kind}` : null));
    assert.equal(undo, [
      null,
      'numvfs:pci/0000:65:00.0 → set-numvfs',
      'eswitch:pci/0000:65:00.0 → set-eswitch',
      'hwtc:enp101s0f0np0 → set-hw-tc-offload',
      ...VFS.map((vf) => `vdpa-device:vdpa:${vf} → delete-vdpa`),
    ]);
    assert.equal(plan.steps[1]!.journal, { record: 'numvfs:pci/0000:65:00.0', undo: { kind: 'set-numvfs', device: 'pci/0000:65:00.0', to: 0 } });
    assert.equal(plan.steps[2]!.journal, { record: 'eswitch:pci/0000:65:00.0', undo: { kind: 'set-eswitch', device: 'pci/0000:65:00.0', mode: 'legacy' } });
    assert.equal(changes(b.k.ops), [], 'planning changes nothing');
  } finally {
    b.cleanup();
  }
});

test('a node that matches the policy plans nothing', async () => {
  const b = bench(provisioned(['virtio', 'virtio', 'vhost', 'vhost']), { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true } });
  try {
    const plan = await b.plan(FOUR_VFS);
    assert.equal(plan.steps, []);
    assert.equal(plan.notes, []);
  } finally {
    b.cleanup();
  }
});

test('half-provisioned node: only what is missing (an unbound VF, a device on the wrong driver, a missing device)', async () => {
  const b = bench(provisioned(['virtio', 'none', 'virtio', 'unbound']), { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true } });
  try {
    // A run that stopped between unbind and bind left VF 1 without its PCI driver.
    b.k.write(join(b.k.sysfsRoot, 'bus', 'pci', 'devices', VFS[1], 'driver', 'unbind'), VFS[1]);
    const plan = await b.plan(FOUR_VFS);
    assert.equal(
      plan.steps.map((s) => s.description),
      [
        `bind PCI function ${VFS[1]} to mlx5_core`,
        `create vDPA device vdpa:${VFS[1]} on pci/${VFS[1]} (mac 02:00:00:00:65:01, mtu 9000), bound to virtio_vdpa`,
        `bind vDPA device vdpa:${VFS[2]} to vhost_vdpa`,
        `bind vDPA device vdpa:${VFS[3]} to vhost_vdpa`,
      ],
    );
  } finally {
    b.cleanup();
  }
});

test('PF selected by its netdev name; more VFs on a PF that has some: 0 first is the kernel’s business, VF addresses from offset/stride', async () => {
  const b = bench({ pfs: [{ vfs: 2, vdpa: 'none', totalVfs: 8 }] }, { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true } });
  try {
    const plan = await b.plan(
      parsePolicy({ pfs: [{ name: 'enp101s0f0np0', numVfs: 3, eSwitchMode: 'switchdev', vdpa: [{ vfs: [2], vdpaType: 'vhost' }] }] }),
    );
    assert.equal(
      plan.steps.map((s) => s.description),
      ['set sriov_numvfs of pci/0000:65:00.0 to 3', 'create vDPA device vdpa:0000:65:00.4 on pci/0000:65:00.4, bound to vhost_vdpa'],
    );
  } finally {
    b.cleanup();
  }
});

test('two PFs: each its own steps; hwTcOffload false is left alone when already off', async () => {
  const b = bench({ pfs: [{ vfs: 0, switchdev: false }, { vfs: 0, switchdev: false }] }, { modules: ALL_MODULES });
  try {
    const plan = await b.plan(
      parsePolicy({
        pfs: [
          { pciAddress: '0000:65:00.0', numVfs: 1, eSwitchMode: 'switchdev', hwTcOffload: false, vdpa: [{ vfs: '0', vdpaType: 'virtio' }] },
          { pciAddress: '0000:65:00.1', numVfs: 2 },
        ],
      }),
    );
    // PF 1's VFs follow PF 0's 8 (sriov_totalvfs) in routing-ID order.
    assert.equal(
      plan.steps.map((s) => `${s.at} ${s.description}`),
      [
        'pfs[0] set sriov_numvfs of pci/0000:65:00.0 to 1',
        'pfs[0] put the eswitch of pci/0000:65:00.0 in switchdev mode (its VFs unbound meanwhile, then rebound)',
        'pfs[1] set sriov_numvfs of pci/0000:65:00.1 to 2',
        'pfs[0].vdpa[0] create vDPA device vdpa:0000:65:00.2 on pci/0000:65:00.2, bound to virtio_vdpa',
      ],
    );
  } finally {
    b.cleanup();
  }
});

test('vp_vdpa function: onto vp-vdpa (undo: back to its own driver), then its vDPA device', async () => {
  const b = bench({ pfs: [], plainFunction: { vdpa: 'unbound' } }, { modules: ['vdpa', 'virtio_vdpa', 'virtio_net'] });
  try {
    b.k.fx.removeVdpa(b.k.fx.plainFunction!.vdpa);
    b.k.plainFunctionOnVirtioPci();
    const plan = await b.plan(parsePolicy({ mgmtDevs: [{ mgmtDev: 'pci/0000:00:05.0', vdpaType: 'virtio', macBase: '02:00:00:00:05:00' }] }));
    assert.equal(
      plan.steps.map((s) => s.description),
      [
        'load kernel modules vp_vdpa',
        'bind PCI function 0000:00:05.0 to vp-vdpa',
        'create vDPA device vdpa:0000:00:05.0 on pci/0000:00:05.0 (mac 02:00:00:00:05:00), bound to virtio_vdpa',
      ],
    );
    assert.equal(plan.steps[1]!.journal, { record: 'pci:0000:00:05.0', undo: { kind: 'bind-pci', pci: '0000:00:05.0', driver: null } });
  } finally {
    b.cleanup();
  }
});

test('refused, nothing changed: numVfs above sriov_totalvfs', async () => {
  const b = bench({ pfs: [{ vfs: 0, totalVfs: 8 }] });
  try {
    assert.equal(await refused(b, parsePolicy({ pfs: [{ pciAddress: '0000:65:00.0', numVfs: 16 }] })), [
      'pfs[0].numVfs: 16 is above sriov_totalvfs 8 of pci/0000:65:00.0',
    ]);
    assert.equal(changes(b.k.ops), []);
  } finally {
    b.cleanup();
  }
});

test('refused, nothing changed: a vendor without vDPA support (ConnectX-5)', async () => {
  const b = bench({ pfs: [{ vfs: 0, switchdev: false }] });
  try {
    const uevent = join(b.k.pciDir('0000:65:00.0'), 'uevent');
    writeFileSync(uevent, readFileSync(uevent, 'utf8').replace('PCI_ID=15B3:101D', 'PCI_ID=15B3:1017'));
    const problems = await refused(b, FOUR_VFS);
    assert.is(problems.length, 1);
    assert.match(problems[0]!, /^pfs\[0\]\.vdpa: 0000:65:00\.0 \(15b3:1017, driver mlx5_core\) is of a vendor without vDPA support; supported: 15b3/);
    assert.equal(changes(b.k.ops), []);
  } finally {
    b.cleanup();
  }
});

test('refused at parse time: vdpaType without switchdev, and other bad fields named', () => {
  const cases: [unknown, string][] = [
    [{ pfs: [{ pciAddress: '0000:65:00.0', numVfs: 2, vdpa: [{ vfs: '0-1', vdpaType: 'virtio' }] }] }, 'pfs[0].vdpa[0].vdpaType: needs pfs[0].eSwitchMode "switchdev"'],
    [{ pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'legacy', vdpa: [{ vfs: '0', vdpaType: 'vhost' }] }] }, 'pfs[0].vdpa[0].vdpaType: needs pfs[0].eSwitchMode "switchdev"'],
    [{ pfs: [{ pciAddress: '0000:65:00.0', numVfs: 2, eSwitchMode: 'switchdev', vdpa: [{ vfs: '1-2', vdpaType: 'virtio' }] }] }, 'pfs[0].vdpa[0].vfs: VF 2 is not below numVfs 2'],
    [{ pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'vdpa' }] }] }, 'pfs[0].vdpa[0].vdpaType: must be "virtio" or "vhost"'],
    [{ pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio' }, { vfs: '1', vdpaType: 'vhost' }] }] }, 'pfs[0].vdpa[1].vfs: VF 1 is also in pfs[0].vdpa[0]'],
    [{ pfs: [{ pciAddress: '65:00.0' }] }, 'pfs[0].pciAddress: must be a PCI address'],
    [{ pfs: [{ pciAddress: '0000:65:00.0', name: 'eth0' }] }, 'pfs[0]: needs exactly one of pciAddress, name, devlink or vendor (got pciAddress and name)'],
    [{ pfs: [{ name: 'eth0', numVfs: -1 }] }, 'pfs[0].numVfs: must be a whole number from 0 to 1024, got -1'],
    [{ pfs: [{ name: 'eth0', numvfs: 2 }] }, 'pfs[0].numvfs: unknown key'],
    [{ pfs: [{ name: 'eth0', hwTcOffload: true }] }, 'pfs[0].hwTcOffload: needs eSwitchMode "switchdev"'],
    [{ pfs: [{ name: 'eth0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'virtio', macBase: '01:00:00:00:00:00' }] }] }, 'pfs[0].vdpa[0].macBase: "01:00:00:00:00:00" is a multicast address'],
    [{ pfs: [{ name: 'eth0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '3-1', vdpaType: 'virtio' }] }] }, 'pfs[0].vdpa[0].vfs: "3-1" is not a range'],
    [{ mgmtDevs: [{ mgmtDev: 'pci/0000:00:06.0', count: 2, vdpaType: 'virtio' }] }, 'mgmtDevs[0].count: must be a whole number from 1 to 1'],
    [{ mgmtDevs: [{ mgmtDev: 'vdpasim_net' }] }, 'mgmtDevs[0].vdpaType: required'],
    [{ ovs: { hwOffload: 'yes' } }, 'ovs.hwOffload: must be true or false'],
    [{ ovs: { hwOffload: true, restartCommand: [] } }, 'ovs.restartCommand: must name a program'],
    [{ pfs: [{ name: 'eth0' }, { name: 'eth0' }] }, 'pfs[1]: names the same device as pfs[0]'],
    [{}, 'policy: sets nothing'],
    [[], 'policy: must be an object, got a list'],
  ];
  for (const [policy, message] of cases) {
    assert.throws(
      () => parsePolicy(policy),
      (err: Error) => err.name === 'PolicyError' && err.message.startsWith(message),
      `${JSON.stringify(policy)} → ${message}`,
    );
  }
});

test('refused, nothing changed: a PF in use by a pool with allocated devices; new devices on free VFs are fine', async () => {
  const b = bench(provisioned(['virtio', 'none']), { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true } });
  try {
    const file = b.allocate(VFS[0]);
    const problems = await refused(b, FOUR_VFS);
    assert.equal(problems, [
      `pfs[0]: in use by a pool with allocated devices: ${VFS[0]} (${file}); changing numVfs from 2 to 4 would take them away from their pods`,
    ]);
    const moreDevices = parsePolicy({
      pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio' }] }],
    });
    assert.equal(
      (await b.plan(moreDevices)).steps.map((s) => s.description),
      [`create vDPA device vdpa:${VFS[1]} on pci/${VFS[1]}, bound to virtio_vdpa`],
    );
    const rebindAllocated = parsePolicy({ pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'vhost' }] }] });
    assert.match((await refused(b, rebindAllocated))[0]!, `binding vdpa:${VFS[0]} to vhost_vdpa would take them away`);
    assert.equal(changes(b.k.ops), []);
  } finally {
    b.cleanup();
  }
});

test('refused: a VF carrying a vDPA device this policy did not create; unknown PFs; eswitch on a device without one', async () => {
  const b = bench({ pfs: [{ vfs: [{ vdpa: 'virtio' }, { vdpa: 'none' }] }] }, { modules: ALL_MODULES, hwTc: { enp101s0f0np0: true } });
  try {
    const v0 = b.k.fx.vfs[0]!.vdpa[0]!;
    const problems = await refused(b, parsePolicy({ pfs: [{ pciAddress: '0000:65:00.0', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0-1', vdpaType: 'virtio' }] }] }));
    assert.equal(problems, [
      `pfs[0].vdpa[0]: ${VFS[0]} carries vDPA device ${v0}, which this policy did not create (one vDPA device per function); delete it first`,
    ]);
    assert.equal(
      await refused(
        b,
        parsePolicy({
          pfs: [
            { name: 'nosuch0', numVfs: 1 },
            { pciAddress: VFS[1], numVfs: 1 },
            { devlink: 'netdevsim/netdevsim99', eSwitchMode: 'switchdev' },
          ],
        }),
      ),
      [
        'pfs[0]: no PF has a netdev named nosuch0',
        `pfs[1]: ${VFS[1]} is a VF (of 0000:65:00.0), not a PF`,
        'pfs[2].eSwitchMode: devlink shows no eswitch on netdevsim/netdevsim99',
      ],
    );
    assert.equal(changes(b.k.ops), []);
  } finally {
    b.cleanup();
  }
});

test('refused: vDPA on a non-PCI eswitch; a management device that does not exist', async () => {
  const b = bench({ pfs: [] });
  try {
    b.k.eswitch.set('netdevsim/netdevsim7', 'legacy');
    const problems = await refused(
      b,
      parsePolicy({
        pfs: [{ devlink: 'netdevsim/netdevsim7', eSwitchMode: 'switchdev', vdpa: [{ vfs: '0', vdpaType: 'virtio' }] }],
        mgmtDevs: [{ mgmtDev: 'vdpa_blk_sim', vdpaType: 'vhost' }],
      }),
    );
    assert.equal(problems, [
      'pfs[0].vdpa: netdevsim/netdevsim7 is not a PCI device; its VFs cannot carry vDPA devices',
      'mgmtDevs[0].mgmtDev: no management device vdpa_blk_sim (vdpa mgmtdev show lists: none)',
    ]);
  } finally {
    b.cleanup();
  }
});

test('state file that is not ours to read is refused by name', async () => {
  const b = bench({ pfs: [] });
  try {
    writeFileSync(b.stateFile.replace('/state/provision.json', '/bad.json'), '{"version":1,"entries":[{"key":"x","at":"t","undo":{"kind":"set-numvfs","device":"pci/x","to":-1}}]}');
    const { ProvisionJournal } = await import('../../deviceplugin/provision/journal.js');
    assert.throws(() => ProvisionJournal.open(join(b.dir, 'bad.json')), /bad\.json: state\.entries\[0\]\.undo\.to: must be a whole number/);
    rmSync(join(b.dir, 'bad.json'));
  } finally {
    b.cleanup();
  }
});

test.run();

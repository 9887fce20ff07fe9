import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, parseConfig, parseConfigText } from '../../deviceplugin/config.js';
import { FlagError, helpText, parseFlags } from '../../deviceplugin/flags.js';
import { operatorNodeConfig } from './operator-config.js';

function error(raw: unknown): string {
  try {
    parseConfig(raw, 'default.io');
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

const pool = (extra: Record<string, unknown> = {}, selector: Record<string, unknown> = {}) => ({
  resourceName: 'vdpa',
  selectors: { vdpaType: 'virtio', ...selector },
  ...extra,
});

test('an incumbent netDevice config with every supported key parses into typed pools', () => {
  const config = parseConfig(
    {
      resourceList: [
        {
          resourceName: 'vdpa_mlx_virtio',
          resourcePrefix: 'example.com',
          deviceType: 'netDevice',
          excludeTopology: true,
          selectors: [
            {
              vendors: ['15b3'],
              devices: ['0x101E'],
              drivers: ['mlx5_core'],
              pciAddresses: ['65:00.2', '0000:65:00.3'],
              pfNames: ['ens1f0#0-3,7', 'ens1f1'],
              rootDevices: ['0000:65:00.0#1'],
              vdpaType: 'virtio',
              isRdma: false,
              needVhostNet: false,
            },
            { vdpaType: 'virtio', vendors: [] },
          ],
          additionalInfo: { '*': { net: 'a' }, '65:00.2': { net: 'b' } },
        },
        { resourceName: 'vdpa_vhost', selectors: { vdpaType: 'vhost' } },
      ],
    },
    'default.io',
  );
  assert.is(config.pools.length, 2);
  const [a, b] = config.pools;
  assert.is(a!.resource, 'example.com/vdpa_mlx_virtio');
  assert.is(a!.excludeTopology, true);
  assert.is(a!.selectors.length, 2);
  const s = a!.selectors[0]!;
  assert.equal(s.vendors, ['15b3']);
  assert.equal(s.devices, ['101e']);
  assert.equal(s.drivers, ['mlx5_core']);
  assert.equal(s.pciAddresses, ['0000:65:00.2', '0000:65:00.3']);
  assert.is(s.pfNames[0]!.pf, 'ens1f0');
  assert.equal([...s.pfNames[0]!.vfs!], [0, 1, 2, 3, 7]);
  assert.is(s.pfNames[1]!.vfs, null);
  assert.equal(s.rootDevices[0]!.pf, '0000:65:00.0');
  assert.equal([...s.rootDevices[0]!.vfs!], [1]);
  assert.is(s.vdpaType, 'virtio');
  assert.equal(a!.additionalInfo.get('*'), { net: 'a' });
  assert.equal(a!.additionalInfo.get('0000:65:00.2'), { net: 'b' });
  // A pool without resourcePrefix takes the default; one selector object is a list of one.
  assert.is(b!.resource, 'default.io/vdpa_vhost');
  assert.is(b!.excludeTopology, false);
  assert.is(b!.selectors.length, 1);
  assert.is(b!.selectors[0]!.vdpaType, 'vhost');
  assert.equal(b!.selectors[0]!.vendors, []);
});

test('vdpaType must be virtio or vhost; a pool that mixes vDPA and plain selectors is refused', () => {
  assert.is(
    error({ resourceList: [pool(), pool({ resourceName: 'b', selectors: [{ vdpaType: 'vdpa' }] })] }),
    'resourceList[1].selectors[0].vdpaType: must be "virtio" or "vhost"',
  );
  assert.is(
    error({ resourceList: [pool({ selectors: [{ vdpaType: 'virtio' }, { vendors: ['15b3'] }] })] }),
    'resourceList[0].selectors[1].vdpaType: required: another selector of this pool has one, and a pool is either vDPA or not',
  );
});

test('an operator-rendered ConfigMap loads: Go field names, linkTypes, SelectorObjs; the pools not served here are skipped, one warning each', () => {
  const config = parseConfigText(operatorNodeConfig('worker-0'), 'openshift.io');
  assert.equal(config.pools.map((p) => p.resource), ['openshift.io/vdpa_virtio', 'openshift.io/vdpa_vhost']);
  const [virtio, vhost] = config.pools;
  assert.equal({ ...virtio!.selectors[0]!, pfNames: virtio!.selectors[0]!.pfNames.map((m) => [m.pf, [...m.vfs!]]) }, {
    vendors: ['15b3'],
    devices: ['101e'],
    drivers: [],
    pciAddresses: [],
    pfNames: [['enp101s0f0np0', [0, 1]]],
    rootDevices: [],
    linkTypes: ['ether'],
    vdpaType: 'virtio',
  });
  assert.is(vhost!.excludeTopology, true);
  assert.equal(vhost!.selectors[0]!.rootDevices, [{ pf: '0000:65:00.0', vfs: null }]);
  assert.equal(config.warnings, [
    'resourceList[2] (resourceName "mlx_rdma") skipped: no selector has a vdpaType: a pool of plain VFs, for sriov-network-device-plugin',
    'resourceList[3] (resourceName "intel_dpdk") skipped: no selector has a vdpaType: a pool of plain VFs, for sriov-network-device-plugin',
  ]);
  // An older operator's SelectorObj, and a node with nothing for this plugin: it loads and serves nothing.
  const older = parseConfigText(operatorNodeConfig('worker-1'), 'openshift.io');
  assert.equal(older.pools, []);
  assert.is(older.warnings.length, 1);
  // Another device type is skipped whatever its selectors.
  const accel = parseConfig({ resourceList: [pool(), { resourceName: 'fpga', deviceType: 'accelerator', selectors: { vendors: ['8086'] } }] });
  assert.equal(accel.warnings, ['resourceList[1] (resourceName "fpga") skipped: deviceType "accelerator": only netDevice pools with a vdpaType are served here']);
});

test('keys match as Go matches them: any case, null as no value; the same key twice is refused', () => {
  const c = parseConfig({ resourceList: [{ ResourceName: 'vdpa', SELECTORS: { VdpaType: 'vhost', IsRdma: false, NeedVhostNet: null, pfnames: ['ens1f0'] }, excludeTopology: null }] }, 'a.io');
  assert.is(c.pools[0]!.resource, 'a.io/vdpa');
  assert.is(c.pools[0]!.selectors[0]!.vdpaType, 'vhost');
  assert.is(c.pools[0]!.selectors[0]!.pfNames[0]!.pf, 'ens1f0');
  assert.is(c.pools[0]!.excludeTopology, false);
  assert.is(error({ resourceList: [pool({}, { IsRdma: true })] }), 'resourceList[0].selectors.isRdma: cannot be combined with vdpaType');
  assert.is(error({ resourceList: [pool({}, { isRdma: false, IsRdma: false })] }), 'resourceList[0].selectors.IsRdma: given twice, as "isRdma" and "IsRdma"');
  // A vdpaType that is null or empty selects plain VFs, as in the incumbent: skipped.
  assert.equal(parseConfig({ resourceList: [pool({}, { vdpaType: '' })] }).pools, []);
});

test('linkTypes: "ether" is what a vDPA device is; a list without it selects nothing, with a warning', () => {
  assert.equal(parseConfig({ resourceList: [pool({}, { linkTypes: ['ether'] })] }).warnings, []);
  assert.equal(parseConfig({ resourceList: [pool({}, { linkTypes: ['infiniband'] })] }).warnings, [
    'resourceList[0].selectors.linkTypes: ["infiniband"] selects no vDPA device (their link type is "ether")',
  ]);
  assert.match(error({ resourceList: [pool({}, { linkTypes: 'ether' })] }), /^resourceList\[0\]\.selectors\.linkTypes: must be a list of strings/);
});

test('unknown keys are refused with the field path, a near miss is pointed out', () => {
  assert.is(error({ resourceList: [pool()], extra: 1 }), 'config.extra: unknown key (known: resourceList)');
  assert.match(error({ resourceList: [pool({ resourceNmae: 'x' })] }), /^resourceList\[0\]\.resourceNmae: unknown key; did you mean "resourceName"\?$/);
  assert.match(error({ resourceList: [pool({}, { vdpaTyp: 'virtio' })] }), /^resourceList\[0\]\.selectors\.vdpaTyp: unknown key; did you mean "vdpaType"\?/);
  assert.is(error({ resourceList: [pool({}, { ddpProfiles: ['gtp'] })] }), 'resourceList[0].selectors.ddpProfiles: not supported for vDPA pools');
  assert.is(error({ resourceList: [pool({}, { PKeys: ['0x1'] })] }), 'resourceList[0].selectors.PKeys: not supported for vDPA pools');
  assert.match(error({ resourceList: [pool({}, { color: 'red' })] }), /^resourceList\[0\]\.selectors\.color: unknown key \(known: vendors, /);
});

test('bad resource names and prefixes are refused', () => {
  assert.match(error({ resourceList: [pool({ resourceName: 'bad name' })] }), /^resourceList\[0\]\.resourceName: "bad name" must be 1-63 letters/);
  assert.match(error({ resourceList: [pool({ resourceName: 'a/b' })] }), /^resourceList\[0\]\.resourceName: "a\/b"/);
  assert.match(error({ resourceList: [pool({ resourceName: 'x'.repeat(64) })] }), /^resourceList\[0\]\.resourceName: /);
  assert.is(error({ resourceList: [{ selectors: { vdpaType: 'virtio' } }] }), 'resourceList[0].resourceName: required');
  assert.match(error({ resourceList: [pool({ resourceName: 7 })] }), /^resourceList\[0\]\.resourceName: must be a string, got 7$/);
  assert.match(error({ resourceList: [pool({ resourcePrefix: 'Example.COM' })] }), /^resourceList\[0\]\.resourcePrefix: "Example.COM" is not a DNS subdomain/);
  assert.match(error({ resourceList: [pool({ resourcePrefix: 'a_b.io' })] }), /^resourceList\[0\]\.resourcePrefix: /);
});

test('duplicate prefix/name pairs are refused, naming both entries', () => {
  assert.is(
    error({ resourceList: [pool({ resourcePrefix: 'a.io' }), pool({ resourceName: 'other' }), pool({ resourcePrefix: 'a.io' })] }),
    'resourceList[2].resourceName: "a.io/vdpa" is already defined by resourceList[0]',
  );
  // The same name under two prefixes is two resources; the default prefix counts as a prefix.
  assert.is(parseConfig({ resourceList: [pool({ resourcePrefix: 'a.io' }), pool({ resourcePrefix: 'b.io' })] }).pools.length, 2);
  assert.match(error({ resourceList: [pool(), pool({ resourcePrefix: 'default.io' })] }), /^resourceList\[1\]\.resourceName: "default\.io\/vdpa" is already defined/);
});

test('bad pfNames and rootDevices ranges are refused', () => {
  const bad = (pfNames: unknown) => error({ resourceList: [pool({}, { pfNames })] });
  assert.is(bad(['ens1f0#3-1']), 'resourceList[0].selectors.pfNames[0]: bad VF range "3-1" in "ens1f0#3-1": start 3 is greater than end 1');
  assert.is(bad(['ens1f0#']), 'resourceList[0].selectors.pfNames[0]: bad VF range "" in "ens1f0#": empty');
  assert.match(bad(['ens1f0#0-x']), /^resourceList\[0\]\.selectors\.pfNames\[0\]: bad VF range "0-x" in "ens1f0#0-x": "0-x" is not an index/);
  assert.match(bad(['ens1f0#1,,2']), /pfNames\[0\]: bad VF range "1,,2"/);
  assert.is(bad(['ens1f0#1#2']), 'resourceList[0].selectors.pfNames[0]: "ens1f0#1#2" has more than one "#"');
  assert.match(bad(['a-very-long-netdev-name']), /pfNames\[0\]: "a-very-long-netdev-name" is not a netdev name/);
  assert.match(bad('ens1f0'), /^resourceList\[0\]\.selectors\.pfNames: must be a list of strings, got "ens1f0"$/);
  assert.match(bad([1]), /^resourceList\[0\]\.selectors\.pfNames\[0\]: must be a string, got 1$/);
  assert.match(
    error({ resourceList: [pool({}, { rootDevices: ['0000:65:00.0#2-1'] })] }),
    /^resourceList\[0\]\.selectors\.rootDevices\[0\]: bad VF range "2-1"/,
  );
  assert.match(error({ resourceList: [pool({}, { rootDevices: ['ens1f0'] })] }), /rootDevices\[0\]: "ens1f0" is not a PCI address/);
});

test('other field values are checked and named', () => {
  const sel = (s: Record<string, unknown>) => error({ resourceList: [pool({}, s)] });
  assert.match(sel({ vendors: ['15b'] }), /^resourceList\[0\]\.selectors\.vendors\[0\]: "15b" is not a 4-digit hex ID/);
  assert.match(sel({ devices: ['zzzz'] }), /^resourceList\[0\]\.selectors\.devices\[0\]: /);
  assert.match(sel({ pciAddresses: ['65:00'] }), /^resourceList\[0\]\.selectors\.pciAddresses\[0\]: "65:00" is not a PCI address/);
  assert.match(sel({ drivers: ['mlx5 core'] }), /^resourceList\[0\]\.selectors\.drivers\[0\]: /);
  assert.is(sel({ isRdma: true }), 'resourceList[0].selectors.isRdma: cannot be combined with vdpaType');
  assert.is(sel({ needVhostNet: true }), 'resourceList[0].selectors.needVhostNet: cannot be combined with vdpaType');
  assert.match(sel({ isRdma: 'no' }), /^resourceList\[0\]\.selectors\.isRdma: must be true or false/);
  assert.match(error({ resourceList: [pool({ excludeTopology: 'yes' })] }), /^resourceList\[0\]\.excludeTopology: must be true or false/);
  assert.is(error({ resourceList: [pool({ selectors: [] })] }), 'resourceList[0].selectors: must hold at least one selector');
  assert.is(error({ resourceList: [pool({ selectors: undefined })] }), 'resourceList[0].selectors: required');
  assert.match(error({ resourceList: [pool({ selectors: ['virtio'] })] }), /^resourceList\[0\]\.selectors\[0\]: must be an object, got "virtio"$/);
  assert.match(error({ resourceList: [pool({ additionalInfo: { eth0: {} } })] }), /^resourceList\[0\]\.additionalInfo\["eth0"\]: keys must be "\*" or a device PCI address$/);
  assert.match(error({ resourceList: [pool({ additionalInfo: { '*': { a: 1 } } })] }), /^resourceList\[0\]\.additionalInfo\["\*"\]\.a: must be a string/);
});

test('the document itself: resourceList present, non-empty, JSON syntax', () => {
  assert.is(error([]), 'config: must be an object, got a list');
  assert.is(error({}), 'resourceList: must be a list of pools, got undefined');
  assert.is(error({ resourceList: [] }), 'resourceList: must hold at least one pool');
  assert.is(error({ resourceList: [null] }), 'resourceList[0]: must be an object, got null');
  assert.throws(() => parseConfigText('{"resourceList": [', 'a.io'), (e: Error) => e instanceof ConfigError && /^config: not valid JSON: /.test(e.message));
});

test('flags: defaults, both spellings, env defaults for host paths, errors', () => {
  const parsed = parseFlags([], {});
  assert.is(parsed.help, false);
  if (parsed.help) return;
  assert.equal(parsed.flags, {
    config: '/etc/vdpa-k8s/config.json',
    resourcePrefix: 'intel.com',
    kubeletDir: '/var/lib/kubelet/device-plugins',
    podResourcesSocket: '/var/lib/kubelet/pod-resources/kubelet.sock',
    pluginsRegistryDir: '/var/lib/kubelet/plugins_registry',
    registration: 'auto',
    watcherGraceMs: 20_000,
    devinfoDir: '/var/run/k8s.cni.cncf.io/devinfo',
    sysfsRoot: '/sys',
    devRoot: '/dev',
    metricsAddr: { host: '127.0.0.1', port: 9402 },
    logLevel: 'info',
    cniStateDir: '/var/lib/cni/vdpa-k8s',
    cdi: false,
    cdiDir: '/var/run/cdi',
  });
  const given = parseFlags(
    ['--config=/c.json', '--resource-prefix', 'example.com', '--registration', 'watcher', '--metrics-addr=', '--log-level', 'debug'],
    { VDPA_SYSFS_ROOT: '/fx/sys', VDPA_DEV_ROOT: '/fx/dev', VDPA_DEVINFO_DIR: '/fx/devinfo' },
  );
  assert.ok(!given.help);
  if (given.help) return;
  assert.is(given.flags.config, '/c.json');
  assert.is(given.flags.resourcePrefix, 'example.com');
  assert.is(given.flags.registration, 'watcher');
  assert.is(given.flags.metricsAddr, null);
  assert.is(given.flags.logLevel, 'debug');
  assert.is(given.flags.sysfsRoot, '/fx/sys');
  assert.is(given.flags.devRoot, '/fx/dev');
  assert.is(given.flags.devinfoDir, '/fx/devinfo');
  const v6 = parseFlags(['--metrics-addr', '[::1]:9500'], {});
  assert.equal(!v6.help && v6.flags.metricsAddr, { host: '::1', port: 9500 });
  const any = parseFlags(['--metrics-addr', ':9500'], {});
  assert.equal(!any.help && any.flags.metricsAddr, { host: '', port: 9500 });
  assert.equal(parseFlags(['--log-level', 'info', '--help']), { help: true });
  // The pod resources socket follows --kubelet-dir unless given; --cdi alone means true.
  const beside = parseFlags(['--kubelet-dir', '/k/device-plugins/', '--cdi', '--cdi-dir', '/run/cdi'], {});
  assert.equal(!beside.help && [beside.flags.podResourcesSocket, beside.flags.cdi, beside.flags.cdiDir], ['/k/pod-resources/kubelet.sock', true, '/run/cdi']);
  const own = parseFlags(['--kubelet-dir', '/k/dp', '--pod-resources-socket', '/pr.sock', '--cdi=false'], {});
  assert.equal(!own.help && [own.flags.podResourcesSocket, own.flags.cdi], ['/pr.sock', false]);

  const refused = (argv: string[], re: RegExp) => assert.throws(() => parseFlags(argv, {}), (e: Error) => e instanceof FlagError && re.test(e.message));
  refused(['--registration', 'both'], /^--registration: must be auto, kubelet or watcher, got "both"$/);
  refused(['--log-level', 'trace'], /^--log-level: must be one of debug, info, warn, error/);
  refused(['--metrics-addr', 'localhost'], /^--metrics-addr: "localhost" is not HOST:PORT/);
  refused(['--metrics-addr', ':99999'], /^--metrics-addr: /);
  refused(['--resource-prefix', 'Bad_Prefix'], /^--resource-prefix: "Bad_Prefix" is not a DNS subdomain/);
  refused(['--kubelet-dir'], /^--kubelet-dir needs a value/);
  refused(['--kubelet-dir='], /^--kubelet-dir: must not be empty$/);
  refused(['--cdi=yes'], /^--cdi: must be true or false, got "yes"$/);
  refused(['--nope'], /^unknown flag --nope/);
  refused(['stray'], /^unexpected argument "stray"/);
});

test('--help lists every flag with its default', () => {
  const help = helpText({});
  for (const flag of ['config', 'resource-prefix', 'kubelet-dir', 'pod-resources-socket', 'plugins-registry-dir', 'registration', 'devinfo-dir', 'sysfs-root', 'dev-root', 'metrics-addr', 'log-level', 'cdi', 'cdi-dir', 'help']) {
    assert.match(help, `--${flag} `);
  }
  assert.match(help, '(default "/var/lib/kubelet/device-plugins")');
  assert.match(help, '(default "/var/lib/kubelet/pod-resources/kubelet.sock")');
  assert.match(help, '(default "127.0.0.1:9402")');
});

test.run();

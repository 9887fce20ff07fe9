import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCniArgs } from '../../cni/args.js';
import { CniError } from '../../cni/errors.js';
import { ifaceIdOf, parseDuration, parseEnv, parseNetConf, type Command } from '../../cni/netconf.js';

const base = { cniVersion: '1.0.0', name: 'net1', type: 'vdpa-cni' };
const conf = (extra: Record<string, unknown> = {}, cmd: Command = 'ADD') =>
  parseNetConf(JSON.stringify({ ...base, ...extra }), cmd);

function fails(fn: () => unknown, code: number, pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, CniError);
    assert.is((err as CniError).code, code, (err as Error).message);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected code ${code} ${pattern}`);
}

test('defaults', () => {
  const c = conf();
  assert.is(c.bridge, 'br-int');
  assert.is(c.ovsdb, 'unix:/var/run/openvswitch/db.sock');
  assert.equal(c.ovn, { mode: 'external', ifaceId: 'vdpa-{network}_{namespace}_{pod}', waitInstalled: true, timeoutMs: 30_000 });
  assert.is(c.deviceId, null);
  assert.is(c.ipamType, null);
  assert.is(c.logLevel, 'info');
});

test('deviceID: top level (Multus) or runtimeConfig, lower-cased; a conflict is an error', () => {
  assert.is(conf({ deviceID: '0000:65:00.2' }).deviceId, '0000:65:00.2');
  assert.is(conf({ runtimeConfig: { deviceID: '0000:65:0A.2' } }).deviceId, '0000:65:0a.2');
  fails(() => conf({ deviceID: 'eth0' }), 7, /^deviceID: "eth0" is not a PCI address/);
  fails(
    () => conf({ deviceID: '0000:65:00.2', runtimeConfig: { deviceID: '0000:65:00.3' } }),
    7,
    /deviceID: .*disagrees with runtimeConfig.deviceID/,
  );
});

test('mac: runtimeConfig.mac wins; bad values name the field', () => {
  assert.is(conf({ mac: '02:00:00:00:00:01', runtimeConfig: { mac: '02:AA:00:00:00:02' } }).mac, '02:aa:00:00:00:02');
  fails(() => conf({ mac: 'zz' }), 7, /^mac: "zz" is not a MAC/);
  fails(() => conf({ runtimeConfig: { mac: '01:00:00:00:00:01' } }), 7, /^runtimeConfig.mac: .*multicast/);
});

test('field errors name the field and use code 7', () => {
  fails(() => conf({ mtu: 20 }), 7, /^mtu: must be an integer from 68 to 65535/);
  fails(() => conf({ bridge: 'br int' }), 7, /^bridge:/);
  fails(() => conf({ ovsdb: 'db.sock' }), 7, /^ovsdb:/);
  fails(() => conf({ ovn: { timeout: 'soon' } }), 7, /^ovn.timeout:/);
  fails(() => conf({ ovn: { ifaceId: '{ns}_{pod}' } }), 7, /^ovn.ifaceId: unknown placeholder \{ns\}/);
  fails(() => conf({ ovn: { waitInstalled: 'yes' } }), 7, /^ovn.waitInstalled: must be true or false/);
  fails(() => conf({ logLevel: 'trace' }), 7, /^logLevel:/);
  fails(() => conf({ logFile: 'rel.log' }), 7, /^logFile:/);
  fails(() => conf({ ipam: { type: '../x' } }), 7, /^ipam.type:/);
  fails(() => conf({ name: undefined }), 7, /^name: is required/);
  fails(() => conf({ prevResult: { ips: [{ address: '10.0.0.1' }] } }, 'CHECK'), 7, /^prevResult.ips\[0\].address/);
});

test('decode errors are code 6, version errors code 1', () => {
  fails(() => parseNetConf('{', 'ADD'), 6, /not valid JSON/);
  fails(() => parseNetConf('[]', 'ADD'), 7, /network config: must be an object/);
  fails(() => conf({ cniVersion: '0.2.0' }), 1, /cniVersion: "0.2.0" is not supported/);
  fails(() => conf({ cniVersion: undefined }), 1, /cniVersion: missing/);
  fails(() => conf({}, 'CHECK') && conf({ cniVersion: '0.3.1' }, 'CHECK'), 1, /CHECK is not supported in cniVersion 0.3.1/);
  fails(() => conf({ cniVersion: '1.0.0' }, 'STATUS'), 1, /STATUS/);
});

test('GC needs the valid attachments (either key)', () => {
  const v11 = { cniVersion: '1.1.0' };
  fails(() => conf(v11, 'GC'), 7, /cni.dev\/valid-attachments: is required/);
  assert.equal(conf({ ...v11, 'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }] }, 'GC').validAttachments, [
    { containerId: 'a', ifname: 'eth0' },
  ]);
  fails(() => conf({ ...v11, 'cni.dev/valid-attachments': [{ containerID: 1 }] }, 'GC'), 7, /valid-attachments\[0\].containerID/);
});

test('environment: code 4 naming the variable', () => {
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/a:/b' };
  assert.equal(parseEnv(env).path, ['/a', '/b']);
  fails(() => parseEnv({ ...env, CNI_COMMAND: 'FOO' }), 4, /^CNI_COMMAND/);
  fails(() => parseEnv({ ...env, CNI_CONTAINERID: '' }), 4, /^CNI_CONTAINERID: required/);
  fails(() => parseEnv({ ...env, CNI_CONTAINERID: '-x' }), 4, /^CNI_CONTAINERID/);
  fails(() => parseEnv({ ...env, CNI_NETNS: 'x' }), 4, /^CNI_NETNS/);
  fails(() => parseEnv({ ...env, CNI_IFNAME: 'a-very-long-interface' }), 4, /^CNI_IFNAME: .*longer than 15/);
  fails(() => parseEnv({ ...env, CNI_IFNAME: 'a/b' }), 4, /^CNI_IFNAME/);
  assert.is(parseEnv({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '');
  assert.is(parseEnv({ CNI_COMMAND: 'STATUS' }).command, 'STATUS');
});

test('CNI_ARGS: known keys, IgnoreUnknown, malformed pairs', () => {
  const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;FOO=bar');
  assert.equal(a, { podNamespace: 'ns', podName: 'p', podUid: 'u', infraContainerId: null });
  fails(() => parseCniArgs('FOO=bar'), 4, /unknown key "FOO"/);
  fails(() => parseCniArgs('K8S_POD_NAME'), 4, /not KEY=VALUE/);
});

test('iface-id template: every placeholder, and missing values name their source', () => {
  const env = parseEnv({
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/x',
    CNI_IFNAME: 'net1',
    CNI_ARGS: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u',
  });
  const c = conf({ ovn: { ifaceId: '{network}_{namespace}_{pod}_{podUID}_{containerID}_{ifname}' } });
  assert.is(ifaceIdOf(c, env), 'net1_ns_p_u_c1_net1');
  const podman = parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p' });
  fails(() => ifaceIdOf(conf(), podman), 7, /needs \{namespace\}, but CNI_ARGS has no K8S_POD_NAMESPACE/);
  assert.is(ifaceIdOf(conf({ ovn: { ifaceId: 'pod_{pod}' } }), podman), 'pod_p');
  assert.is(ifaceIdOf(conf(), env), 'vdpa-net1_ns_p', 'the default names no port ovn-kubernetes would name');
  assert.is(ifaceIdOf(conf({ ovn: { mode: 'ovn-kubernetes' } }), env), 'ns_p', "ovn-k's name on the default network");
  assert.is(ifaceIdOf(conf({ ovn: { mode: 'ovn-kubernetes', network: 'ovnt/l2-net' } }), env), 'ovnt.l2.net_ns_p', 'and on a secondary one');
});

test('ovn.mode: each mode takes its own keys and refuses the others\'', () => {
  assert.equal(conf({ ovn: { mode: 'managed', logicalSwitch: 'ls0' } }).ovn, {
    mode: 'managed', ifaceId: 'vdpa-{network}_{namespace}_{pod}', logicalSwitch: 'ls0', nbdb: 'unix:/var/run/ovn/ovnnb_db.sock', waitInstalled: true, timeoutMs: 30_000,
  });
  fails(() => conf({ ovn: { mode: 'managed' } }), 7, /^ovn\.logicalSwitch: is required in ovn\.mode "managed"/);
  fails(() => conf({ ovn: { mode: 'managed', logicalSwitch: 'ls0', nbdb: 'ovnnb' } }), 7, /^ovn\.nbdb: "ovnnb" /);
  fails(() => conf({ ovn: { mode: 'bogus' } }), 7, /^ovn\.mode: "bogus" must be one of external, managed, ovn-kubernetes/);
  fails(() => conf({ ovn: { logicalSwitch: 'ls0' } }), 7, /^ovn\.logicalSwitch: is not used in ovn\.mode "external"/);
  fails(() => conf({ ipam: { type: 'static' }, ovn: { mode: 'ovn-kubernetes' } }), 7, /^ipam: must not be set in ovn\.mode "ovn-kubernetes"/);
  fails(() => conf({ ovn: { mode: 'ovn-kubernetes', ifaceId: '{pod}' } }), 7, /^ovn\.ifaceId: is not used in ovn\.mode "ovn-kubernetes"/);
  fails(() => conf({ ovn: { mode: 'ovn-kubernetes', network: 'Not/Valid_' } }), 7, /^ovn\.network: "Not\/Valid_" must be "default" or the namespace\/name/);
  fails(() => conf({ bridge: '', ovn: { mode: 'ovn-kubernetes' } }), 7, /^bridge: must name the integration bridge/);
  fails(() => conf({ kubeconfig: 'kube.yaml', ovn: { mode: 'ovn-kubernetes' } }), 7, /^kubeconfig: "kube\.yaml" must be an absolute path/);
  assert.equal(conf({ ovn: { mode: 'ovn-kubernetes', annotationTimeout: '5s' } }).ovn, { mode: 'ovn-kubernetes', network: 'default', annotationTimeoutMs: 5000, waitInstalled: true, timeoutMs: 30_000 });
});

test('durations', () => {
  assert.is(parseDuration('30s'), 30_000);
  assert.is(parseDuration('250ms'), 250);
  assert.is(parseDuration('1.5m'), 90_000);
  assert.is(parseDuration('5'), null);
});

test.run();

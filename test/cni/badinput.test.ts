// Each kind of bad input: the spec error JSON with the right code on stdout, a message naming the
// field, a non-zero exit, logs on stderr, and the host exactly as it was (links, pod netns, state).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bed, cni, hostLocal, hostView, link, sh } from '../support/cni.js';

const b = bed('b', { count: 2 });
const legacy = bed('c', { count: 1, legacy: true });
const pod = b.netns('pod');
const vf = b.vfs[0]!;
const good = { cniVersion: '1.0.0', name: 'bad', type: 'vdpa-cni', deviceID: vf.pci, bridge: '' };

interface Case {
  name: string;
  conf?: object | string;
  env?: Record<string, string>;
  netns?: string;
  ifname?: string;
  args?: string;
  code: number;
  msg: RegExp;
  setup?: () => void;
  bed?: typeof b;
}

const cases: Case[] = [
  { name: 'stdin is not JSON', conf: '{"cniVersion":', code: 6, msg: /not valid JSON/ },
  { name: 'unsupported cniVersion', conf: { ...good, cniVersion: '0.2.0' }, code: 1, msg: /cniVersion: "0.2.0"/ },
  { name: 'CHECK in 0.3.1', conf: { ...good, cniVersion: '0.3.1' }, env: { CNI_COMMAND: 'CHECK' }, code: 1, msg: /CHECK is not supported/ },
  { name: 'unknown CNI_COMMAND', env: { CNI_COMMAND: 'ATTACH' }, code: 4, msg: /^CNI_COMMAND/ },
  { name: 'missing CNI_CONTAINERID', env: { CNI_CONTAINERID: '' }, code: 4, msg: /^CNI_CONTAINERID: required/ },
  { name: 'bad CNI_IFNAME', ifname: 'this-name-is-too-long', code: 4, msg: /^CNI_IFNAME/ },
  { name: 'netns that does not exist', netns: '/run/netns/no-such-pod', code: 4, msg: /^CNI_NETNS: .* is not a network namespace/ },
  { name: 'netns that is a plain file', netns: '/etc/hostname', code: 4, msg: /^CNI_NETNS/ },
  { name: 'unknown CNI_ARGS key', args: 'FOO=1', code: 4, msg: /CNI_ARGS: unknown key "FOO"/ },
  { name: 'deviceID not a PCI address', conf: { ...good, deviceID: 'eth0' }, code: 7, msg: /^deviceID: "eth0"/ },
  { name: 'no deviceID at all', conf: { ...good, deviceID: undefined }, code: 7, msg: /^deviceID: required/ },
  { name: 'deviceID with no vDPA device', conf: { ...good, deviceID: '0000:99:00.1' }, code: 7, msg: /deviceID 0000:99:00.1 has no usable vDPA device/ },
  { name: 'bad mac', conf: { ...good, mac: '02:00' }, code: 7, msg: /^mac: / },
  { name: 'bad mtu', conf: { ...good, mtu: 9 }, code: 7, msg: /^mtu: / },
  { name: 'bad ovn.timeout', conf: { ...good, ovn: { timeout: 5 } }, code: 7, msg: /^ovn.timeout/ },
  {
    name: 'iface-id needs the namespace, podman sends none',
    conf: { ...good, bridge: 'br-int' },
    args: 'IgnoreUnknown=1;K8S_POD_NAME=p',
    code: 7,
    msg: /ovn.ifaceId: "vdpa-\{network\}_\{namespace\}_\{pod\}" needs \{namespace\}, but CNI_ARGS has no K8S_POD_NAMESPACE/
  },
  {
    name: 'OVS plugging of a device without a representor',
    conf: { ...good, deviceID: legacy.vfs[0]!.pci, bridge: 'br-int' },
    code: 7,
    msg: /device 0000:65:00.2 \(vdpa0\) has no VF representor/,
    bed: legacy,
  },
  { name: 'IPAM plugin not in CNI_PATH', conf: { ...good, ipam: { type: 'nope' } }, code: 7, msg: /ipam.type: no executable "nope"/ },
  {
    name: 'IPAM fails after the state was written (rolled back)',
    conf: { ...good, ipam: { type: 'host-local', ranges: [[{ subnet: 'not-a-subnet' }]] } },
    code: 999,
    msg: /ipam host-local ADD/,
  },
  {
    name: 'the pod already has the interface name (netdev moved, then rolled back)',
    setup: () => sh('ip', ['-n', pod, 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'net1p']),
    conf: { ...good, ipam: hostLocal(b, '10.80.0.0/24') },
    code: 999,
    msg: /net1/,
  },
  {
    name: 'a DeviceInfo file that does not exist is no hint, so a bad device fails clean',
    conf: { ...good, deviceID: '0000:98:00.1', runtimeConfig: { CNIDeviceInfoFile: '/nonexistent/devinfo.json' } },
    code: 7,
    msg: /0000:98:00.1 has no usable vDPA device/,
  },
];

for (const c of cases) {
  test(`bad input: ${c.name} → code ${c.code}, host unchanged`, async () => {
    const bb = c.bed ?? b;
    c.setup?.();
    const before = hostView(bb, [pod]);
    const r = await cni(bb, c.env?.CNI_COMMAND ?? 'ADD', c.conf ?? good, {
      containerId: 'bad1',
      netns: c.netns ?? pod,
      ifname: c.ifname,
      ...(c.args ? { args: c.args } : {}),
      env: c.env,
    });
    assert.is.not(r.code, 0);
    assert.ok(r.json, `error JSON on stdout: ${r.stdout} ${r.stderr}`);
    assert.is(r.json!.code, c.code, r.stdout);
    assert.match(String(r.json!.msg), c.msg);
    assert.ok(r.stderr.includes('"level":"error"'), 'logged on stderr');
    assert.is(hostView(bb, [pod]), before);
    if (c.setup) sh('ip', ['-n', pod, 'link', 'del', 'net1']);
  });
}

test('logFile receives the same JSON lines', async () => {
  const file = join(b.dir, 'cni.log');
  writeFileSync(file, '');
  const r = await cni(b, 'ADD', { ...good, deviceID: '0000:99:00.1', logFile: file }, { containerId: 'bad2', netns: pod });
  assert.is(r.code, 1);
  const { readFileSync } = await import('node:fs');
  assert.match(readFileSync(file, 'utf8'), /"level":"error".*0000:99:00.1/);
  assert.ok(link(null, vf.netdev));
});

test.after(() => {
  b.cleanup();
  legacy.cleanup();
});
test.run();

// podman 4.3 (libcni, network_backend = "cni") as a real runtime: a busybox container gets the
// VF's netdev as eth0 through a conflist, pings an OVN peer, and podman's own cleanup runs DEL.
// The host's own eth0 must survive a pod-side eth0 going home. containers.conf is restored and
// the conflist removed afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bed, link, sh, shOk } from '../support/cni.js';
import { run } from '../support/exec.js';
import { ensureOvn, OvnRun, ovsPort } from '../support/ovn.js';
import { CNI_BIN } from '../support/paths.js';

const CONF = '/etc/containers/containers.conf';
const hasPodman = shOk('podman', ['--version']);

test('podman runs a container on the VF through OVN, and its cleanup returns the VF', async () => {
  if (!hasPodman) {
    assert.unreachable('podman is not installed: run hack/setup.sh');
    return;
  }
  await ensureOvn();
  const ovn = new OvnRun();
  const b = bed('m', { count: 1 });
  const vf = b.vfs[0]!;
  const net = `${ovn.prefix}vdpa`;
  const conflist = `/etc/cni/net.d/${net}.conflist`;
  const image = `localhost/${ovn.prefix}bb:1`;
  const name = `${ovn.prefix}c1`;
  const savedConf = existsSync(CONF) ? readFileSync(CONF) : null;
  const hostEth0 = link(null, 'eth0');
  const peerIp = '10.82.0.2';
  const podIp = '10.82.0.10';
  try {
    const ls = await ovn.createLogicalSwitch();
    // The peer: a netns whose veth end is plugged into br-int by hand, as another pod would be.
    const peer = await ovn.createPod({ mac: '0a:05:00:00:00:02', cidr: `${peerIp}/24` });
    await ovn.addLogicalPort(ls, `${ovn.prefix}_peer`, peer.mac, [peerIp]);
    sh('ovs-vsctl', ['add-port', 'br-int', peer.rep, '--', 'set', 'Interface', peer.rep, `external_ids:iface-id=${ovn.prefix}_peer`]);
    // podman sends only K8S_POD_NAME (the container name), so the iface-id template uses {pod}.
    const vfMac = link(null, vf.netdev)!.mac;
    await ovn.addLogicalPort(ls, `${ovn.prefix}_${name}`, vfMac, [podIp]);

    const bin = join(b.dir, 'cni-bin');
    mkdirSync(bin);
    symlinkSync(CNI_BIN, join(bin, 'vdpa-cni'));
    const logFile = join(b.dir, 'vdpa-cni.log');
    writeFileSync(
      conflist,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: net,
        plugins: [
          {
            type: 'vdpa-cni',
            deviceID: vf.pci,
            ovn: { ifaceId: `${ovn.prefix}_{pod}` },
            ipam: { type: 'host-local', dataDir: join(b.dir, 'ipam'), ranges: [[{ subnet: '10.82.0.0/24', rangeStart: podIp, rangeEnd: podIp }]] },
            logFile,
          },
        ],
      }),
    );
    const env = Object.entries(b.env()).filter(([k]) => k.startsWith('VDPA_')).map(([k, v]) => `"${k}=${v}"`);
    writeFileSync(
      CONF,
      `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${bin}", "/usr/lib/cni"]\nnetwork_config_dir = "/etc/cni/net.d"\n\n[engine]\nenv = [${env.join(', ')}]\n`,
    );
    // An image without a registry: busybox-static in an empty root.
    const rootfs = join(b.dir, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
    symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
    const imported = await run('sh', ['-c', `tar -C ${rootfs} -c . | podman import - ${image}`], { timeoutMs: 120_000 });
    assert.is(imported.code, 0, imported.stderr);

    const r = await run(
      'podman',
      [
        '--runtime', 'runc', 'run', '--rm', '--name', name, '--network', net, '--cap-add', 'NET_RAW',
        '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', image,
        '/bin/busybox', 'sh', '-c', `/bin/busybox ip addr show eth0; /bin/busybox ping -c 3 -W 2 ${peerIp}`,
      ],
      { timeoutMs: 180_000 },
    );
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    assert.is(r.code, 0, `${r.stdout}\n${r.stderr}\n${log}`);
    assert.match(r.stdout, new RegExp(`inet ${podIp.replace(/\./g, '\\.')}/24`));
    assert.match(r.stdout, /3 packets received|0% packet loss/);
    assert.match(log, /"command":"ADD".*"ADD done"|ADD done/);
    assert.match(log, /DEL done/, 'podman cleanup ran DEL');

    assert.ok(link(null, vf.netdev), 'VF netdev back in the host under its original name');
    assert.is(link(null, vf.netdev)!.alias, '');
    assert.is(await ovsPort(vf.representor), undefined, 'port removed');
    assert.equal(link(null, 'eth0'), hostEth0, "the host's own eth0 untouched");
  } finally {
    await run('podman', ['rm', '-f', name]);
    await run('podman', ['rmi', '-f', image]);
    if (savedConf) writeFileSync(CONF, savedConf);
    else rmSync(CONF, { force: true });
    rmSync(conflist, { force: true });
    await ovn.cleanup();
    b.cleanup();
  }
});

test.run();

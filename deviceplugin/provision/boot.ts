/**
 * What `provision --install-boot` keeps on the node so that a reboot comes back to the policy
 * before NetworkManager and udev act on the VFs (teardown removes all of it):
 *   - a systemd unit, ordered as the SR-IOV network operator orders its sriov-config.service
 *     (no default dependencies; after network-pre, udev settle, sysusers and sysctl; before the
 *     network, NetworkManager, systemd-networkd, OVS and the kubelet), that runs a copy of this
 *     executable on a recorded copy of the node's merged policy, and its multi-user.target link;
 *   - udev rules, as the operator's 10-nm-disable and 10-pf-name rules: NetworkManager leaves
 *     alone every netdev on our VFs and functions, under our vDPA devices, and the representors,
 *     and the uplink keeps its name when switchdev makes it again;
 *   - a NetworkManager snippet that adds the MACs the policy gives vDPA devices to
 *     unmanaged-devices, for where udev's properties do not reach NetworkManager (a
 *     NetworkManager in a container, a netdev that appeared before the rules were read).
 * The recorded policy has no `ovs`: the unit runs before ovsdb-server, which keeps hw-offload.
 * Pure: contents from the policy and the node's facts.
 */
import { basename, dirname, join } from 'node:path';
import type { EtcPaths } from '../../host/paths.js';
import { vfAddress } from '../../host/sriov.js';
import type { DeviceFacts, NodeFacts } from './facts.js';
import { macAt, policyJson, type PfPolicy, type Policy } from './policy.js';

export const UNIT_NAME = 'vdpa-k8s-provision.service';
const WRITTEN_BY = '# Written by `vdpa-device-plugin provision --install-boot`; `vdpa-device-plugin teardown` removes it.';

export interface BootLayout {
  readonly etc: EtcPaths;
  readonly stateFile: string;
  /** The running executable, copied beside the state file; null when this is not the single executable. */
  readonly self: string | null;
}

export interface BootPaths {
  readonly unit: string;
  readonly wants: string;
  readonly udevRules: string;
  readonly networkManager: string;
  /** The recorded policy and the executable the unit runs, beside the state file. */
  readonly policy: string;
  readonly executable: string;
}

export function bootPaths(l: BootLayout): BootPaths {
  const state = dirname(l.stateFile);
  return {
    unit: join(l.etc.systemdDir, UNIT_NAME),
    wants: join(l.etc.systemdDir, 'multi-user.target.wants', UNIT_NAME),
    udevRules: join(l.etc.udevRulesDir, '10-vdpa-k8s.rules'),
    networkManager: join(l.etc.networkManagerDir, 'vdpa-k8s.conf'),
    policy: join(state, 'boot-policy.json'),
    executable: join(state, 'vdpa-device-plugin'),
  };
}

export type BootFile =
  | { readonly path: string; readonly text: string; readonly mode: number }
  | { readonly path: string; readonly target: string }
  | { readonly path: string; readonly copyOf: string };

/** One word of an ExecStart line: quoted when it must be, with systemd's specifiers and variables escaped. */
function unitWord(w: string): string {
  const escaped = w.replaceAll('\\', '\\\\').replaceAll('%', '%%').replaceAll('$', '$$$$').replaceAll('"', '\\"');
  return /[\s"'\\]/.test(w) ? `"${escaped}"` : escaped;
}

export function unitText(p: BootPaths, stateFile: string): string {
  const exec = [p.executable, 'provision', '--policy', p.policy, '--state', stateFile].map(unitWord).join(' ');
  return [
    WRITTEN_BY,
    '# Replays the recorded policy of this node at boot, before anything configures the network.',
    '[Unit]',
    'Description=vdpa-k8s node provisioning (VFs, switchdev, vDPA devices) before the network',
    'DefaultDependencies=no',
    `RequiresMountsFor=${unitWord(dirname(stateFile))} ${unitWord(dirname(p.executable))}`,
    'After=network-pre.target systemd-udev-settle.service systemd-sysusers.service systemd-sysctl.service',
    'Before=network.target NetworkManager.service systemd-networkd.service ovs-vswitchd.service ovsdb-server.service openvswitch-switch.service kubelet.service',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${exec}`,
    'StandardOutput=journal+console',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** The VF addresses a PF will have: the ones there are, else from offset and stride. */
function vfAddresses(pf: PfPolicy, d: DeviceFacts): string[] {
  const count = pf.numVfs ?? d.sriov?.numVfs ?? 0;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const vf = d.vfs.get(i) ?? (d.pci && d.sriov?.offset != null && d.sriov.stride != null ? vfAddress(d.pci, d.sriov.offset, d.sriov.stride, i) : null);
    if (vf) out.push(vf);
  }
  return out;
}

const unmanaged = (match: string) => `SUBSYSTEM=="net", ACTION=="add|change|move", ${match}, ENV{NM_UNMANAGED}="1"`;

export function udevText(policy: Policy, facts: NodeFacts): string {
  const functions: string[] = [];
  const switchdev: string[] = [];
  for (const pf of policy.pfs) {
    const r = facts.resolved.get(pf.at);
    const d = r && 'handle' in r ? facts.devices.get(r.handle) : undefined;
    if (!d) continue;
    const vfs = vfAddresses(pf, d);
    if (vfs.length) functions.push(unmanaged(`KERNELS=="${vfs.join('|')}"`));
    if (pf.eSwitchMode !== 'switchdev') continue;
    const parent = basename(d.handle);
    switchdev.push(unmanaged(`KERNELS=="${parent}", ATTR{phys_port_name}=="pf*vf*"`));
    if (d.uplink) switchdev.push(`SUBSYSTEM=="net", ACTION=="add", KERNELS=="${parent}", ATTR{phys_port_name}=="p[0-9]*", NAME="${d.uplink}"`);
  }
  const pciMgmt = policy.mgmtDevs.filter((m) => m.mgmtDev.startsWith('pci/')).map((m) => m.mgmtDev.slice(4));
  if (pciMgmt.length) functions.push(unmanaged(`KERNELS=="${pciMgmt.join('|')}"`));
  return [
    WRITTEN_BY,
    '# NetworkManager leaves alone the netdevs on the VFs and functions we provision and under our vDPA devices.',
    ...functions,
    unmanaged('KERNELS=="vdpa:*"'),
    ...(switchdev.length ? ['# The VF representors too; the uplink keeps its name when switchdev makes it again.', ...switchdev] : []),
    '',
  ].join('\n');
}

/** The MACs the policy gives vDPA devices (virtio netdevs carry them). */
function policyMacs(policy: Policy): string[] {
  const macs: string[] = [];
  for (const pf of policy.pfs) for (const g of pf.vdpa) if (g.macBase !== null) for (const vf of g.vfs) macs.push(macAt(g.macBase, vf));
  for (const m of policy.mgmtDevs) if (m.macBase !== null) for (let i = 0; i < m.count; i++) macs.push(macAt(m.macBase, i));
  return macs;
}

/** Every boot file with what it should hold. */
export function bootFiles(policy: Policy, facts: NodeFacts, layout: BootLayout, self: string): BootFile[] {
  const p = bootPaths(layout);
  const macs = policyMacs(policy);
  const nm = macs.length
    ? [
        {
          path: p.networkManager,
          text: [WRITTEN_BY, '[keyfile]', `unmanaged-devices+=${macs.map((m) => `mac:${m}`).join(';')}`, ''].join('\n'),
          mode: 0o644,
        },
      ]
    : [];
  return [
    { path: p.executable, copyOf: self },
    { path: p.policy, text: bootPolicyText(policy), mode: 0o644 },
    { path: p.udevRules, text: udevText(policy, facts), mode: 0o644 },
    ...nm,
    { path: p.unit, text: unitText(p, layout.stateFile), mode: 0o644 },
    { path: p.wants, target: `../${UNIT_NAME}` },
  ];
}

export function bootPolicyText(policy: Policy): string {
  return `${JSON.stringify(policyJson({ ...policy, ovs: null }), null, 2)}\n`;
}

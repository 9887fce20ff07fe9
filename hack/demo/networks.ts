/**
 * What a cluster would hold for the demo: the two NetworkAttachmentDefinitions (as
 * build/manifests/networks.yaml declares them) and the pods that use them. The networks run in
 * ovn.mode "managed": vdpa-cni creates each pod's logical port on the node's logical switch
 * itself, so no OVN controller is needed. Pod addresses come from the pod's network selection; the
 * MAC is derived from the IP, as ovn-kubernetes does (0a:58 + IPv4).
 */
import { RESOURCE_PREFIX, VHOST_POOL, VIRTIO_POOL } from '../sim/node.js';

export const NAMESPACE = 'demo';
/** The logical switch hack/sim/up.sh creates for the pods. */
export const LOGICAL_SWITCH = 'vdpa-sim';
export const VIRTIO_RESOURCE = `${RESOURCE_PREFIX}/${VIRTIO_POOL}`;
export const VHOST_RESOURCE = `${RESOURCE_PREFIX}/${VHOST_POOL}`;

/** The delegate config both networks share but for the name: addresses come from the pod's network selection. */
function networkConfig(name: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name,
    type: 'vdpa-cni',
    capabilities: { deviceID: true, CNIDeviceInfoFile: true, mac: true, ips: true },
    ipam: { type: 'static' },
    ovn: { mode: 'managed', logicalSwitch: LOGICAL_SWITCH },
  });
}

/** The name vdpa-cni gives a pod's logical port in managed mode (its default iface-id template). */
export const lspName = (network: string, pod: string): string => `vdpa-${network}_${NAMESPACE}_${pod}`;

function nad(name: string, resource: string) {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: { name, namespace: NAMESPACE, annotations: { 'k8s.v1.cni.cncf.io/resourceName': resource } },
    spec: { config: networkConfig(name) },
  };
}

export const VIRTIO_NAD = nad('vdpa-virtio', VIRTIO_RESOURCE);
export const VHOST_NAD = nad('vdpa-vhost', VHOST_RESOURCE);

export interface DemoPod {
  readonly name: string;
  readonly network: string;
  readonly resource: string;
}

export const PODS: readonly DemoPod[] = [
  { name: 'pod-a', network: VIRTIO_NAD.metadata.name, resource: VIRTIO_RESOURCE },
  { name: 'pod-b', network: VIRTIO_NAD.metadata.name, resource: VIRTIO_RESOURCE },
  { name: 'pod-c', network: VHOST_NAD.metadata.name, resource: VHOST_RESOURCE },
];

/** The i-th pod's address in the subnet (from .11 on) and its MAC. */
export function podAddress(subnet: string, i: number): { ip: string; cidr: string; mac: string } {
  const [base, len] = subnet.split('/') as [string, string];
  const octets = base.split('.').map(Number);
  octets[3] = 11 + i;
  const ip = octets.join('.');
  const mac = ['0a', '58', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
  return { ip, cidr: `${ip}/${len}`, mac };
}

/**
 * A device plugin ConfigMap as the SR-IOV network operator renders it: one key per node, each the
 * json.Marshal of the incumbent's ResourceConfList (renderDevicePluginConfigData), so with Go's
 * field names (`IsRdma`, `NeedVhostNet`, the internal `SelectorObjs`), `linkTypes` from the
 * policy's linkType, no deviceType, and pools of plain and vfio-pci VFs beside the vDPA ones.
 * worker-1 is from an older operator (`SelectorObj`) and has no vDPA pool at all.
 */
import { parse } from 'yaml';

export const OPERATOR_CONFIGMAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: device-plugin-config
  namespace: sriov-network-operator
data:
  worker-0: '{"resourceList":[{"resourceName":"vdpa_virtio","selectors":{"vendors":["15b3"],"devices":["101e"],"pfNames":["enp101s0f0np0#0-1"],"linkTypes":["ether"],"IsRdma":false,"NeedVhostNet":false,"vdpaType":"virtio"},"SelectorObjs":null},{"resourceName":"vdpa_vhost","excludeTopology":true,"selectors":{"vendors":["15b3"],"devices":["101e"],"pfNames":["enp101s0f0np0#2-3"],"rootDevices":["0000:65:00.0"],"linkTypes":["ether"],"IsRdma":false,"NeedVhostNet":false,"vdpaType":"vhost"},"SelectorObjs":null},{"resourceName":"mlx_rdma","selectors":{"vendors":["15b3"],"devices":["101e"],"pfNames":["enp101s0f1np1"],"linkTypes":["ether"],"IsRdma":true,"NeedVhostNet":false},"SelectorObjs":null},{"resourceName":"intel_dpdk","selectors":{"vendors":["8086"],"devices":["154c"],"drivers":["vfio-pci"],"pfNames":["ens3f0#0-7"],"IsRdma":false,"NeedVhostNet":true},"SelectorObjs":null}]}'
  worker-1: '{"resourceList":[{"resourceName":"intel_sriov_netdevice","selectors":{"vendors":["8086"],"devices":["154c"],"pfNames":["ens785f0"],"IsRdma":false,"NeedVhostNet":false},"SelectorObj":null}]}'
`;

/** The config file a node's device plugin reads: the ConfigMap key of its node name. */
export function operatorNodeConfig(node: string): string {
  const cm = parse(OPERATOR_CONFIGMAP) as { data: Record<string, string> };
  const text = cm.data[node];
  if (text === undefined) throw new Error(`no ConfigMap key ${node}`);
  return text;
}

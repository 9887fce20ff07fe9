/**
 * The simulated node: where hack/sim/up.sh puts everything and what it wrote down about it.
 * One PF with four vDPA VFs (two virtio, two vhost) as a fixture sysfs tree; each VF's virtio
 * netdev and its representor are the two ends of a real veth pair; real OVS/OVN with br-int and
 * one logical switch. The demo, the e2e test and down.sh all find the node through node.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const SIM_DIR = '/run/vdpa-k8s-sim';
export const SIM_NODE_FILE = join(SIM_DIR, 'node.json');

/** The device plugin's pools on the simulated node; build/manifests/device-plugin.yaml carries the same. */
export const RESOURCE_PREFIX = 'vdpa-k8s.io';
export const VIRTIO_POOL = 'vdpa_virtio';
export const VHOST_POOL = 'vdpa_vhost';
export const POOL_CONFIG = {
  resourceList: [
    {
      resourceName: VIRTIO_POOL,
      resourcePrefix: RESOURCE_PREFIX,
      selectors: [{ vendors: ['15b3'], devices: ['101e'], vdpaType: 'virtio' }],
    },
    {
      resourceName: VHOST_POOL,
      resourcePrefix: RESOURCE_PREFIX,
      selectors: [{ vendors: ['15b3'], devices: ['101e'], vdpaType: 'vhost' }],
    },
  ],
};

export interface SimVf {
  readonly pci: string;
  readonly pf: string;
  /** The vDPA device on the VF (`vdpaN`). */
  readonly vdpa: string;
  readonly driver: 'virtio' | 'vhost';
  /** The virtio netdev's name (one end of the veth pair); it exists in the host for vhost VFs too. */
  readonly netdev: string;
  /** The representor (the other end), the port that goes into br-int. */
  readonly representor: string;
  /** `<devRoot>/vhost-vdpa-K` for vhost VFs. */
  readonly vhost: string | null;
}

export interface SimNode {
  readonly dir: string;
  /** The fixture tree: sysfs under sysfsRoot, char devices under devRoot. */
  readonly fixtureRoot: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  /** The kubelet's device-plugins directory (kubelet.sock and the plugin sockets). */
  readonly kubeletDir: string;
  /** DeviceInfo root: dp/ (device plugin) and cni/ (Multus). */
  readonly devinfoDir: string;
  /** The CNI's attachment state and locks. */
  readonly cniStateDir: string;
  /** The device plugin's pool configuration. */
  readonly configPath: string;
  readonly logicalSwitch: string;
  /** Pod addresses come from here; .1 is left for a router. */
  readonly subnet: string;
  readonly vfs: readonly SimVf[];
}

export class SimNodeError extends Error {
  override name = 'SimNodeError';
}

type Obj = Record<string, unknown>;

function obj(x: unknown, field: string): Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new SimNodeError(`${SIM_NODE_FILE}: ${field || 'document'}: must be an object`);
  return x as Obj;
}

function str(o: Obj, key: string, at: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new SimNodeError(`${SIM_NODE_FILE}: ${at}${key}: must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function parseVf(x: unknown, i: number): SimVf {
  const at = `vfs[${i}].`;
  const o = obj(x, `vfs[${i}]`);
  const driver = str(o, 'driver', at);
  if (driver !== 'virtio' && driver !== 'vhost') throw new SimNodeError(`${SIM_NODE_FILE}: ${at}driver: must be "virtio" or "vhost", got "${driver}"`);
  const vhost = o.vhost === null ? null : str(o, 'vhost', at);
  return { pci: str(o, 'pci', at), pf: str(o, 'pf', at), vdpa: str(o, 'vdpa', at), driver, netdev: str(o, 'netdev', at), representor: str(o, 'representor', at), vhost };
}

export function parseSimNode(x: unknown): SimNode {
  const o = obj(x, '');
  if (!Array.isArray(o.vfs)) throw new SimNodeError(`${SIM_NODE_FILE}: vfs: must be a list`);
  return {
    dir: str(o, 'dir', ''),
    fixtureRoot: str(o, 'fixtureRoot', ''),
    sysfsRoot: str(o, 'sysfsRoot', ''),
    devRoot: str(o, 'devRoot', ''),
    kubeletDir: str(o, 'kubeletDir', ''),
    devinfoDir: str(o, 'devinfoDir', ''),
    cniStateDir: str(o, 'cniStateDir', ''),
    configPath: str(o, 'configPath', ''),
    logicalSwitch: str(o, 'logicalSwitch', ''),
    subnet: str(o, 'subnet', ''),
    vfs: o.vfs.map(parseVf),
  };
}

/** The node hack/sim/up.sh brought up; a clear error when it is not up. */
export function readSimNode(): SimNode {
  let text: string;
  try {
    text = readFileSync(SIM_NODE_FILE, 'utf8');
  } catch {
    throw new SimNodeError(`the simulated node is not up (no ${SIM_NODE_FILE}); run hack/sim/up.sh`);
  }
  return parseSimNode(JSON.parse(text));
}

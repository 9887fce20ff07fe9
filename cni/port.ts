/** OVS side of an attachment (placeholder until host/ovs.ts lands). */
export class OvsUnavailableError extends Error {
  override name = 'OvsUnavailableError';
}

export interface PortSpec {
  readonly bridge: string;
  readonly port: string;
  readonly ifaceId: string;
  readonly containerId: string;
  readonly ifname: string;
  readonly podUid: string | null;
  readonly mac: string | null;
  readonly ips: readonly string[];
  readonly vfNetdev: string | null;
  readonly pciAddress: string;
}

export interface OwnedPort {
  readonly name: string;
  readonly bridge: string;
  readonly containerId: string;
  readonly ifname: string;
  readonly ifaceId: string;
  readonly ovnInstalled: boolean;
}

export interface Switch {
  plug(spec: PortSpec): Promise<void>;
  waitInstalled(port: string, ifaceId: string, timeoutMs: number): Promise<void>;
  ownedPorts(filter: { containerId: string; ifname: string } | 'all'): Promise<OwnedPort[]>;
  unplug(port: OwnedPort): Promise<void>;
  status(bridge: string): Promise<{ bridgeExists: boolean; hwOffload: boolean }>;
  close(): void;
}

export async function openSwitch(ovsdb: string): Promise<Switch> {
  throw new OvsUnavailableError(`OVSDB client not available: ${ovsdb}`);
}

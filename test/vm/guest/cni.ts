/**
 * Calls the built vdpa-cni the way a runtime does, on the guest's real devices: default host
 * paths (the guest's root is writable), Debian's IPAM plugins from the host's /usr/lib/cni.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../support/exec.js';
import { CNI_BIN } from '../../support/paths.js';
import { DEFAULT_PATHS } from '../../../host/paths.js';

export interface CniOutcome {
  code: number | null;
  json: Record<string, unknown> | null;
  stderr: string;
}

export interface CniCall {
  containerId: string;
  /** A named netns (/run/netns/<name>), or "" when the runtime has none to give. */
  netns: string;
  ifname?: string;
}

export async function cni(command: 'ADD' | 'DEL' | 'CHECK', conf: object, c: CniCall): Promise<CniOutcome> {
  const r = await run(CNI_BIN, [], {
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: c.containerId,
      CNI_NETNS: c.netns ? `/run/netns/${c.netns}` : '',
      CNI_IFNAME: c.ifname ?? 'net1',
      CNI_PATH: '/usr/lib/cni',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=testbed;K8S_POD_NAME=pod',
    },
    input: JSON.stringify(conf),
    // The emulated CPU makes the single executable slow to start.
    timeoutMs: 120_000,
  });
  let json: Record<string, unknown> | null = null;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : null;
  } catch {
    json = null;
  }
  return { code: r.code, json, stderr: r.stderr };
}

/** A Multus-style DeviceInfo file under the default devinfo directory's cni/. */
export function writeCniDeviceInfo(name: string, vdpa: Record<string, string>): string {
  const path = join(DEFAULT_PATHS.devinfoDir, 'cni', name);
  mkdirSync(join(DEFAULT_PATHS.devinfoDir, 'cni'), { recursive: true });
  writeFileSync(path, JSON.stringify({ type: 'vdpa', version: '1.1.0', vdpa }));
  return path;
}

/**
 * A Multus stand-in doing for one secondary network what Multus (thick or thin) does, with the
 * same names and files:
 * - reads the NetworkAttachmentDefinition; its `k8s.v1.cni.cncf.io/resourceName` annotation names
 *   the device plugin's pool, and the pod's devices of that pool come from what the kubelet
 *   allocated (Multus asks the pod-resources API; here the caller hands the same map over);
 * - injects the top-level `deviceID` (and `pciBusID`) into the delegate's config;
 * - copies `<devinfo>/dp/<resource>-<deviceID>-device.json` to
 *   `<devinfo>/cni/<namespace>-<network>-<containerID>_<ifname>`;
 * - adds `runtimeConfig` for the capabilities the config declares (libcni's rule): `deviceID`,
 *   `CNIDeviceInfoFile`, and the network selection's `mac` and `ips`;
 * - execs the plugin named by `type` from CNI_PATH with CNI_ARGS carrying K8S_POD_NAMESPACE,
 *   K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID;
 * - builds the `k8s.v1.cni.cncf.io/network-status` entry, `device-info` read back after ADD;
 * - on DEL runs the plugin with the same config, then deletes the cni/ file.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cniDeviceInfoPath, dpDeviceInfoPath, readDeviceInfo, removeDeviceInfo, type DeviceInfo } from '../../host/deviceinfo.js';
import { run } from './exec.js';

export const RESOURCE_NAME_ANNOTATION = 'k8s.v1.cni.cncf.io/resourceName';

export class MultusError extends Error {
  override name = 'MultusError';
}

type Obj = Record<string, unknown>;

function obj(x: unknown, field: string): Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new MultusError(`${field}: must be an object`);
  return x as Obj;
}

function str(o: Obj, key: string, at: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new MultusError(`${at}.${key}: must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** The parts of a NetworkAttachmentDefinition Multus uses. */
export interface NetworkAttachmentDefinition {
  readonly namespace: string;
  readonly name: string;
  /** The pool (`<prefix>/<name>`) from the resourceName annotation; null without one. */
  readonly resourceName: string | null;
  /** spec.config, parsed: the delegate's network config. */
  readonly config: Readonly<Obj>;
}

/** A `k8s.cni.cncf.io/v1` NetworkAttachmentDefinition object, as `kubectl get -o json` prints it. */
export function parseNad(x: unknown): NetworkAttachmentDefinition {
  const o = obj(x, 'NetworkAttachmentDefinition');
  if (o.apiVersion !== 'k8s.cni.cncf.io/v1') throw new MultusError(`apiVersion: must be "k8s.cni.cncf.io/v1", got ${JSON.stringify(o.apiVersion)}`);
  if (o.kind !== 'NetworkAttachmentDefinition') throw new MultusError(`kind: must be "NetworkAttachmentDefinition", got ${JSON.stringify(o.kind)}`);
  const meta = obj(o.metadata, 'metadata');
  const annotations = meta.annotations === undefined ? {} : obj(meta.annotations, 'metadata.annotations');
  const resource = annotations[RESOURCE_NAME_ANNOTATION];
  if (resource !== undefined && (typeof resource !== 'string' || !resource.includes('/'))) {
    throw new MultusError(`metadata.annotations["${RESOURCE_NAME_ANNOTATION}"]: must be "<prefix>/<name>", got ${JSON.stringify(resource)}`);
  }
  const spec = obj(o.spec, 'spec');
  let config: unknown;
  try {
    config = JSON.parse(str(spec, 'config', 'spec'));
  } catch (err) {
    if (err instanceof MultusError) throw err;
    throw new MultusError(`spec.config: not valid JSON (${(err as Error).message})`);
  }
  const conf = obj(config, 'spec.config');
  str(conf, 'type', 'spec.config');
  return { namespace: str(meta, 'namespace', 'metadata'), name: str(meta, 'name', 'metadata'), resourceName: (resource as string | undefined) ?? null, config: conf };
}

/** One element of the pod's `k8s.v1.cni.cncf.io/networks` annotation. */
export interface NetworkSelection {
  readonly name: string;
  readonly namespace?: string;
  readonly interface?: string;
  readonly mac?: string;
  readonly ips?: readonly string[];
}

/** The pod sandbox the runtime created: Multus gets these from the kubelet's CNI call. */
export interface PodSandbox {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly containerId: string;
  /** The netns path (CNI_NETNS). */
  readonly netns: string;
}

/** One entry of `k8s.v1.cni.cncf.io/network-status`. */
export interface NetworkStatus {
  readonly name: string;
  readonly interface: string;
  readonly ips: readonly string[];
  readonly mac: string;
  readonly default: boolean;
  readonly dns: Readonly<Obj>;
  readonly 'device-info'?: DeviceInfo;
}

export interface CniResultView {
  readonly interfaces: readonly { readonly name: string; readonly mac: string; readonly sandbox: string }[];
  readonly ips: readonly { readonly address: string; readonly interface: number | null }[];
  readonly dns: Readonly<Obj>;
}

function parseResult(x: unknown): CniResultView {
  const o = obj(x, 'result');
  const list = (v: unknown, at: string): unknown[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new MultusError(`result.${at}: must be a list`);
    return v;
  };
  return {
    interfaces: list(o.interfaces, 'interfaces').map((x, i) => {
      const f = obj(x, `result.interfaces[${i}]`);
      return { name: str(f, 'name', `result.interfaces[${i}]`), mac: typeof f.mac === 'string' ? f.mac : '', sandbox: typeof f.sandbox === 'string' ? f.sandbox : '' };
    }),
    ips: list(o.ips, 'ips').map((x, i) => {
      const f = obj(x, `result.ips[${i}]`);
      return { address: str(f, 'address', `result.ips[${i}]`), interface: typeof f.interface === 'number' ? f.interface : null };
    }),
    dns: o.dns === undefined ? {} : obj(o.dns, 'result.dns'),
  };
}

/** One network attached to a pod: what Multus keeps to delete it later. */
export interface Attachment {
  readonly pod: PodSandbox;
  readonly nad: NetworkAttachmentDefinition;
  readonly ifname: string;
  readonly deviceId: string | null;
  /** The cni/ DeviceInfo copy; null without a resource. */
  readonly deviceInfoFile: string | null;
  /** The exact config the plugin got on stdin (DEL sends it again). */
  readonly netconf: Readonly<Obj>;
  readonly result: CniResultView;
  readonly status: NetworkStatus;
  /** Wall time of the plugin's ADD, process start to exit. */
  readonly addMs: number;
}

export class CniCallError extends MultusError {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`CNI ${command} failed (exit ${code}): ${stdout.trim() || '(no output)'}${stderr.trim() ? `\n--- plugin stderr ---\n${stderr.trim()}` : ''}`);
  }
}

export interface MultusOptions {
  /** CNI_PATH: where plugins are looked up by `type`. */
  readonly cniPath: readonly string[];
  /** The DeviceInfo root (dp/ and cni/ below it). */
  readonly devinfoDir: string;
  /** Extra environment for the plugin (a simulated node's path overrides). */
  readonly env?: Readonly<Record<string, string>>;
}

export class MultusStandIn {
  constructor(private readonly opts: MultusOptions) {}

  private plugin(type: string): string {
    for (const dir of this.opts.cniPath) if (existsSync(join(dir, type))) return join(dir, type);
    throw new MultusError(`failed to find plugin "${type}" in path [${this.opts.cniPath.join(' ')}]`);
  }

  private async exec(command: 'ADD' | 'DEL', pod: PodSandbox, ifname: string, netconf: Obj): Promise<{ stdout: string; ms: number }> {
    const args = [
      'IgnoreUnknown=true',
      `K8S_POD_NAMESPACE=${pod.namespace}`,
      `K8S_POD_NAME=${pod.name}`,
      `K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
      `K8S_POD_UID=${pod.uid}`,
    ].join(';');
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      ...this.opts.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: pod.netns,
      CNI_IFNAME: ifname,
      CNI_ARGS: args,
      CNI_PATH: this.opts.cniPath.join(':'),
    };
    const started = performance.now();
    const r = await run(this.plugin(String(netconf.type)), [], { env, input: JSON.stringify(netconf) });
    const ms = performance.now() - started;
    if (r.code !== 0) throw new CniCallError(command, r.code, r.stdout, r.stderr);
    return { stdout: r.stdout, ms };
  }

  /**
   * Attaches the pod's networks in order (ifnames net1, net2, … unless the selection names one).
   * `podResources`: device IDs the kubelet allocated to the pod, by resource name.
   * On a failure the networks attached so far are deleted again, as Multus does.
   */
  async add(
    pod: PodSandbox,
    selections: readonly NetworkSelection[],
    nads: readonly NetworkAttachmentDefinition[],
    podResources: ReadonlyMap<string, readonly string[]>,
  ): Promise<Attachment[]> {
    const done: Attachment[] = [];
    const used = new Map<string, number>();
    try {
      for (const [i, sel] of selections.entries()) {
        const namespace = sel.namespace ?? pod.namespace;
        const nad = nads.find((n) => n.name === sel.name && n.namespace === namespace);
        if (!nad) throw new MultusError(`cannot find a network-attachment-definition (${sel.name}) in namespace (${namespace})`);
        const ifname = sel.interface ?? `net${i + 1}`;
        let deviceId: string | null = null;
        let deviceInfoFile: string | null = null;
        if (nad.resourceName) {
          const ids = podResources.get(nad.resourceName) ?? [];
          const n = used.get(nad.resourceName) ?? 0;
          deviceId = ids[n] ?? null;
          if (!deviceId) throw new MultusError(`pod ${pod.namespace}/${pod.name} has no unused device of resource ${nad.resourceName} for network ${nad.name}`);
          used.set(nad.resourceName, n + 1);
          const dp = dpDeviceInfoPath(this.opts.devinfoDir, nad.resourceName, deviceId);
          // Multus copies the file when the device plugin wrote one, and goes on without it otherwise.
          if (existsSync(dp)) {
            deviceInfoFile = cniDeviceInfoPath(this.opts.devinfoDir, `${pod.namespace}-${nad.name}-${pod.containerId}_${ifname}`);
            mkdirSync(dirname(deviceInfoFile), { recursive: true });
            copyFileSync(dp, deviceInfoFile);
          }
        }
        const netconf = this.delegateConfig(nad, sel, deviceId, deviceInfoFile);
        let out: { stdout: string; ms: number };
        try {
          out = await this.exec('ADD', pod, ifname, netconf);
        } catch (err) {
          // The runtime's rule: a failed ADD is followed by a DEL of the same attachment.
          await this.exec('DEL', pod, ifname, netconf).catch(() => undefined);
          if (deviceInfoFile) removeDeviceInfo(deviceInfoFile);
          throw err;
        }
        const result = parseResult(JSON.parse(out.stdout) as unknown);
        done.push({ pod, nad, ifname, deviceId, deviceInfoFile, netconf, result, status: this.status(nad, ifname, pod, result, deviceInfoFile), addMs: out.ms });
      }
    } catch (err) {
      await this.del(done.reverse()).catch(() => undefined);
      throw err;
    }
    return done;
  }

  /** The delegate's stdin: the NAD's config, deviceID injected, runtimeConfig per declared capability. */
  private delegateConfig(nad: NetworkAttachmentDefinition, sel: NetworkSelection, deviceId: string | null, deviceInfoFile: string | null): Obj {
    const conf: Obj = { ...nad.config };
    if (deviceId) {
      conf.deviceID = deviceId;
      conf.pciBusID = deviceId;
    }
    const capabilities = (typeof conf.capabilities === 'object' && conf.capabilities !== null ? conf.capabilities : {}) as Record<string, unknown>;
    const offered: Obj = {
      ...(sel.mac ? { mac: sel.mac } : {}),
      ...(sel.ips ? { ips: [...sel.ips] } : {}),
      ...(deviceId ? { deviceID: deviceId } : {}),
      ...(deviceInfoFile ? { CNIDeviceInfoFile: deviceInfoFile } : {}),
    };
    const runtimeConfig = Object.fromEntries(Object.entries(offered).filter(([k]) => capabilities[k] === true));
    if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
    return conf;
  }

  private status(nad: NetworkAttachmentDefinition, ifname: string, pod: PodSandbox, result: CniResultView, deviceInfoFile: string | null): NetworkStatus {
    const index = result.interfaces.findIndex((f) => f.name === ifname && f.sandbox === pod.netns);
    const deviceInfo = deviceInfoFile ? readDeviceInfo(deviceInfoFile) : null;
    return {
      name: `${nad.namespace}/${nad.name}`,
      interface: ifname,
      ips: result.ips.filter((ip) => ip.interface === null || ip.interface === index).map((ip) => ip.address.split('/')[0]!),
      mac: result.interfaces[index]?.mac ?? '',
      default: false,
      dns: result.dns,
      ...(deviceInfo ? { 'device-info': deviceInfo } : {}),
    };
  }

  /** Deletes attachments in the given order; returns each plugin DEL's wall time. */
  async del(attachments: readonly Attachment[]): Promise<number[]> {
    const times: number[] = [];
    for (const a of attachments) {
      const { ms } = await this.exec('DEL', a.pod, a.ifname, { ...a.netconf });
      if (a.deviceInfoFile) removeDeviceInfo(a.deviceInfoFile);
      times.push(ms);
    }
    return times;
  }
}

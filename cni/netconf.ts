/**
 * stdin + environment → one typed request. Pure: nothing here touches the host. Errors name the
 * variable or field: code 4 for the environment, 6 for JSON that does not decode, 7 for the
 * network config, 1 for a cniVersion we do not speak.
 */
import { isLogLevel, type LogLevel } from '../host/log.js';
import { DEFAULT_OVSDB, ovsdbRemoteProblem } from '../host/ovsdb.js';
import { PCI_ADDRESS } from '../host/sysfs.js';
import { parseCniArgs, type CniArgs } from './args.js';
import { Decoder, type Obj } from './decode.js';
import { CniError, ErrorCode } from './errors.js';
import { parseResult, type Result } from './result.js';
import { assertVerbAllowed, isSupportedVersion, SUPPORTED_VERSIONS, type CniVersion } from './version.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC'] as const;
export type Command = (typeof COMMANDS)[number];

export interface CniEnv {
  readonly command: Command;
  readonly containerId: string;
  /** Empty on DEL when the runtime no longer knows the netns, and on STATUS/GC. */
  readonly netns: string;
  readonly ifname: string;
  readonly args: CniArgs;
  /** CNI_PATH split on ":"; where delegated IPAM plugins live. */
  readonly path: readonly string[];
}

/** `{containerID, ifname}`: one attachment the runtime still uses (GC). */
export interface AttachmentRef {
  readonly containerId: string;
  readonly ifname: string;
}

/**
 * Who creates the pod's Logical_Switch_Port and where its addresses come from:
 * - external: an outside controller creates the LSP named by `ifaceId`; addresses from IPAM;
 * - managed: vdpa-cni creates (and removes) the LSP on `logicalSwitch` in the OVN NB database;
 * - ovn-kubernetes: ovnkube-controller does, for the ovn-k `network`; addresses from the pod's
 *   `k8s.ovn.org/pod-networks` annotation, read from the Kubernetes API.
 */
export const OVN_MODES = ['external', 'managed', 'ovn-kubernetes'] as const;
export type OvnMode = (typeof OVN_MODES)[number];

interface OvnCommon {
  readonly waitInstalled: boolean;
  readonly timeoutMs: number;
}

export type OvnOptions =
  | (OvnCommon & {
      readonly mode: 'external';
      /** iface-id template with `{namespace}` `{pod}` `{podUID}` `{containerID}` `{ifname}` `{network}`. */
      readonly ifaceId: string;
    })
  | (OvnCommon & {
      readonly mode: 'managed';
      readonly ifaceId: string;
      /** An existing logical switch in the NB database. */
      readonly logicalSwitch: string;
      /** OVN Northbound OVSDB remote. */
      readonly nbdb: string;
    })
  | (OvnCommon & {
      readonly mode: 'ovn-kubernetes';
      /** `default` (the cluster default network) or the NAD key `namespace/name` of an ovn-k network. */
      readonly network: string;
      /** How long to wait for ovnkube-controller's annotation. */
      readonly annotationTimeoutMs: number;
    });

export interface NetConf {
  readonly cniVersion: CniVersion;
  readonly name: string;
  readonly type: string;
  /** The VF's PCI address, lower case; top-level `deviceID` (Multus) or `runtimeConfig.deviceID`. */
  readonly deviceId: string | null;
  /** `runtimeConfig.CNIDeviceInfoFile` (Multus). */
  readonly deviceInfoFile: string | null;
  /** `runtimeConfig.mac`, else `mac`; lower case. */
  readonly mac: string | null;
  readonly mtu: number | null;
  /** `ipam.type`; null when there is no IPAM (`ipam` absent or without a type). */
  readonly ipamType: string | null;
  /** OVS bridge for the representor; "" means no OVS plugging (legacy SR-IOV mode). */
  readonly bridge: string;
  readonly ovsdb: string;
  readonly ovn: OvnOptions;
  /** kubeconfig file for the Kubernetes API (ovn-kubernetes mode); null: the in-cluster service account. */
  readonly kubeconfig: string | null;
  readonly logFile: string | null;
  readonly logLevel: LogLevel;
  /** Parsed for ADD (chained) and CHECK; DEL ignores it so a bad one never blocks cleanup. */
  readonly prevResult: Result | null;
  /** GC only. */
  readonly validAttachments: readonly AttachmentRef[] | null;
}

export const DEFAULTS = {
  bridge: 'br-int',
  ovsdb: DEFAULT_OVSDB,
  /**
   * Never a name ovn-kubernetes gives its own ports: those are `<ns>_<pod>` (two parts) and
   * `<ns>.<nad>_<ns>_<pod>` (first part without "-"); ours has three parts and a "-" in the first.
   */
  ifaceId: 'vdpa-{network}_{namespace}_{pod}',
  nbdb: 'unix:/var/run/ovn/ovnnb_db.sock',
  waitInstalled: true,
  timeoutMs: 30_000,
  annotationTimeoutMs: 30_000,
  logLevel: 'info' as LogLevel,
};

export const TEMPLATE_KEYS = ['namespace', 'pod', 'podUID', 'containerID', 'ifname', 'network'] as const;
export type TemplateKey = (typeof TEMPLATE_KEYS)[number];
/** The placeholders that differ from pod to pod. */
const POD_KEYS: readonly TemplateKey[] = ['pod', 'podUID', 'containerID'];

/** Spec: alphanumeric first, then alphanumerics, `_`, `.`, `-`. */
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const envError = (msg: string): CniError => new CniError(ErrorCode.InvalidEnv, msg);

/** Linux interface names: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace. */
export function interfaceNameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  if (Buffer.byteLength(name) > 15) return `"${name}" is longer than 15 characters`;
  if (name === '.' || name === '..') return `"${name}" is not a valid interface name`;
  if (/[/:\s]/.test(name)) return `"${name}" contains "/", ":" or whitespace`;
  return null;
}

const NEEDS: Record<Command, { containerId: boolean; netns: boolean; ifname: boolean }> = {
  ADD: { containerId: true, netns: true, ifname: true },
  CHECK: { containerId: true, netns: true, ifname: true },
  DEL: { containerId: true, netns: false, ifname: true },
  STATUS: { containerId: false, netns: false, ifname: false },
  GC: { containerId: false, netns: false, ifname: false },
};

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw envError(`CNI_COMMAND: "${command}" is not one of ${[...COMMANDS, 'VERSION'].join(', ')}`);
  }
  const cmd = command as Command;
  const need = NEEDS[cmd];
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (need.containerId) {
    if (!containerId) throw envError(`CNI_CONTAINERID: required for ${cmd}`);
    if (!CONTAINER_ID.test(containerId)) {
      throw envError(`CNI_CONTAINERID: "${containerId}" must start with a letter or digit, then letters, digits, "_", "." or "-"`);
    }
  }
  if (need.netns) {
    if (!netns) throw envError(`CNI_NETNS: required for ${cmd}`);
    if (!netns.startsWith('/')) throw envError(`CNI_NETNS: "${netns}" must be an absolute path`);
  }
  if (need.ifname) {
    if (!ifname) throw envError(`CNI_IFNAME: required for ${cmd}`);
    const problem = interfaceNameProblem(ifname);
    if (problem) throw envError(`CNI_IFNAME: ${problem}`);
  }
  return {
    command: cmd,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
}

/** Go-style durations as runtimes write them: `30s`, `500ms`, `1m`, `1.5s`. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!m) return null;
  const scale = { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
  return Math.round(Number(m[1]) * scale);
}

/** The placeholders a template uses; unknown ones are a config error. */
export function templateKeys(template: string, path: string, d: Decoder): TemplateKey[] {
  const keys: TemplateKey[] = [];
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    const key = m[1] ?? '';
    if (!(TEMPLATE_KEYS as readonly string[]).includes(key)) {
      d.fail(path, `unknown placeholder {${key}}; use ${TEMPLATE_KEYS.map((k) => `{${k}}`).join(', ')}`);
    }
    keys.push(key as TemplateKey);
  }
  return keys;
}

function parseJson(stdin: string): unknown {
  try {
    return JSON.parse(stdin);
  } catch (err) {
    throw new CniError(ErrorCode.DecodeFailure, 'network config on stdin is not valid JSON', (err as Error).message);
  }
}

function parseVersion(o: Obj): CniVersion {
  const v = o.cniVersion;
  if (typeof v !== 'string' || !isSupportedVersion(v)) {
    const shown = v === undefined ? 'missing' : JSON.stringify(v);
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cniVersion: ${shown} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return v;
}

function parseDeviceId(o: Obj, runtime: Obj, d: Decoder): string | null {
  const top = d.optString(o, 'deviceID', '');
  const rt = d.optString(runtime, 'deviceID', 'runtimeConfig');
  if (top && rt && top.toLowerCase() !== rt.toLowerCase()) {
    d.fail('deviceID', `"${top}" disagrees with runtimeConfig.deviceID "${rt}"`);
  }
  const id = (top || rt || '').toLowerCase();
  if (!id) return null;
  if (!PCI_ADDRESS.test(id)) {
    d.fail(top ? 'deviceID' : 'runtimeConfig.deviceID', `"${top || rt}" is not a PCI address (DDDD:BB:DD.F)`);
  }
  return id;
}

function parseMac(raw: string | undefined, path: string, d: Decoder): string | null {
  if (raw === undefined || raw === '') return null;
  const mac = raw.toLowerCase();
  if (!MAC.test(mac)) d.fail(path, `"${raw}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  if (parseInt(mac.slice(0, 2), 16) & 1) d.fail(path, `"${raw}" is a multicast address`);
  if (mac === '00:00:00:00:00:00') d.fail(path, 'must not be all zeros');
  return mac;
}

function parseOvsdb(o: Obj, d: Decoder): string {
  const ovsdb = d.optString(o, 'ovsdb', '') ?? DEFAULTS.ovsdb;
  const problem = ovsdbRemoteProblem(ovsdb);
  if (problem) d.fail('ovsdb', `"${ovsdb}" ${problem}`);
  return ovsdb;
}

function parseTimeout(ovn: Obj, key: string, fallback: number, d: Decoder): number {
  const t = ovn[key];
  if (t === undefined) return fallback;
  const ms = typeof t === 'string' ? parseDuration(t) : null;
  if (ms === null || ms <= 0) d.fail(`ovn.${key}`, `${JSON.stringify(t)} must be a duration such as "30s" or "500ms"`);
  return ms;
}

function parseIfaceId(ovn: Obj, d: Decoder): string {
  const ifaceId = d.optString(ovn, 'ifaceId', 'ovn') ?? DEFAULTS.ifaceId;
  if (!ifaceId) d.fail('ovn.ifaceId', 'must not be empty');
  const keys = templateKeys(ifaceId, 'ovn.ifaceId', d);
  // One literal name for every pod would make each ADD fight over one logical port (maybe ovn-k's).
  if (!keys.some((k) => POD_KEYS.includes(k))) {
    d.fail('ovn.ifaceId', `"${ifaceId}" names no pod: use at least one of ${POD_KEYS.map((k) => `{${k}}`).join(', ')}`);
  }
  return ifaceId;
}

/** Kubernetes object names: DNS-1123 labels or subdomains. */
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function parseOvn(o: Obj, hasIpam: boolean, d: Decoder): OvnOptions {
  const ovn = d.optObject(o, 'ovn', '') ?? {};
  const mode = ovn.mode ?? 'external';
  if (!(OVN_MODES as readonly unknown[]).includes(mode)) d.fail('ovn.mode', `${JSON.stringify(mode)} must be one of ${OVN_MODES.join(', ')}`);
  const common = { waitInstalled: d.optBool(ovn, 'waitInstalled', 'ovn') ?? DEFAULTS.waitInstalled, timeoutMs: parseTimeout(ovn, 'timeout', DEFAULTS.timeoutMs, d) };
  const notHere = (key: string) => {
    if (ovn[key] !== undefined) d.fail(`ovn.${key}`, `is not used in ovn.mode "${String(mode)}"`);
  };
  switch (mode as OvnMode) {
    case 'external':
      for (const k of ['logicalSwitch', 'nbdb', 'network', 'annotationTimeout']) notHere(k);
      return { mode: 'external', ifaceId: parseIfaceId(ovn, d), ...common };
    case 'managed': {
      for (const k of ['network', 'annotationTimeout']) notHere(k);
      const logicalSwitch = d.optString(ovn, 'logicalSwitch', 'ovn');
      if (!logicalSwitch) d.fail('ovn.logicalSwitch', 'is required in ovn.mode "managed": the existing logical switch the port goes on');
      const nbdb = d.optString(ovn, 'nbdb', 'ovn') ?? DEFAULTS.nbdb;
      const problem = ovsdbRemoteProblem(nbdb);
      if (problem) d.fail('ovn.nbdb', `"${nbdb}" ${problem}`);
      return { mode: 'managed', ifaceId: parseIfaceId(ovn, d), logicalSwitch, nbdb, ...common };
    }
    case 'ovn-kubernetes': {
      for (const k of ['ifaceId', 'logicalSwitch', 'nbdb']) {
        if (ovn[k] !== undefined) d.fail(`ovn.${k}`, 'is not used in ovn.mode "ovn-kubernetes": ovnkube-controller names and creates the port');
      }
      if (hasIpam) d.fail('ipam', 'must not be set in ovn.mode "ovn-kubernetes": the addresses are the ones ovnkube-controller assigned (k8s.ovn.org/pod-networks)');
      const network = d.optString(ovn, 'network', 'ovn') ?? 'default';
      const parts = network.split('/');
      if (network !== 'default' && !(parts.length === 2 && parts.every((p) => K8S_NAME.test(p)))) {
        d.fail('ovn.network', `"${network}" must be "default" or the namespace/name of an ovn-kubernetes NetworkAttachmentDefinition`);
      }
      return { mode: 'ovn-kubernetes', network, annotationTimeoutMs: parseTimeout(ovn, 'annotationTimeout', DEFAULTS.annotationTimeoutMs, d), ...common };
    }
  }
}

function parseKubeconfig(o: Obj, d: Decoder): string | null {
  const file = d.optString(o, 'kubeconfig', '');
  if (file === undefined) return null;
  if (!file.startsWith('/')) d.fail('kubeconfig', `"${file}" must be an absolute path`);
  return file;
}

function parseAttachments(o: Obj, d: Decoder): AttachmentRef[] {
  const key = o['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  if (o[key] === undefined) d.fail('cni.dev/valid-attachments', 'is required for GC');
  return d.array(o[key], key).map((raw, i) => {
    const p = `${key}[${i}]`;
    const a = d.object(raw, p);
    return { containerId: d.string(a, 'containerID', p), ifname: d.string(a, 'ifname', p) };
  });
}

export function parseNetConf(stdin: string, command: Command): NetConf {
  const d: Decoder = new Decoder(ErrorCode.InvalidConfig);
  const o = d.object(parseJson(stdin), 'network config');
  const cniVersion = parseVersion(o);
  assertVerbAllowed(command, cniVersion);
  const runtime = d.optObject(o, 'runtimeConfig', '') ?? {};
  const ipam = d.optObject(o, 'ipam', '');
  const ipamType = ipam ? (d.optString(ipam, 'type', 'ipam') ?? '') : '';
  if (/[/\s]/.test(ipamType) || ipamType === '.' || ipamType === '..') d.fail('ipam.type', `"${ipamType}" must be a plugin name found in CNI_PATH`);
  const bridge = d.optString(o, 'bridge', '') ?? DEFAULTS.bridge;
  if (/[/\s]/.test(bridge)) d.fail('bridge', `"${bridge}" contains "/" or whitespace`);
  const logFile = d.optString(o, 'logFile', '') || null;
  if (logFile && !logFile.startsWith('/')) d.fail('logFile', `"${logFile}" must be an absolute path`);
  const logLevel = o.logLevel ?? DEFAULTS.logLevel;
  if (!isLogLevel(logLevel)) d.fail('logLevel', `${JSON.stringify(logLevel)} must be debug, info, warn or error`);
  const ovn = parseOvn(o, ipam !== undefined, d);
  if (ovn.mode !== 'external' && bridge === '') d.fail('bridge', `must name the integration bridge in ovn.mode "${ovn.mode}"`);
  const wantsPrev = (command === 'ADD' || command === 'CHECK') && o.prevResult !== undefined && o.prevResult !== null;
  return {
    cniVersion,
    name: d.string(o, 'name', ''),
    type: d.string(o, 'type', ''),
    deviceId: parseDeviceId(o, runtime, d),
    deviceInfoFile: d.optString(runtime, 'CNIDeviceInfoFile', 'runtimeConfig') || null,
    mac:
      parseMac(d.optString(runtime, 'mac', 'runtimeConfig'), 'runtimeConfig.mac', d) ??
      parseMac(d.optString(o, 'mac', ''), 'mac', d),
    mtu: d.optInt(o, 'mtu', '', 68, 65535) ?? null,
    ipamType: ipamType || null,
    bridge,
    ovsdb: parseOvsdb(o, d),
    ovn,
    kubeconfig: parseKubeconfig(o, d),
    logFile,
    logLevel,
    prevResult: wantsPrev ? parseResult(o.prevResult, 'prevResult', d) : null,
    validAttachments: command === 'GC' ? parseAttachments(o, d) : null,
  };
}

const TEMPLATE_SOURCE: Record<TemplateKey, string> = {
  namespace: 'CNI_ARGS has no K8S_POD_NAMESPACE',
  pod: 'CNI_ARGS has no K8S_POD_NAME',
  podUID: 'CNI_ARGS has no K8S_POD_UID',
  containerID: 'CNI_CONTAINERID is empty',
  ifname: 'CNI_IFNAME is empty',
  network: 'the network config has no name',
};

/** ovn-k's names: `<ns>_<pod>` on the default network, `<nad key, "/" and "-" as ".">_<ns>_<pod>` on others. */
export function ovnkIfaceId(network: string, namespace: string, pod: string): string {
  const port = `${namespace}_${pod}`;
  return network === 'default' ? port : `${network.replaceAll('-', '.').replaceAll('/', '.')}_${port}`;
}

/** The Logical_Switch_Port name of this attachment in each mode; a value the caller did not send is a code 7. */
export function ifaceIdOf(conf: NetConf, env: CniEnv): string {
  if (conf.ovn.mode !== 'ovn-kubernetes') return expandIfaceId(conf, conf.ovn.ifaceId, env);
  const { podNamespace, podName } = env.args;
  if (!podNamespace || !podName) throw new CniError(ErrorCode.InvalidEnv, 'CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME are required in ovn.mode "ovn-kubernetes"');
  return ovnkIfaceId(conf.ovn.network, podNamespace, podName);
}

/** Fills the iface-id template; a placeholder whose value the caller did not send is a code 7. */
export function expandIfaceId(conf: NetConf, template: string, env: CniEnv): string {
  const values: Record<TemplateKey, string | null> = {
    namespace: env.args.podNamespace,
    pod: env.args.podName,
    podUID: env.args.podUid,
    containerID: env.containerId,
    ifname: env.ifname,
    network: conf.name,
  };
  const d: Decoder = new Decoder(ErrorCode.InvalidConfig);
  for (const key of templateKeys(template, 'ovn.ifaceId', d)) {
    if (!values[key]) d.fail('ovn.ifaceId', `"${template}" needs {${key}}, but ${TEMPLATE_SOURCE[key]}`);
  }
  return template.replace(/\{([^{}]*)\}/g, (_, k: TemplateKey) => values[k] ?? '');
}

/**
 * ovn.mode "ovn-kubernetes": vdpa-cni is ovn-k's vDPA datapath for one network. The pod's
 * addresses are the ones ovnkube-controller assigned in the pod's `k8s.ovn.org/pod-networks`
 * annotation (waited for as ovn-k's own CNI waits: a GET every 200 ms, the pod itself allowed
 * 1 s to appear); the port is named and marked as ovn-k's node side names and marks it
 * (docs/ovn.md). Imported lazily: the other modes never load it or the API client.
 */
import { inClusterCredentials, KubeApiError, kubeGet, loadKubeconfig, type KubeCredentials } from '../host/kubeapi.js';
import type { Logger } from '../host/log.js';
import { CniError, ErrorCode } from './errors.js';
import { ipFamily, parseCidr } from './ip.js';
import { ifaceIdOf, type CniEnv, type NetConf } from './netconf.js';
import type { Result, ResultIp, ResultRoute } from './result.js';

export const POD_NETWORKS = 'k8s.ovn.org/pod-networks';
const POLL_MS = 200;
const POD_APPEAR_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;

/** One network's entry of the annotation. */
export interface PodNetwork {
  readonly ipAddresses: readonly string[];
  readonly macAddress: string;
  readonly gatewayIps: readonly string[];
  readonly routes: readonly { readonly dest: string; readonly nextHop: string }[];
  readonly role: string | null;
}

/** What ADD needs from the cluster. */
export interface OvnkAttachment {
  readonly podUid: string;
  readonly ifaceId: string;
  readonly mac: string;
  /** Addresses and routes as a result, for the netdev step. */
  readonly addresses: Result;
  /** external_ids ovn-k's node side sets beyond the ones plugPort manages. */
  readonly externalIds: Readonly<Record<string, string>>;
}

const bad = (msg: string): CniError => new CniError(ErrorCode.DecodeFailure, `${POD_NETWORKS} annotation: ${msg}`, 'written by ovnkube-controller');

const rec = (v: unknown): Record<string, unknown> | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);

function cidrs(v: unknown, path: string): string[] {
  if (!Array.isArray(v)) throw bad(`${path} must be an array of CIDRs`);
  return v.map((x, i) => {
    if (typeof x !== 'string' || !parseCidr(x)) throw bad(`${path}[${i}] ${JSON.stringify(x)} is not a CIDR`);
    return x;
  });
}

function ips(v: unknown, path: string): string[] {
  if (!Array.isArray(v)) throw bad(`${path} must be an array of IP addresses`);
  return v.map((x, i) => {
    if (typeof x !== 'string' || ipFamily(x) === null) throw bad(`${path}[${i}] ${JSON.stringify(x)} is not an IP address`);
    return x;
  });
}

/**
 * The entry `key` of the annotation's JSON, or null when it has none yet. Older ovn-k writes
 * the singular `ip_address`/`gateway_ip` too; a layer2 network's entry may have no gateway.
 */
export function parsePodNetworks(text: string, key: string): PodNetwork | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  const all = rec(doc);
  if (!all) throw bad('must be a JSON object keyed by network');
  if (all[key] === undefined) return null;
  const e = rec(all[key]);
  const p = (f: string) => `${key}.${f}`;
  if (!e) throw bad(`${key} must be an object`);
  const ipAddresses = e.ip_addresses !== undefined ? cidrs(e.ip_addresses, p('ip_addresses')) : e.ip_address !== undefined ? cidrs([e.ip_address], p('ip_address')) : [];
  const mac = e.mac_address;
  if (typeof mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw bad(`${p('mac_address')} ${JSON.stringify(mac)} is not a MAC address`);
  const gatewayIps = e.gateway_ips !== undefined ? ips(e.gateway_ips, p('gateway_ips')) : e.gateway_ip !== undefined && e.gateway_ip !== '' ? ips([e.gateway_ip], p('gateway_ip')) : [];
  const routes = e.routes === undefined ? [] : Array.isArray(e.routes) ? e.routes : null;
  if (!routes) throw bad(`${p('routes')} must be an array`);
  return {
    ipAddresses,
    macAddress: mac.toLowerCase(),
    gatewayIps,
    routes: routes.map((raw, i) => {
      const r = rec(raw);
      const dest = r?.dest;
      const nextHop = r?.nextHop;
      if (typeof dest !== 'string' || !parseCidr(dest)) throw bad(`${p(`routes[${i}].dest`)} ${JSON.stringify(dest)} is not a CIDR`);
      if (typeof nextHop !== 'string' || ipFamily(nextHop) === null) throw bad(`${p(`routes[${i}].nextHop`)} ${JSON.stringify(nextHop)} is not an IP address`);
      return { dest, nextHop };
    }),
    role: typeof e.role === 'string' ? e.role : null,
  };
}

/**
 * As ovn-k's CNI configures them: the addresses with their family's gateway, the annotation's
 * routes, and on the pod's primary network (the default one, or a network whose role is
 * "primary") a default route via each family's gateway.
 */
export function podNetworkResult(n: PodNetwork, primary: boolean): Result {
  const gw = (address: string) => n.gatewayIps.find((g) => ipFamily(g) === parseCidr(address)?.family);
  const addresses: ResultIp[] = n.ipAddresses.map((address) => {
    const g = gw(address);
    return g ? { address, gateway: g } : { address };
  });
  const routes: ResultRoute[] = n.routes.map((r) => ({ dst: r.dest, gw: r.nextHop }));
  if (primary) for (const g of n.gatewayIps) routes.push({ dst: ipFamily(g) === 6 ? '::/0' : '0.0.0.0/0', gw: g });
  return { interfaces: [], ips: addresses, routes, dns: {} };
}

/** An API failure as the CNI error an operator can act on; the host is unchanged at this point. */
function apiError(err: unknown, what: string): CniError {
  if (!(err instanceof KubeApiError)) return new CniError(ErrorCode.Internal, `${what}: ${(err as Error).message}`);
  switch (err.kind) {
    case 'config':
    case 'tls':
    case 'unauthorized':
    case 'forbidden':
      return new CniError(ErrorCode.InvalidConfig, `${what}: ${err.message}`, 'check "kubeconfig" in the network config');
    case 'decode':
      return new CniError(ErrorCode.DecodeFailure, `${what}: ${err.message}`);
    default:
      return new CniError(ErrorCode.TryAgainLater, `${what}: ${err.message}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The ovn-k network name of a NAD (its config's `name`), for the port's k8s.ovn.org/network. */
async function networkNameOf(creds: KubeCredentials, nad: string): Promise<string> {
  const [ns, name] = nad.split('/') as [string, string];
  const what = `NetworkAttachmentDefinition ${nad}`;
  let obj: unknown;
  try {
    obj = await kubeGet(creds, `/apis/k8s.cni.cncf.io/v1/namespaces/${encodeURIComponent(ns)}/network-attachment-definitions/${encodeURIComponent(name)}`, REQUEST_TIMEOUT_MS);
  } catch (err) {
    throw apiError(err, what);
  }
  const config = rec(rec(obj)?.spec)?.config;
  let netName: unknown;
  try {
    netName = typeof config === 'string' ? rec(JSON.parse(config))?.name : undefined;
  } catch {
    netName = undefined;
  }
  if (typeof netName !== 'string' || !netName) throw new CniError(ErrorCode.InvalidConfig, `ovn.network: ${what} has no spec.config with a network name`);
  return netName;
}

/** Waits for the pod's annotation entry and returns what ADD configures and plugs. */
export async function ovnkAttachment(conf: NetConf & { readonly ovn: { readonly network: string; readonly annotationTimeoutMs: number } }, env: CniEnv, log: Logger): Promise<OvnkAttachment> {
  const ifaceId = ifaceIdOf(conf, env);
  const ns = env.args.podNamespace!;
  const name = env.args.podName!;
  let creds: KubeCredentials;
  try {
    creds = conf.kubeconfig ? loadKubeconfig(conf.kubeconfig) : inClusterCredentials(process.env);
  } catch (err) {
    throw apiError(err, 'Kubernetes API credentials');
  }
  const key = conf.ovn.network;
  const what = `pod ${ns}/${name}`;
  const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;
  const started = Date.now();
  const deadline = started + conf.ovn.annotationTimeoutMs;
  let seen = false;
  for (;;) {
    let pod: Record<string, unknown> | null = null;
    try {
      pod = rec(await kubeGet(creds, path, REQUEST_TIMEOUT_MS));
    } catch (err) {
      const notYet = err instanceof KubeApiError && err.kind === 'not-found' && !seen && Date.now() - started < POD_APPEAR_MS;
      if (!notYet) throw apiError(err, what);
    }
    if (pod) {
      seen = true;
      const meta = rec(pod.metadata) ?? {};
      const uid = typeof meta.uid === 'string' ? meta.uid : '';
      if (env.args.podUid && uid !== env.args.podUid) {
        throw new CniError(ErrorCode.TryAgainLater, `${what} has UID ${uid}, but the runtime asked for ${env.args.podUid}: it was deleted and created again`);
      }
      const text = rec(meta.annotations)?.[POD_NETWORKS];
      const entry = typeof text === 'string' ? parsePodNetworks(text, key) : null;
      if (entry) {
        log.info('ovnkube-controller annotated the pod', { pod: `${ns}/${name}`, network: key, waitedMs: Date.now() - started, addresses: entry.ipAddresses, mac: entry.macAddress });
        const externalIds: Record<string, string> = key === 'default' ? {} : { 'k8s.ovn.org/network': await networkNameOf(creds, key), 'k8s.ovn.org/nad': key };
        return {
          podUid: uid,
          ifaceId,
          mac: entry.macAddress,
          addresses: podNetworkResult(entry, key === 'default' || entry.role === 'primary'),
          externalIds,
        };
      }
    }
    if (Date.now() + POLL_MS > deadline) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `timed out after ${conf.ovn.annotationTimeoutMs} ms waiting for ${what}'s ${POD_NETWORKS} annotation entry "${key}"`,
        'is ovnkube-controller running, and does "ovn.network" name a network the pod is attached to?',
      );
    }
    await sleep(POLL_MS);
  }
}

/**
 * The CNI result in one internal shape (1.1.0's), parsed from any supported version and printed
 * in the version the caller asked for.
 */
import { ipFamily, parseCidr } from './ip.js';
import { Decoder, type Obj } from './decode.js';
import { compareVersions, type CniVersion } from './version.js';

export interface ResultInterface {
  readonly name: string;
  readonly mac?: string;
  readonly mtu?: number;
  readonly sandbox?: string;
  readonly socketPath?: string;
  readonly pciID?: string;
}

export interface ResultIp {
  /** CIDR: `10.1.0.5/24` */
  readonly address: string;
  readonly gateway?: string;
  /** Index into `interfaces`. */
  readonly interface?: number;
}

export interface ResultRoute {
  readonly dst: string;
  readonly gw?: string;
  readonly mtu?: number;
  readonly advmss?: number;
  readonly priority?: number;
  readonly table?: number;
  readonly scope?: number;
}

export interface ResultDns {
  readonly nameservers?: readonly string[];
  readonly domain?: string;
  readonly search?: readonly string[];
  readonly options?: readonly string[];
}

export interface Result {
  readonly interfaces: readonly ResultInterface[];
  readonly ips: readonly ResultIp[];
  readonly routes: readonly ResultRoute[];
  readonly dns: ResultDns;
}

export const EMPTY_RESULT: Result = { interfaces: [], ips: [], routes: [], dns: {} };

const ROUTE_EXTRAS = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;

/** Parses a result of any supported version (an IPAM answer, a prevResult). */
export function parseResult(v: unknown, path: string, d = new Decoder()): Result {
  const o = d.object(v, path);
  const interfaces = d.optArray(o, 'interfaces', path).map((raw, i): ResultInterface => {
    const p = `${path}.interfaces[${i}]`;
    const it = d.object(raw, p);
    return strip({
      name: d.string(it, 'name', p),
      mac: d.optString(it, 'mac', p),
      mtu: d.optInt(it, 'mtu', p, 0, 0x7fffffff),
      sandbox: d.optString(it, 'sandbox', p),
      socketPath: d.optString(it, 'socketPath', p),
      pciID: d.optString(it, 'pciID', p),
    });
  });
  const ips = d.optArray(o, 'ips', path).map((raw, i): ResultIp => {
    const p = `${path}.ips[${i}]`;
    const ip = d.object(raw, p);
    const address = d.string(ip, 'address', p);
    if (!parseCidr(address)) d.fail(`${p}.address`, `"${address}" is not an address in CIDR form`);
    const gateway = d.optString(ip, 'gateway', p);
    if (gateway !== undefined && !ipFamily(gateway)) d.fail(`${p}.gateway`, `"${gateway}" is not an IP address`);
    const index = d.optInt(ip, 'interface', p, 0, interfaces.length - 1);
    return strip({ address, gateway, interface: index });
  });
  const routes = d.optArray(o, 'routes', path).map((raw, i): ResultRoute => {
    const p = `${path}.routes[${i}]`;
    const r = d.object(raw, p);
    const dst = d.string(r, 'dst', p);
    if (!parseCidr(dst)) d.fail(`${p}.dst`, `"${dst}" is not a destination in CIDR form`);
    const gw = d.optString(r, 'gw', p);
    if (gw !== undefined && !ipFamily(gw)) d.fail(`${p}.gw`, `"${gw}" is not an IP address`);
    const route: Record<string, unknown> = { dst, gw };
    for (const k of ROUTE_EXTRAS) route[k] = d.optInt(r, k, p, 0, 0xffffffff);
    return strip(route as unknown as ResultRoute);
  });
  const dnsObj = d.optObject(o, 'dns', path) ?? {};
  const dns: ResultDns = strip({
    nameservers: optList(d, dnsObj, 'nameservers', `${path}.dns`),
    domain: d.optString(dnsObj, 'domain', `${path}.dns`),
    search: optList(d, dnsObj, 'search', `${path}.dns`),
    options: optList(d, dnsObj, 'options', `${path}.dns`),
  });
  return { interfaces, ips, routes, dns };
}

function optList(d: Decoder, o: Obj, key: string, path: string): string[] | undefined {
  return o[key] === undefined ? undefined : d.stringList(o, key, path);
}

/** Drops undefined keys so printed JSON and deep-equal comparisons see only what is set. */
function strip<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The result as printed for `cniVersion`: 1.1.0 as is; 1.0.0 without the 1.1-only keys; 0.3.x and
 * 0.4.0 without them and with `ips[].version`.
 */
export function resultForVersion(r: Result, cniVersion: CniVersion): Record<string, unknown> {
  const v11 = compareVersions(cniVersion, '1.1.0') >= 0;
  const pre1 = compareVersions(cniVersion, '1.0.0') < 0;
  const out: Record<string, unknown> = { cniVersion };
  if (r.interfaces.length) {
    out.interfaces = r.interfaces.map((i) => (v11 ? i : strip({ name: i.name, mac: i.mac, sandbox: i.sandbox })));
  }
  if (r.ips.length) {
    out.ips = r.ips.map((ip) =>
      pre1 ? strip({ version: String(parseCidr(ip.address)?.family ?? 4), ...ip }) : ip,
    );
  }
  if (r.routes.length) out.routes = r.routes.map((rt) => (v11 ? rt : strip({ dst: rt.dst, gw: rt.gw })));
  out.dns = r.dns;
  return out;
}

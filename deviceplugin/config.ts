/**
 * The pool configuration: parsed from `unknown` into typed pools, with errors that name the field.
 * The file format is the incumbent sriov-network-device-plugin's `resourceList` for `netDevice`
 * pools, so an existing config moves over unchanged.
 */
import type { VdpaDriver } from '../host/snapshot.js';

/** A `pfNames` / `rootDevices` entry: a PF (netdev name or PCI address) and, after `#`, VF indexes. */
export interface PfMatch {
  readonly pf: string;
  /** null = every VF of the PF. */
  readonly vfs: ReadonlySet<number> | null;
}

/** All given fields must match (an empty list matches anything). */
export interface Selector {
  readonly vendors: readonly string[];
  readonly devices: readonly string[];
  readonly drivers: readonly string[];
  readonly pciAddresses: readonly string[];
  readonly pfNames: readonly PfMatch[];
  readonly rootDevices: readonly PfMatch[];
  readonly vdpaType: VdpaDriver;
}

export interface PoolConfig {
  readonly resourcePrefix: string;
  readonly resourceName: string;
  /** `<prefix>/<name>`: the extended resource the kubelet advertises. */
  readonly resource: string;
  readonly excludeTopology: boolean;
  /** Tried in order; a device joins the pool when any selector matches. */
  readonly selectors: readonly Selector[];
  /** Extra `_INFO` keys by device ID, `*` for every device (the device's own entry wins). */
  readonly additionalInfo: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

export interface Config {
  /** In file order: the first pool that matches a device claims it. */
  readonly pools: readonly PoolConfig[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The incumbent's default, so NetworkAttachmentDefinitions written for it keep working. */
export const DEFAULT_RESOURCE_PREFIX = 'intel.com';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const HEX_ID = /^(0x)?[0-9a-fA-F]{4}$/;
const PCI_ADDRESS = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;
const DRIVER_NAME = /^[A-Za-z0-9_.-]+$/;
// IFNAMSIZ is 16 with the terminating NUL; "/" and whitespace are never valid, "#" starts the range.
const NETDEV_NAME = /^[^\s/#:]{1,15}$/;

const POOL_KEYS = ['resourceName', 'resourcePrefix', 'deviceType', 'excludeTopology', 'selectors', 'additionalInfo'];
const SELECTOR_KEYS = [
  'vendors',
  'devices',
  'drivers',
  'pciAddresses',
  'pfNames',
  'rootDevices',
  'vdpaType',
  'isRdma',
  'needVhostNet',
];
/** Incumbent selector keys that have no meaning for vDPA pools: say so rather than "unknown key". */
const INCUMBENT_ONLY = ['linkTypes', 'ddpProfiles', 'auxTypes', 'acpiIndexes', 'pKeys'];

function fail(path: string, message: string): never {
  throw new ConfigError(`${path}: ${message}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? `"${v}"` : typeof v === 'object' ? 'an object' : String(v);
}

function asObject(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** Edit distance, to point at a typo ("vendor", "resourceNmae") instead of only refusing it. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

function checkKeys(obj: Record<string, unknown>, known: readonly string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const at = `${path}.${key}`;
    if (INCUMBENT_ONLY.includes(key)) fail(at, 'not supported for vDPA pools');
    const near = known.find((k) => distance(k.toLowerCase(), key.toLowerCase()) <= 2);
    fail(at, near ? `unknown key; did you mean "${near}"?` : `unknown key (known: ${known.join(', ')})`);
  }
}

function asString(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, `must be a string, got ${describe(v)}`);
  return v;
}

function asBoolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `must be true or false, got ${describe(v)}`);
  return v;
}

function list<T>(v: unknown, path: string, item: (s: string, at: string) => T): T[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(path, `must be a list of strings, got ${describe(v)}`);
  return v.map((s, i) => item(asString(s, `${path}[${i}]`), `${path}[${i}]`));
}

export function checkResourcePrefix(prefix: string, path: string): string {
  if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
    fail(path, `"${prefix}" is not a DNS subdomain (lower-case letters, digits, "-" and ".")`);
  }
  return prefix;
}

function checkResourceName(name: string, path: string): string {
  if (name.length > 63 || !QUALIFIED_NAME.test(name)) {
    fail(path, `"${name}" must be 1-63 letters, digits, "_", "-" or ".", starting and ending with a letter or digit`);
  }
  return name;
}

function hexId(s: string, path: string): string {
  if (!HEX_ID.test(s)) fail(path, `"${s}" is not a 4-digit hex ID such as "15b3"`);
  return s.replace(/^0x/, '').toLowerCase();
}

/** `65:00.2` and `0000:65:00.2` name the same function; sysfs spells it the long, lower-case way. */
export function normalizePciAddress(s: string): string | null {
  const m = PCI_ADDRESS.exec(s);
  if (!m) return null;
  return `${m[1] ?? '0000'}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

function pciAddress(s: string, path: string): string {
  const addr = normalizePciAddress(s);
  if (addr === null) fail(path, `"${s}" is not a PCI address such as "0000:65:00.2"`);
  return addr;
}

function driverName(s: string, path: string): string {
  if (!DRIVER_NAME.test(s)) fail(path, `"${s}" is not a driver name`);
  return s;
}

/** `0-3,7` → {0,1,2,3,7}. */
function vfIndexes(ranges: string, whole: string, path: string): Set<number> {
  const out = new Set<number>();
  const bad = (why: string): never => fail(path, `bad VF range "${ranges}" in "${whole}": ${why}`);
  if (ranges === '') bad('empty');
  for (const part of ranges.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) bad(`"${part}" is not an index or a range such as 0-3`);
    const start = Number(m![1]);
    const end = m![2] === undefined ? start : Number(m![2]);
    if (start > end) bad(`start ${start} is greater than end ${end}`);
    if (end > 65535) bad(`index ${end} is out of range`);
    for (let i = start; i <= end; i++) out.add(i);
  }
  return out;
}

function pfMatch(s: string, path: string, pf: (name: string, at: string) => string): PfMatch {
  const hash = s.indexOf('#');
  if (hash < 0) return { pf: pf(s, path), vfs: null };
  if (s.indexOf('#', hash + 1) >= 0) fail(path, `"${s}" has more than one "#"`);
  return { pf: pf(s.slice(0, hash), path), vfs: vfIndexes(s.slice(hash + 1), s, path) };
}

function pfName(s: string, path: string): string {
  if (!NETDEV_NAME.test(s)) fail(path, `"${s}" is not a netdev name`);
  return s;
}

function vdpaType(v: unknown, path: string): VdpaDriver {
  if (v !== 'virtio' && v !== 'vhost') fail(path, 'must be "virtio" or "vhost"');
  return v;
}

function parseSelector(raw: unknown, path: string): Selector {
  const obj = asObject(raw, path);
  checkKeys(obj, SELECTOR_KEYS, path);
  // The incumbent allows these flags on netDevice pools; neither can be combined with vDPA.
  if (obj.isRdma !== undefined && asBoolean(obj.isRdma, `${path}.isRdma`)) {
    fail(`${path}.isRdma`, 'cannot be combined with vdpaType');
  }
  if (obj.needVhostNet !== undefined && asBoolean(obj.needVhostNet, `${path}.needVhostNet`)) {
    fail(`${path}.needVhostNet`, 'cannot be combined with vdpaType');
  }
  return {
    vendors: list(obj.vendors, `${path}.vendors`, hexId),
    devices: list(obj.devices, `${path}.devices`, hexId),
    drivers: list(obj.drivers, `${path}.drivers`, driverName),
    pciAddresses: list(obj.pciAddresses, `${path}.pciAddresses`, pciAddress),
    pfNames: list(obj.pfNames, `${path}.pfNames`, (s, at) => pfMatch(s, at, pfName)),
    rootDevices: list(obj.rootDevices, `${path}.rootDevices`, (s, at) => pfMatch(s, at, pciAddress)),
    vdpaType: vdpaType(obj.vdpaType, `${path}.vdpaType`),
  };
}

function parseAdditionalInfo(raw: unknown, path: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  if (raw === undefined) return out;
  for (const [key, value] of Object.entries(asObject(raw, path))) {
    const at = `${path}["${key}"]`;
    const id = key === '*' ? key : normalizePciAddress(key);
    if (id === null) fail(at, 'keys must be "*" or a device PCI address');
    const entries: Record<string, string> = {};
    for (const [k, v] of Object.entries(asObject(value, at))) entries[k] = asString(v, `${at}.${k}`);
    out.set(id, entries);
  }
  return out;
}

function parsePool(raw: unknown, path: string, defaultPrefix: string): PoolConfig {
  const obj = asObject(raw, path);
  checkKeys(obj, POOL_KEYS, path);
  if (obj.resourceName === undefined) fail(`${path}.resourceName`, 'required');
  const resourceName = checkResourceName(asString(obj.resourceName, `${path}.resourceName`), `${path}.resourceName`);
  const resourcePrefix =
    obj.resourcePrefix === undefined
      ? defaultPrefix
      : checkResourcePrefix(asString(obj.resourcePrefix, `${path}.resourcePrefix`), `${path}.resourcePrefix`);
  if (obj.deviceType !== undefined && obj.deviceType !== 'netDevice') {
    fail(`${path}.deviceType`, `must be "netDevice" (vDPA devices are net devices), got ${describe(obj.deviceType)}`);
  }
  if (obj.selectors === undefined) fail(`${path}.selectors`, 'required');
  // The incumbent takes one selector object or an ordered list of them.
  const selectors = Array.isArray(obj.selectors)
    ? obj.selectors.map((s: unknown, i) => parseSelector(s, `${path}.selectors[${i}]`))
    : [parseSelector(obj.selectors, `${path}.selectors`)];
  if (selectors.length === 0) fail(`${path}.selectors`, 'must hold at least one selector');
  return {
    resourcePrefix,
    resourceName,
    resource: `${resourcePrefix}/${resourceName}`,
    excludeTopology: obj.excludeTopology === undefined ? false : asBoolean(obj.excludeTopology, `${path}.excludeTopology`),
    selectors,
    additionalInfo: parseAdditionalInfo(obj.additionalInfo, `${path}.additionalInfo`),
  };
}

/** Validates a decoded config document; throws ConfigError naming the first bad field. */
export function parseConfig(raw: unknown, defaultPrefix: string = DEFAULT_RESOURCE_PREFIX): Config {
  const top = asObject(raw, 'config');
  checkKeys(top, ['resourceList'], 'config');
  if (!Array.isArray(top.resourceList)) fail('resourceList', `must be a list of pools, got ${describe(top.resourceList)}`);
  if (top.resourceList.length === 0) fail('resourceList', 'must hold at least one pool');
  const pools = top.resourceList.map((p, i) => parsePool(p, `resourceList[${i}]`, defaultPrefix));
  const seen = new Map<string, number>();
  pools.forEach((pool, i) => {
    const first = seen.get(pool.resource);
    if (first !== undefined) fail(`resourceList[${i}].resourceName`, `"${pool.resource}" is already defined by resourceList[${first}]`);
    seen.set(pool.resource, i);
  });
  return { pools };
}

/** The config file's text → Config; JSON syntax errors are ConfigErrors too. */
export function parseConfigText(text: string, defaultPrefix: string = DEFAULT_RESOURCE_PREFIX): Config {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config: not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(raw, defaultPrefix);
}

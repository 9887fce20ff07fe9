/**
 * The pool configuration: parsed from `unknown` into typed pools, with errors that name the field.
 * The file format is the incumbent sriov-network-device-plugin's `resourceList`, so an existing
 * config (as the SR-IOV network operator writes it) moves over unchanged: keys match as Go's
 * encoding/json matches them (case-insensitively, so `IsRdma` is `isRdma`), and the pools this
 * plugin does not serve (no `vdpaType`, another `deviceType`) are skipped, each with a warning.
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
  /** Empty matches anything; otherwise it must hold "ether" (every vDPA net device is Ethernet). */
  readonly linkTypes: readonly string[];
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
  /** One line per pool or selector that loads but does nothing here (pools of plain VFs, …). */
  readonly warnings: readonly string[];
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

/** `SelectorObj` / `SelectorObjs`: the incumbent's internal field, which Go's json.Marshal writes (as null). */
const POOL_KEYS = ['resourceName', 'resourcePrefix', 'deviceType', 'excludeTopology', 'selectors', 'additionalInfo', 'SelectorObj', 'SelectorObjs'];
const SELECTOR_KEYS = [
  'vendors',
  'devices',
  'drivers',
  'pciAddresses',
  'pfNames',
  'rootDevices',
  'linkTypes',
  'vdpaType',
  'isRdma',
  'needVhostNet',
];
/** Incumbent selector keys that have no meaning for vDPA pools: say so rather than "unknown key". */
const INCUMBENT_ONLY = ['ddpProfiles', 'auxTypes', 'acpiIndexes', 'pKeys'];
/** The link type a vDPA net device has (what the incumbent's `linkTypes` compares with). */
export const VDPA_LINK_TYPE = 'ether';

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

/**
 * The object with its keys spelled as in `known`: Go's encoding/json, which the incumbent decodes
 * with, takes `IsRdma` or `isrdma` for `isRdma`, and a null value as no value. The same key given
 * twice is refused; an unknown key too, unless `others` lets it through (a skipped pool's keys).
 */
function knownKeys(obj: Record<string, unknown>, known: readonly string[], path: string, others = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const spelled = new Map<string, string>();
  for (const [key, value] of Object.entries(obj)) {
    const canonical = known.find((k) => k.toLowerCase() === key.toLowerCase());
    const at = `${path}.${key}`;
    if (canonical === undefined) {
      if (others) continue;
      if (INCUMBENT_ONLY.some((k) => k.toLowerCase() === key.toLowerCase())) fail(at, 'not supported for vDPA pools');
      const near = known.find((k) => distance(k.toLowerCase(), key.toLowerCase()) <= 2);
      fail(at, near ? `unknown key; did you mean "${near}"?` : `unknown key (known: ${known.join(', ')})`);
    }
    const earlier = spelled.get(canonical);
    if (earlier !== undefined) fail(at, `given twice, as "${earlier}" and "${key}"`);
    spelled.set(canonical, key);
    if (value !== null) out[canonical] = value;
  }
  return out;
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

function linkTypes(v: unknown, path: string, warnings: string[]): string[] {
  const types = list(v, path, (s) => s);
  if (types.length && !types.includes(VDPA_LINK_TYPE)) warnings.push(`${path}: ${JSON.stringify(types)} selects no vDPA device (their link type is "${VDPA_LINK_TYPE}")`);
  return types;
}

function parseSelector(obj: Record<string, unknown>, path: string, warnings: string[]): Selector {
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
    linkTypes: linkTypes(obj.linkTypes, `${path}.linkTypes`, warnings),
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

/** The pool's selectors with their paths; the incumbent takes one object or an ordered list. */
function selectorObjects(v: unknown, path: string): { obj: Record<string, unknown>; at: string }[] {
  if (v === undefined) fail(path, 'required');
  const out = Array.isArray(v) ? v.map((s: unknown, i) => ({ obj: asObject(s, `${path}[${i}]`), at: `${path}[${i}]` })) : [{ obj: asObject(v, path), at: path }];
  if (out.length === 0) fail(path, 'must hold at least one selector');
  return out;
}

/** As the incumbent reads it: a missing, null or empty vdpaType selects plain VFs. */
const hasVdpaType = (sel: Record<string, unknown>): boolean => Object.entries(sel).some(([k, v]) => k.toLowerCase() === 'vdpatype' && v !== null && v !== '');

/**
 * Why this plugin leaves a pool to another (the incumbent serves plain VFs and accelerators),
 * or null when it serves it. A pool that mixes vDPA and plain selectors is refused.
 */
function notServed(obj: Record<string, unknown>, path: string): string | null {
  if (obj.deviceType !== undefined && obj.deviceType !== 'netDevice') return `deviceType ${describe(obj.deviceType)}: only netDevice pools with a vdpaType are served here`;
  const selectors = selectorObjects(obj.selectors, `${path}.selectors`);
  const plain = selectors.filter((s) => !hasVdpaType(s.obj));
  if (plain.length === selectors.length) return 'no selector has a vdpaType: a pool of plain VFs, for sriov-network-device-plugin';
  if (plain.length) fail(`${plain[0]!.at}.vdpaType`, 'required: another selector of this pool has one, and a pool is either vDPA or not');
  return null;
}

function parsePool(obj: Record<string, unknown>, path: string, defaultPrefix: string, warnings: string[]): PoolConfig {
  const resourceName = checkResourceName(asString(obj.resourceName, `${path}.resourceName`), `${path}.resourceName`);
  const resourcePrefix =
    obj.resourcePrefix === undefined
      ? defaultPrefix
      : checkResourcePrefix(asString(obj.resourcePrefix, `${path}.resourcePrefix`), `${path}.resourcePrefix`);
  const selectors = selectorObjects(obj.selectors, `${path}.selectors`).map((s) => parseSelector(knownKeys(s.obj, SELECTOR_KEYS, s.at), s.at, warnings));
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
  const top = knownKeys(asObject(raw, 'config'), ['resourceList'], 'config');
  if (!Array.isArray(top.resourceList)) fail('resourceList', `must be a list of pools, got ${describe(top.resourceList)}`);
  if (top.resourceList.length === 0) fail('resourceList', 'must hold at least one pool');
  const pools: PoolConfig[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, string>();
  top.resourceList.forEach((raw: unknown, i) => {
    const path = `resourceList[${i}]`;
    const given = asObject(raw, path);
    // Whether the pool is served decides which keys are ours to check.
    const lenient = knownKeys(given, POOL_KEYS, path, true);
    if (lenient.resourceName === undefined) fail(`${path}.resourceName`, 'required');
    const skipped = notServed(lenient, path);
    if (skipped !== null) {
      warnings.push(`${path} (resourceName ${describe(lenient.resourceName)}) skipped: ${skipped}`);
      return;
    }
    const pool = parsePool(knownKeys(given, POOL_KEYS, path), path, defaultPrefix, warnings);
    const first = seen.get(pool.resource);
    if (first !== undefined) fail(`${path}.resourceName`, `"${pool.resource}" is already defined by ${first}`);
    seen.set(pool.resource, path);
    pools.push(pool);
  });
  return { pools, warnings };
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

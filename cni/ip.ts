/**
 * Address helpers for results and CHECK: validate CIDRs and compare them in canonical form.
 * The address syntax is node:net's isIPv4/isIPv6, written out: loading node:net costs the Bun-built
 * CNI a few milliseconds per call (test/cni/ip.test.ts checks that the two agree).
 */

const V4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const V4 = `(?:${V4_PART}\\.){3}${V4_PART}`;
const V6_PART = '(?:[0-9a-fA-F]{1,4})';
const IPV4 = new RegExp(`^${V4}$`);
const IPV6 = new RegExp(
  '^(?:' +
    `(?:${V6_PART}:){7}(?:${V6_PART}|:)|` +
    `(?:${V6_PART}:){6}(?:${V4}|:${V6_PART}|:)|` +
    `(?:${V6_PART}:){5}(?::${V4}|(?::${V6_PART}){1,2}|:)|` +
    `(?:${V6_PART}:){4}(?:(?::${V6_PART}){0,1}:${V4}|(?::${V6_PART}){1,3}|:)|` +
    `(?:${V6_PART}:){3}(?:(?::${V6_PART}){0,2}:${V4}|(?::${V6_PART}){1,4}|:)|` +
    `(?:${V6_PART}:){2}(?:(?::${V6_PART}){0,3}:${V4}|(?::${V6_PART}){1,5}|:)|` +
    `(?:${V6_PART}:){1}(?:(?::${V6_PART}){0,4}:${V4}|(?::${V6_PART}){1,6}|:)|` +
    `(?::(?:(?::${V6_PART}){0,5}:${V4}|(?::${V6_PART}){1,7}|:))` +
    ')(?:%[0-9a-zA-Z-.:]{1,})?$',
);

/** Dotted-quad IPv4, as node:net's isIPv4. */
export const isIPv4 = (ip: string): boolean => IPV4.test(ip);

/** IPv6 (with an optional zone), as node:net's isIPv6. */
export const isIPv6 = (ip: string): boolean => IPV6.test(ip);

export type Family = 4 | 6;

export function ipFamily(ip: string): Family | null {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  return null;
}

/** IPv6 in RFC 5952 form (what `ip -j` prints); IPv4 as is. */
export function canonicalIp(ip: string): string {
  if (!isIPv6(ip)) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

export interface Cidr {
  readonly ip: string;
  readonly prefix: number;
  readonly family: Family;
}

/** Parses `10.1.2.3/24` or `fd00::5/64`; null when it is not one. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = ipFamily(ip);
  if (!family || !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) return null;
  return { ip: canonicalIp(ip), prefix, family };
}


/** Address helpers for results and CHECK: validate CIDRs and compare them in canonical form. */
import { isIPv4, isIPv6 } from 'node:net';

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


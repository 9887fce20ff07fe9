import { CniError, ErrorCode } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares dotted versions numerically: -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** The first cniVersion that knows each verb (CHECK 0.4.0, STATUS and GC 1.1.0). */
const VERB_SINCE: Record<string, CniVersion> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

/** Fails with code 1 when the config's version cannot carry the verb. */
export function assertVerbAllowed(verb: string, cniVersion: CniVersion): void {
  const since = VERB_SINCE[verb];
  if (since && compareVersions(cniVersion, since) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `${verb} is not supported in cniVersion ${cniVersion}`,
      `${verb} needs cniVersion ${since} or later`,
    );
  }
}

/** The cniVersion the config on stdin names, if it is JSON that names one (VERSION answers in it). */
export function requestedVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The VERSION answer: the caller's version echoed, or the latest when it sent none. */
export function versionInfo(requested: string | undefined): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: requested || LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

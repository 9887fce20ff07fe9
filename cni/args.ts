import { CniError, ErrorCode } from './errors.js';

/** The CNI_ARGS keys we read; Kubernetes runtimes send them, podman sends only K8S_POD_NAME. */
export interface CniArgs {
  readonly podNamespace: string | null;
  readonly podName: string | null;
  readonly podUid: string | null;
  readonly infraContainerId: string | null;
}

const KNOWN: Record<string, keyof CniArgs> = {
  K8S_POD_NAMESPACE: 'podNamespace',
  K8S_POD_NAME: 'podName',
  K8S_POD_UID: 'podUid',
  K8S_POD_INFRA_CONTAINER_ID: 'infraContainerId',
};

const truthy = (v: string) => ['1', 'true'].includes(v.toLowerCase());

/**
 * Parses `K=V;K=V`. Like the Go plugins, an unknown key is an error unless the caller sent
 * `IgnoreUnknown=1` (every Kubernetes runtime does).
 */
export function parseCniArgs(raw: string): CniArgs {
  const out: Record<keyof CniArgs, string | null> = {
    podNamespace: null,
    podName: null,
    podUid: null,
    infraContainerId: null,
  };
  if (!raw) return out;
  const pairs: [string, string][] = [];
  for (const item of raw.split(';')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CniError(ErrorCode.InvalidEnv, `CNI_ARGS: "${item}" is not KEY=VALUE`);
    pairs.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  const ignoreUnknown = pairs.some(([k, v]) => k === 'IgnoreUnknown' && truthy(v));
  for (const [key, value] of pairs) {
    const field = KNOWN[key];
    if (field) out[field] = value === '' ? null : value;
    else if (key !== 'IgnoreUnknown' && !ignoreUnknown) {
      throw new CniError(ErrorCode.InvalidEnv, `CNI_ARGS: unknown key "${key}" (send IgnoreUnknown=1 to allow it)`);
    }
  }
  return out;
}

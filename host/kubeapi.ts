/**
 * A small, read-only Kubernetes API client: GET of one object over HTTPS, authenticated the way
 * node plugins are (a kubeconfig file with a bearer token or a client certificate, or the pod's
 * service account), with failures sorted by cause so the caller can answer each one clearly.
 * Loaded only by the ovn-kubernetes mode (cni/ovnk.ts).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface KubeCredentials {
  /** `https://host:port` */
  readonly server: string;
  /** PEM of the CA that signed the API server's certificate; null: the system's roots. */
  readonly ca: string | null;
  readonly token: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  /** Where they came from, for messages: the kubeconfig path or "the service account". */
  readonly source: string;
}

export type KubeFailure = 'config' | 'unreachable' | 'tls' | 'unauthorized' | 'forbidden' | 'not-found' | 'http' | 'decode';

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly kind: KubeFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const rec = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `name` entries of a kubeconfig list (clusters, users, contexts), by name. */
function named(list: unknown, what: string, name: string, file: string): Record<string, unknown> {
  const entry = (Array.isArray(list) ? list : []).map(rec).find((e) => e.name === name);
  if (!entry) throw new KubeApiError('config', `${file}: no ${what} named "${name}"`);
  return rec(entry[what]);
}

/** Inline `<key>-data` (base64) or the file `<key>` (relative to the kubeconfig's directory). */
function material(o: Record<string, unknown>, key: string, file: string): string | null {
  const data = str(o[`${key}-data`]);
  if (data) return Buffer.from(data, 'base64').toString('utf8');
  const path = str(o[key]);
  if (!path) return null;
  const full = isAbsolute(path) ? path : join(dirname(file), path);
  try {
    return readFileSync(full, 'utf8');
  } catch (err) {
    throw new KubeApiError('config', `${file}: ${key} ${full}: ${(err as Error).message}`);
  }
}

/** The current context's cluster and user of a kubeconfig file (YAML or JSON). */
export function loadKubeconfig(file: string): KubeCredentials {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KubeApiError('config', `kubeconfig ${file}: ${(err as Error).message}`);
  }
  const o = rec(doc);
  const contextName = str(o['current-context']);
  if (!contextName) throw new KubeApiError('config', `${file}: current-context is not set`);
  const context = named(o.contexts, 'context', contextName, file);
  const cluster = named(o.clusters, 'cluster', str(context.cluster) ?? '', file);
  const user = named(o.users, 'user', str(context.user) ?? '', file);
  const server = str(cluster.server);
  if (!server?.startsWith('https://')) throw new KubeApiError('config', `${file}: cluster.server must be an https:// URL, got ${JSON.stringify(cluster.server)}`);
  const tokenFile = str(user.tokenFile);
  let token = str(user.token) ?? null;
  if (!token && tokenFile) {
    try {
      token = readFileSync(isAbsolute(tokenFile) ? tokenFile : join(dirname(file), tokenFile), 'utf8').trim();
    } catch (err) {
      throw new KubeApiError('config', `${file}: tokenFile ${tokenFile}: ${(err as Error).message}`);
    }
  }
  const cert = material(user, 'client-certificate', file);
  const key = material(user, 'client-key', file);
  if (!token && !(cert && key)) throw new KubeApiError('config', `${file}: user "${String(context.user)}" has neither a token nor a client certificate and key`);
  return { server, ca: material(cluster, 'certificate-authority', file), token, cert, key, source: `kubeconfig ${file}` };
}

/** The service account of a pod (KUBERNETES_SERVICE_HOST/PORT and the mounted token and CA). */
export function inClusterCredentials(env: NodeJS.ProcessEnv, dir = '/var/run/secrets/kubernetes.io/serviceaccount'): KubeCredentials {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new KubeApiError('config', 'no "kubeconfig" in the network config and no in-cluster service account (KUBERNETES_SERVICE_HOST is not set)');
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      throw new KubeApiError('config', `service account ${join(dir, name)}: ${(err as Error).message}`);
    }
  };
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca: read('ca.crt'), token: read('token').trim(), cert: null, key: null, source: 'the in-cluster service account' };
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL/;
const REACH_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

/** The API's Status message of a failed call, when it sent one. */
function statusMessage(body: string): string {
  try {
    const m = rec(JSON.parse(body)).message;
    return typeof m === 'string' ? m : body.slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}

/** GET `path` (e.g. `/api/v1/namespaces/ns/pods/p`) as JSON. */
export function kubeGet(creds: KubeCredentials, path: string, timeoutMs: number): Promise<unknown> {
  const url = new URL(path, creds.server);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        headers: { Accept: 'application/json', 'User-Agent': 'vdpa-cni', ...(creds.token ? { Authorization: `Bearer ${creds.token}` } : {}) },
        ...(creds.ca ? { ca: creds.ca } : {}),
        ...(creds.cert && creds.key ? { cert: creds.cert, key: creds.key } : {}),
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const where = `GET ${url.pathname}`;
          if (status === 200) {
            try {
              resolve(JSON.parse(body));
            } catch {
              reject(new KubeApiError('decode', `${where}: the API server's answer is not JSON`));
            }
            return;
          }
          const msg = statusMessage(body);
          if (status === 401) reject(new KubeApiError('unauthorized', `${where}: 401 Unauthorized (${msg}): the credentials of ${creds.source} were refused (missing, wrong or expired token or certificate)`, status));
          else if (status === 403) reject(new KubeApiError('forbidden', `${where}: 403 Forbidden (${msg})`, status));
          else if (status === 404) reject(new KubeApiError('not-found', `${where}: 404 (${msg})`, status));
          else reject(new KubeApiError('http', `${where}: HTTP ${status} (${msg})`, status));
        });
        res.on('error', (err) => reject(new KubeApiError('unreachable', `GET ${url.pathname}: ${err.message}`)));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${creds.server} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (TLS_CODES.test(code)) reject(new KubeApiError('tls', `${creds.server}: TLS verification failed (${code}: ${err.message}); is the certificate authority of ${creds.source} the API server's?`));
      else if (REACH_CODES.has(code)) reject(new KubeApiError('unreachable', `${creds.server} is unreachable (${code}: ${err.message})`));
      else reject(new KubeApiError('unreachable', `${creds.server}: ${err.message}`));
    });
    req.end();
  });
}

/**
 * A stand-in for the Kubernetes API server, for the ovn-kubernetes mode's tests (no API server
 * comes from the package registries). It speaks what vdpa-cni uses of the real one: HTTPS with a
 * certificate the test made (openssl), bearer-token and client-certificate authentication, and
 * GET of Pods (/api/v1/namespaces/{ns}/pods/{name}) and NetworkAttachmentDefinitions
 * (/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}) in the API's
 * JSON shapes, with its Status objects for 401 and 404. Tests change the objects (annotate a pod
 * as ovnkube-controller does) through its methods.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly caKey: string;
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A CA, and certificates it signs: the server's (for 127.0.0.1) and clients'. */
function makeCa(dir: string, name: string): Pki {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`]);
  return { dir, ca: join(dir, `${name}.crt`), caKey: join(dir, `${name}.key`) };
}

function sign(pki: Pki, name: string, subject: string, ext: string): { cert: string; key: string } {
  const d = pki.dir;
  openssl(d, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  writeFileSync(join(d, `${name}.ext`), ext);
  openssl(d, ['x509', '-req', '-in', `${name}.csr`, '-CA', pki.ca, '-CAkey', pki.caKey, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
  return { cert: join(d, `${name}.crt`), key: join(d, `${name}.key`) };
}

interface Stored {
  readonly kind: 'pods' | 'network-attachment-definitions';
  readonly body: Record<string, unknown>;
}

export interface KubeconfigOptions {
  readonly token?: string;
  /** Authenticate with a client certificate signed by the API's CA instead of a token. */
  readonly clientCert?: boolean;
  /** Trust this CA file instead of the API's. */
  readonly caFile?: string;
  /** Point at another server URL (an unreachable one). */
  readonly server?: string;
}

export class KubeApiStandIn {
  readonly dir = mkdtempSync(join(tmpdir(), 'kube-api-'));
  readonly tokens = new Set<string>(['good-token']);
  private readonly pki = makeCa(this.dir, 'ca');
  /** A CA that signed nothing the server presents: for the wrong-CA case. */
  readonly otherCa = makeCa(this.dir, 'other-ca').ca;
  private readonly serverCert = sign(this.pki, 'server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  private readonly client = sign(this.pki, 'client', '/CN=system:node:node1/O=system:nodes', 'extendedKeyUsage=clientAuth\n');
  private readonly objects = new Map<string, Stored>();
  private server: Server | null = null;
  private rv = 100;
  /** Requests served, as "<status> <method> <path>". */
  readonly log: string[] = [];
  url = '';

  async start(): Promise<void> {
    this.server = createServer(
      { cert: readFileSync(this.serverCert.cert), key: readFileSync(this.serverCert.key), ca: readFileSync(this.pki.ca), requestCert: true, rejectUnauthorized: false },
      (req, res) => this.handle(req, res),
    );
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A Pod as the API returns it; its UID. */
  createPod(namespace: string, name: string, annotations: Record<string, string> = {}): string {
    const uid = randomUUID();
    this.objects.set(`pods/${namespace}/${name}`, {
      kind: 'pods',
      body: {
        kind: 'Pod',
        apiVersion: 'v1',
        metadata: { name, namespace, uid, resourceVersion: String(++this.rv), creationTimestamp: new Date().toISOString(), labels: { app: name }, annotations },
        spec: { containers: [{ name: 'main', image: 'registry.example/app:1', resources: {} }], nodeName: 'node1', restartPolicy: 'Always', schedulerName: 'default-scheduler' },
        status: { phase: 'Pending', qosClass: 'BestEffort' },
      },
    });
    return uid;
  }

  deletePod(namespace: string, name: string): void {
    this.objects.delete(`pods/${namespace}/${name}`);
  }

  /** What ovnkube-controller does once it has assigned the pod's addresses. */
  annotate(namespace: string, name: string, key: string, value: string): void {
    const pod = this.objects.get(`pods/${namespace}/${name}`);
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    const meta = pod.body.metadata as Record<string, unknown>;
    meta.annotations = { ...(meta.annotations as Record<string, string>), [key]: value };
    meta.resourceVersion = String(++this.rv);
  }

  createNad(namespace: string, name: string, config: Record<string, unknown>): void {
    this.objects.set(`network-attachment-definitions/${namespace}/${name}`, {
      kind: 'network-attachment-definitions',
      body: {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name, namespace, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: new Date().toISOString() },
        spec: { config: JSON.stringify(config) },
      },
    });
  }

  /** A kubeconfig file as kubectl writes it (YAML), for the CNI's "kubeconfig". */
  kubeconfig(file: string, o: KubeconfigOptions = {}): string {
    const path = join(this.dir, file);
    const user = o.clientCert
      ? `    client-certificate: ${this.client.cert}\n    client-key-data: ${readFileSync(this.client.key).toString('base64')}\n`
      : `    token: ${o.token ?? 'good-token'}\n`;
    writeFileSync(
      path,
      `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ${o.server ?? this.url}
    certificate-authority-data: ${readFileSync(o.caFile ?? this.pki.ca).toString('base64')}
users:
- name: vdpa-cni
  user:
${user}contexts:
- name: test
  context:
    cluster: test
    user: vdpa-cni
current-context: test
`,
    );
    return path;
  }

  private status(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, string>): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', this.url).pathname;
    const reply = (code: number, send: () => void) => {
      this.log.push(`${code} ${req.method} ${path}`);
      send();
    };
    const auth = req.headers.authorization ?? '';
    const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    const certOk = (req.socket as TLSSocket).authorized === true;
    if (!(bearer !== null ? this.tokens.has(bearer) : certOk)) {
      reply(401, () => this.status(res, 401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const m =
      /^\/api\/v1\/namespaces\/([^/]+)\/(pods)\/([^/]+)$/.exec(path) ??
      /^\/apis\/k8s\.cni\.cncf\.io\/v1\/namespaces\/([^/]+)\/(network-attachment-definitions)\/([^/]+)$/.exec(path);
    if (req.method !== 'GET' || !m) {
      reply(404, () => this.status(res, 404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const [, ns, kind, name] = m as unknown as [string, string, string, string];
    const obj = this.objects.get(`${kind}/${decodeURIComponent(ns)}/${decodeURIComponent(name)}`);
    if (!obj) {
      const what = kind === 'pods' ? 'pods' : 'network-attachment-definitions.k8s.cni.cncf.io';
      reply(404, () => this.status(res, 404, 'NotFound', `${what} "${name}" not found`, { name, kind: kind === 'pods' ? 'pods' : 'network-attachment-definitions', ...(kind === 'pods' ? {} : { group: 'k8s.cni.cncf.io' }) }));
      return;
    }
    reply(200, () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj.body));
    });
  }
}

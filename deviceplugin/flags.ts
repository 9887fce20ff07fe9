/**
 * Command-line flags: one table gives each flag its default and its help line, so `--help`
 * and the parser cannot disagree.
 */
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../host/log.js';
import { pathsFromEnv } from '../host/paths.js';
import { podResourcesSocketBeside } from '../host/podresources.js';
import { checkResourcePrefix, ConfigError, DEFAULT_RESOURCE_PREFIX } from './config.js';

export type RegistrationMode = 'auto' | 'kubelet' | 'watcher';

export interface ListenAddress {
  /** '' = every interface. */
  readonly host: string;
  readonly port: number;
}

export interface Flags {
  readonly config: string;
  readonly resourcePrefix: string;
  readonly kubeletDir: string;
  /** The kubelet's pod resources API: which devices its containers hold. */
  readonly podResourcesSocket: string;
  readonly pluginsRegistryDir: string;
  readonly registration: RegistrationMode;
  readonly watcherGraceMs: number;
  readonly devinfoDir: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  /** null = no metrics endpoint. */
  readonly metricsAddr: ListenAddress | null;
  readonly logLevel: LogLevel;
  readonly cniStateDir: string;
  /** Allocate answers with CDI device names and a CDI spec is kept in cdiDir. */
  readonly cdi: boolean;
  readonly cdiDir: string;
}

export type Args = { readonly help: true } | { readonly help: false; readonly flags: Flags };

export class FlagError extends Error {
  override name = 'FlagError';
}

interface FlagSpec {
  readonly name: string;
  readonly arg: string;
  readonly help: string;
  /** `flag` gives another flag's value, for defaults that follow it. */
  readonly defaultValue: (env: NodeJS.ProcessEnv, flag: (name: string) => string) => string;
  /** `--name` alone means true; `--name=false` is the only way to give false. */
  readonly boolean?: true;
}

const FLAGS: readonly FlagSpec[] = [
  { name: 'config', arg: 'FILE', help: 'pool configuration (resourceList JSON); edits are reloaded', defaultValue: () => '/etc/vdpa-k8s/config.json' },
  { name: 'resource-prefix', arg: 'PREFIX', help: 'resource prefix for pools that do not set resourcePrefix', defaultValue: () => DEFAULT_RESOURCE_PREFIX },
  { name: 'kubelet-dir', arg: 'DIR', help: "the kubelet's device-plugin directory (kubelet.sock, plugin sockets)", defaultValue: () => '/var/lib/kubelet/device-plugins' },
  { name: 'pod-resources-socket', arg: 'FILE', help: "the kubelet's pod resources API, asked which devices pods hold", defaultValue: (_env, flag) => podResourcesSocketBeside(flag('kubelet-dir')) },
  { name: 'plugins-registry-dir', arg: 'DIR', help: "the kubelet's plugin-watcher directory", defaultValue: () => '/var/lib/kubelet/plugins_registry' },
  { name: 'registration', arg: 'MODE', help: 'auto | kubelet | watcher; auto = watcher when --plugins-registry-dir exists, kubelet.sock when the watcher does not pick the sockets up', defaultValue: () => 'auto' },
  { name: 'watcher-grace', arg: 'SECONDS', help: 'how long auto waits for the kubelet to pick up watcher sockets', defaultValue: () => '20' },
  { name: 'devinfo-dir', arg: 'DIR', help: 'DeviceInfo root; files go to DIR/dp (env VDPA_DEVINFO_DIR)', defaultValue: (env) => pathsFromEnv(env).devinfoDir },
  { name: 'sysfs-root', arg: 'DIR', help: 'where sysfs is read from (env VDPA_SYSFS_ROOT)', defaultValue: (env) => pathsFromEnv(env).sysfsRoot },
  { name: 'dev-root', arg: 'DIR', help: 'where /dev is read from (env VDPA_DEV_ROOT)', defaultValue: (env) => pathsFromEnv(env).devRoot },
  { name: 'metrics-addr', arg: 'HOST:PORT', help: 'Prometheus /metrics listen address; empty disables it', defaultValue: () => '127.0.0.1:9402' },
  { name: 'log-level', arg: 'LEVEL', help: `${LOG_LEVELS.join(' | ')}`, defaultValue: () => 'info' },
  { name: 'cni-state-dir', arg: 'DIR', help: "vdpa-cni's state directory, whose call outcomes /metrics exports (env VDPA_STATE_DIR)", defaultValue: (env) => pathsFromEnv(env).stateDir },
  { name: 'cdi', arg: '', help: "Allocate names CDI devices (as the incumbent's --use-cdi) and a CDI spec is kept in --cdi-dir", defaultValue: () => 'false', boolean: true },
  { name: 'cdi-dir', arg: 'DIR', help: 'where the CDI spec is written with --cdi', defaultValue: () => '/var/run/cdi' },
];

const specOf = (name: string): FlagSpec => FLAGS.find((f) => f.name === name)!;

/** A flag's value: given, or its default (which may follow other flags). */
function resolver(given: ReadonlyMap<string, string>, env: NodeJS.ProcessEnv): (name: string) => string {
  const get = (name: string): string => given.get(name) ?? specOf(name).defaultValue(env, get);
  return get;
}

export function helpText(env: NodeJS.ProcessEnv = process.env): string {
  const get = resolver(new Map(), env);
  const rows = FLAGS.map((f) => [`--${f.name}${f.arg ? ` ${f.arg}` : ''}`, `${f.help} (default "${get(f.name)}")`] as const);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return [
    'vdpa-device-plugin — advertises vDPA-backed VFs to the kubelet as extended resources.',
    '',
    'Usage: vdpa-device-plugin [flags]',
    '       vdpa-device-plugin provision|teardown|install-cni --help',
    '',
    'Flags:',
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`),
    `  ${'--help'.padEnd(width)}show this text`,
    '',
    'Logs go to stderr as JSON lines. SIGTERM or SIGINT stops the servers and removes their sockets.',
    '',
  ].join('\n');
}

export function parseListenAddress(s: string): ListenAddress | null {
  if (s === '') return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new FlagError(`--metrics-addr: "${s}" is not HOST:PORT (e.g. 127.0.0.1:9402, [::1]:9402, :9402)`);
  return { host: m[1] ?? m[2] ?? '', port };
}

function registration(value: string): RegistrationMode {
  if (value !== 'auto' && value !== 'kubelet' && value !== 'watcher') {
    throw new FlagError(`--registration: must be auto, kubelet or watcher, got "${value}"`);
  }
  return value;
}

function seconds(name: string, value: string): number {
  const n = Number(value);
  if (value === '' || !Number.isFinite(n) || n <= 0) throw new FlagError(`--${name}: must be a positive number of seconds, got "${value}"`);
  return Math.round(n * 1000);
}

function boolean(name: string, value: string): boolean {
  if (value !== 'true' && value !== 'false') throw new FlagError(`--${name}: must be true or false, got "${value}"`);
  return value === 'true';
}

function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw new FlagError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return value;
}

function resourcePrefix(value: string): string {
  try {
    return checkResourcePrefix(value, '--resource-prefix');
  } catch (err) {
    throw new FlagError((err as ConfigError).message);
  }
}

/** `--name value` and `--name=value`; later flags win. */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Args {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new FlagError(`unexpected argument "${arg}"; see --help`);
    const spec = FLAGS.find((f) => f.name === m[1]);
    if (!spec) throw new FlagError(`unknown flag --${m[1]}; see --help`);
    let value = m[2] ?? (spec.boolean ? 'true' : undefined);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new FlagError(`--${spec.name} needs a value (${spec.arg})`);
    }
    given.set(spec.name, value);
  }
  const get = resolver(given, env);
  const path = (name: string): string => {
    const value = get(name);
    if (value === '') throw new FlagError(`--${name}: must not be empty`);
    return value;
  };
  return {
    help: false,
    flags: {
      config: path('config'),
      resourcePrefix: resourcePrefix(get('resource-prefix')),
      kubeletDir: path('kubelet-dir'),
      podResourcesSocket: path('pod-resources-socket'),
      pluginsRegistryDir: path('plugins-registry-dir'),
      registration: registration(get('registration')),
      watcherGraceMs: seconds('watcher-grace', get('watcher-grace')),
      devinfoDir: path('devinfo-dir'),
      sysfsRoot: path('sysfs-root'),
      devRoot: path('dev-root'),
      metricsAddr: parseListenAddress(get('metrics-addr')),
      logLevel: logLevel(get('log-level')),
      cniStateDir: path('cni-state-dir'),
      cdi: boolean('cdi', get('cdi')),
      cdiDir: path('cdi-dir'),
    },
  };
}

/**
 * Runs the built vdpa-device-plugin as a process, the way a DaemonSet would: flags pointing at a
 * fixture node, a config file and a DeviceInfo directory in a temporary workspace, JSON logs read
 * back from stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Fixture } from '../support/fixture.js';
import { KubeletStandIn, until } from '../support/kubelet.js';
import { DP_BIN } from '../support/paths.js';

let binary: string | null = null;

/**
 * A private copy of the built binary: other suites running at the same time may rebuild
 * build/out (the runner rewrites it in place), and a half-written binary must not be what runs.
 */
function pluginBinary(): string {
  if (binary) return binary;
  const lock = join(dirname(DP_BIN), '.building');
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-dp-bin-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, 'vdpa-device-plugin');
  for (let attempt = 0; attempt < 600; attempt++) {
    const before = statSync(DP_BIN, { throwIfNoEntry: false })?.mtimeMs;
    if (before !== undefined && !existsSync(lock)) {
      copyFileSync(DP_BIN, copy);
      if (!existsSync(lock) && statSync(DP_BIN, { throwIfNoEntry: false })?.mtimeMs === before) {
        chmodSync(copy, 0o755);
        return (binary = copy);
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
  throw new Error(`${DP_BIN} stayed missing or mid-build for 5 minutes`);
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A config file and a DeviceInfo directory that outlive one plugin process. */
export class Workspace {
  readonly dir: string;
  readonly configPath: string;
  readonly devinfoDir: string;

  /** `base`: where to create it (the benchmark puts DeviceInfo on tmpfs, as /var/run is). */
  constructor(base: string = tmpdir()) {
    this.dir = mkdtempSync(join(base, 'vdpa-dp-'));
    this.configPath = join(this.dir, 'config.json');
    this.devinfoDir = join(this.dir, 'devinfo');
  }

  /** An object is written as JSON, a string as it is; replaced by a rename, as editors and kubectl do. */
  writeConfig(config: unknown): void {
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    renameSync(tmp, this.configPath);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface PluginRunOptions {
  readonly ws: Workspace;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly kubeletDir: string;
  readonly registryDir?: string;
  readonly registration?: 'auto' | 'kubelet' | 'watcher';
  /** Serve metrics on an ephemeral port (see metricsUrl). Default off. */
  readonly metrics?: boolean;
  readonly args?: readonly string[];
  /** Extra environment (NODE_OPTIONS, …) on top of this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

export class PluginProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly proc: ChildProcess;

  private constructor(
    readonly args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.proc = spawn(pluginBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.proc.on('error', (err) => this.logs.push({ level: 'raw', msg: `spawn failed: ${err.message}` }));
    let partial = '';
    this.proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', msg: line });
        }
      }
      if (process.env.DP_TEST_LOGS) process.stderr.write(chunk);
    });
    this.proc.stdout!.resume();
    this.exit = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
  }

  static start(o: PluginRunOptions): PluginProcess {
    return PluginProcess.run(
      [
      '--config', o.ws.configPath,
      '--kubelet-dir', o.kubeletDir,
      '--plugins-registry-dir', o.registryDir ?? join(o.ws.dir, 'no-plugins-registry'),
      '--registration', o.registration ?? 'auto',
      '--devinfo-dir', o.ws.devinfoDir,
      '--sysfs-root', o.sysfsRoot,
      '--dev-root', o.devRoot,
      '--metrics-addr', o.metrics ? '127.0.0.1:0' : '',
      ...(o.args ?? []),
      ],
      o.env,
    );
  }

  /** The binary with exactly these arguments. */
  static run(args: readonly string[], env?: NodeJS.ProcessEnv): PluginProcess {
    return new PluginProcess(args, env);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 10_000, what = 'a log line'): Promise<LogLine> {
    return until(() => this.logs.find(match), timeoutMs, `${what}; stderr so far:\n${this.stderr}`);
  }

  /** Log lines after the n-th one that match. */
  logsSince(n: number, match: (l: LogLine) => boolean): LogLine[] {
    return this.logs.slice(n).filter(match);
  }

  async metricsUrl(): Promise<string> {
    const line = await this.waitForLog((l) => l.msg === 'serving metrics', 10_000, 'the metrics endpoint');
    return `http://${String(line.addr)}/metrics`;
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(sig);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A fixture node, a workspace holding `config`, a kubelet stand-in, and the plugin running against them. */
export class Scenario {
  private constructor(
    readonly fx: Fixture,
    readonly ws: Workspace,
    readonly kubelet: KubeletStandIn,
    readonly plugin: PluginProcess,
  ) {}

  static async start(o: { fixture: Fixture; config: unknown; metrics?: boolean }): Promise<Scenario> {
    const ws = new Workspace();
    ws.writeConfig(o.config);
    const kubelet = await KubeletStandIn.start();
    const plugin = PluginProcess.start({ ws, sysfsRoot: o.fixture.sysfsRoot, devRoot: o.fixture.devRoot, kubeletDir: kubelet.dir, metrics: o.metrics });
    return new Scenario(o.fixture, ws, kubelet, plugin);
  }

  /** Stops the plugin and the stand-in, removes the workspace and the fixture. */
  async stop(): Promise<void> {
    await this.plugin.stop();
    await this.kubelet.stop();
    this.ws.cleanup();
    this.fx.cleanup();
  }
}

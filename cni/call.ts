/**
 * One CNI call past VERSION: env and config parsed into a context, the verb run, the answer or the
 * error printed, the outcome recorded. cni/main.ts loads this only for the verbs that need it.
 */
import { createLogger, type Logger } from '../host/log.js';
import { recordOutcome } from '../host/outcomes.js';
import { pathsFromEnv } from '../host/paths.js';
import { cmdAdd } from './add.js';
import { cmdCheck } from './check.js';
import type { CallContext } from './context.js';
import { cmdDel } from './del.js';
import { toCniError } from './errors.js';
import { cmdGc } from './gc.js';
import type { StepObserver } from './journal.js';
import { parseEnv, parseNetConf } from './netconf.js';
import { emit, print } from './output.js';
import { resultForVersion } from './result.js';
import { cmdStatus } from './status.js';
import { LATEST_VERSION } from './version.js';

/**
 * For the kill -9 suites only: VDPA_CNI_TEST_PAUSE=before:<step> or after:<step> makes ADD print
 * `{"testPause":"<point>"}` on stderr at that point and wait there, so a suite can kill it at an
 * exact step. Unset, ADD runs with no observer at all.
 */
function testPauseObserver(point: string | undefined): StepObserver | null {
  if (!point) return null;
  return async (at) => {
    if (at !== point) return;
    emit(2, JSON.stringify({ testPause: at }) + '\n');
    await new Promise(() => setInterval(() => undefined, 1 << 30));
  };
}

const SECRET = /token|password|passwd|secret|credential|private|key-data|client-key/i;

/** The network config as it may be logged: values of keys that look like credentials are dropped. */
function redacted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redacted);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET.test(k) ? '[redacted]' : redacted(v)]));
}

/** What an operator needs to see of a call at debug level: the verb, the config, the CNI_ARGS used, the deviceID and where it came from. */
function logCall(ctx: CallContext): void {
  let raw: unknown = null;
  try {
    raw = JSON.parse(ctx.stdin);
  } catch {
    // Parsed already; cannot fail here.
  }
  const o = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  const rt = o.runtimeConfig && typeof o.runtimeConfig === 'object' ? (o.runtimeConfig as Record<string, unknown>) : {};
  const deviceIdSource = o.deviceID ? 'deviceID' : rt.deviceID ? 'runtimeConfig.deviceID' : rt.CNIDeviceInfoFile ? 'runtimeConfig.CNIDeviceInfoFile' : 'none';
  ctx.log.debug('call', {
    verb: ctx.env.command,
    netns: ctx.env.netns || undefined,
    cniArgs: Object.fromEntries(Object.entries(ctx.env.args).filter(([, v]) => v !== null)),
    deviceID: ctx.conf.deviceId,
    deviceIDSource: deviceIdSource,
    netconf: redacted(raw),
  });
}

/** Env + stdin → context. Nothing has touched the host yet when this throws. */
function context(stdin: string): CallContext {
  const env = parseEnv(process.env);
  const conf = parseNetConf(stdin, env.command);
  const log = createLogger({
    level: conf.logLevel,
    file: conf.logFile ?? undefined,
    fields: { command: env.command, containerID: env.containerId || undefined, ifname: env.ifname || undefined },
  });
  return { env, conf, stdin, paths: pathsFromEnv(), log, observer: testPauseObserver(process.env.VDPA_CNI_TEST_PAUSE), tally: { rollbacks: 0, reclaims: 0 } };
}

async function execute(ctx: CallContext): Promise<void> {
  const { env, conf } = ctx;
  switch (env.command) {
    case 'ADD':
      print(resultForVersion(await cmdAdd(ctx), conf.cniVersion));
      return;
    case 'DEL':
      return cmdDel(ctx);
    case 'CHECK':
      return cmdCheck(ctx);
    case 'STATUS':
      return cmdStatus(ctx);
    case 'GC':
      return cmdGc(ctx);
  }
}

function fail(err: unknown, log: Logger, cniVersion: string): number {
  const e = toCniError(err);
  log.error(e.message, { code: e.code, details: e.details || undefined, cniVersion });
  print(e.reply(cniVersion));
  return 1;
}

/**
 * Runs the call that `stdin` and the environment describe; `requested` is the cniVersion the
 * config names, for an error before it parses. The exit code.
 */
export async function runCall(stdin: string, requested: string | undefined): Promise<number> {
  const started = performance.now();
  const verb = process.env.CNI_COMMAND ?? '';
  let ctx: CallContext;
  try {
    ctx = context(stdin);
  } catch (err) {
    recordOutcome(pathsFromEnv().stateDir, { verb, network: '', code: toCniError(err).code, ms: performance.now() - started, rollback: false, reclaims: 0 });
    return fail(err, createLogger({ level: 'info' }), requested ?? LATEST_VERSION);
  }
  logCall(ctx);
  let code = 0;
  try {
    await execute(ctx);
    ctx.log.info(`${ctx.env.command} done`, { ms: Math.round(performance.now() - started), maxRssKb: process.resourceUsage().maxRSS });
    return 0;
  } catch (err) {
    code = toCniError(err).code;
    return fail(err, ctx.log, ctx.conf.cniVersion);
  } finally {
    const { rollbacks, reclaims } = ctx.tally;
    recordOutcome(ctx.paths.stateDir, { verb, network: ctx.conf.name, code, ms: performance.now() - started, rollback: rollbacks > 0, reclaims });
  }
}

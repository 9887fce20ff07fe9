/**
 * vdpa-device-plugin: flags → logger → plugin (+ metrics endpoint) → wait for SIGTERM/SIGINT.
 * Exit codes: 0 after a signal, 1 when the config is invalid or the plugin cannot start, 2 for bad flags.
 */
import * as grpc from '@grpc/grpc-js';
import type { Server } from 'node:http';
import { createLogger } from '../host/log.js';
import { ConfigError } from './config.js';
import { FlagError, helpText, parseFlags, type Args } from './flags.js';
import { registerCniMetrics } from './cnimetrics.js';
import { installCni } from './installcni.js';
import { Metrics } from './metrics.js';
import { Plugin } from './plugin.js';
import { runSubcommand, SUBCOMMANDS, type Subcommand } from './provision/cli.js';

async function main(): Promise<number> {
  const sub = process.argv[2];
  if ((SUBCOMMANDS as readonly string[]).includes(sub ?? '')) return runSubcommand(sub as Subcommand, process.argv.slice(3));
  if (sub === 'install-cni') return installCni(process.argv.slice(3));
  // Installed first, so a signal during start-up still ends in a clean stop.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  let args: Args;
  try {
    args = parseFlags(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`vdpa-device-plugin: ${err.message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(helpText());
    return 0;
  }
  const { flags } = args;
  const logger = createLogger({ level: flags.logLevel });
  // grpc-js writes its own "E …" lines to stderr; keep stderr JSON lines.
  const grpcLog =
    (level: 'warn' | 'debug') =>
    (...parts: unknown[]): void =>
      logger[level]('grpc-js', { detail: parts.map(String).join(' ') });
  grpc.setLogger({ error: grpcLog('warn'), info: grpcLog('debug'), debug: grpcLog('debug') });
  const metrics = new Metrics();
  registerCniMetrics(metrics.registry, flags.cniStateDir);

  let plugin: Plugin;
  try {
    plugin = await Plugin.start({ flags, logger, metrics });
  } catch (err) {
    const what = err instanceof ConfigError ? 'invalid config' : 'cannot start';
    logger.error(`${what}: ${(err as Error).message}`, { config: flags.config });
    return 1;
  }

  let http: Server | null = null;
  if (flags.metricsAddr) {
    try {
      http = await metrics.serve(flags.metricsAddr, () => plugin.readiness());
      const bound = http.address();
      const addr = bound && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : '';
      logger.info('serving metrics', { addr, path: '/metrics' });
    } catch (err) {
      logger.error(`cannot serve metrics on ${flags.metricsAddr.host}:${flags.metricsAddr.port}: ${(err as Error).message}`);
      await plugin.stop();
      return 1;
    }
  }

  const received = await signal;
  logger.info('stopping', { signal: received });
  http?.closeAllConnections();
  http?.close();
  await plugin.stop();
  logger.info('stopped; sockets removed, DeviceInfo files kept');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`vdpa-device-plugin: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/**
 * A small JSON-lines logger: one object a line on stderr and, optionally, appended to a file.
 * Writes are synchronous so that a CNI call that exits right after logging loses nothing.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Readonly<Record<string, unknown>>;

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. the containerID of one CNI call). */
  with(fields: LogFields): Logger;
  /** Closes the log file, if any; later lines still reach stderr. */
  close(): void;
}

export interface LoggerOptions {
  /** Lines below this level are dropped. Default "info". */
  readonly level?: LogLevel;
  /** Append lines to this file too (see openLogFile for the files it refuses). */
  readonly file?: string;
  /** Write to stderr (default true). */
  readonly stderr?: boolean;
  /** Fields on every line. */
  readonly fields?: LogFields;
}

/** Errors become their message (JSON.stringify would print `{}`); bigints become strings. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

interface Sink {
  fds: number[];
  fileFd: number | null;
}

function makeLogger(minRank: number, sink: Sink, base: LogFields): Logger {
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(level) < minRank) return;
    const line = JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields }, replacer) + '\n';
    for (const fd of sink.fds) {
      try {
        writeSync(fd, line);
      } catch {
        // A closed stderr or a full disk must never turn a log line into a failure.
      }
    }
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    with: (fields) => makeLogger(minRank, sink, { ...base, ...fields }),
    close: () => {
      if (sink.fileFd === null) return;
      const fd = sink.fileFd;
      sink.fileFd = null;
      sink.fds = sink.fds.filter((f) => f !== fd);
      closeSync(fd);
    },
  };
}

const { O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_WRONLY } = constants;

/**
 * Opens `file` for appending, creating it with mode 0600 (an existing file keeps its mode), or
 * throws why not. Whoever writes a network config names this path and we run as root, so:
 * - never through a symlink (refused before opening; O_NOFOLLOW, ELOOP, if one appears after);
 * - never in a directory that does not exist (nothing is created but the file), nor in a
 *   world-writable one without the sticky bit (anyone could swap the file there);
 * - never a FIFO or device: refused before opening (opening some devices has effects, e.g. a
 *   watchdog), and O_NONBLOCK keeps a FIFO that appears after from hanging the call (ENXIO);
 * - never a file another uid owns (one planted for us to write into);
 * - never a file that is not a log of ours: an existing file must be empty or start with one
 *   of our lines, so a config naming /etc/passwd or a /proc/sys knob cannot make us append to it.
 */
const OUR_LINE = '{"ts":"';

/** Why an existing file is not a log this logger wrote, or "" when it is (or is new, or empty). */
function notOurs(file: string, existed: boolean): string {
  if (!existed) return '';
  if (/^\/(proc|sys|dev)(\/|$)/.test(realpathSync(dirname(file)))) return 'is a kernel file, not a log';
  const head = Buffer.alloc(OUR_LINE.length);
  let n = 0;
  const fd = openSync(file, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    n = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return n === 0 || head.toString('utf8', 0, n) === OUR_LINE ? '' : 'is not a vdpa-k8s log (its first line is not one of ours)';
}

function openLogFile(file: string): number {
  const dir = statSync(dirname(file));
  if (dir.mode & 0o002 && !(dir.mode & 0o1000)) throw new Error(`${dirname(file)} is world-writable and not sticky`);
  const before = lstatSync(file, { throwIfNoEntry: false });
  if (before?.isSymbolicLink()) throw new Error(`${file} is a symlink`);
  if (before && !before.isFile()) throw new Error(`${file} is not a regular file`);
  const fd = openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600);
  const st = fstatSync(fd);
  const me = process.getuid?.() ?? 0;
  const why = !st.isFile() ? 'is not a regular file' : st.uid !== 0 && st.uid !== me ? `is owned by uid ${st.uid}` : notOurs(file, before !== undefined);
  if (why) {
    closeSync(fd);
    throw new Error(`${file} ${why}`);
  }
  return fd;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const sink: Sink = { fds: opts.stderr === false ? [] : [2], fileFd: null };
  let openError: unknown = null;
  if (opts.file) {
    try {
      sink.fileFd = openLogFile(opts.file);
      sink.fds.push(sink.fileFd);
    } catch (err) {
      openError = err;
    }
  }
  const logger = makeLogger(LOG_LEVELS.indexOf(opts.level ?? 'info'), sink, opts.fields ?? {});
  if (openError) logger.warn('cannot open log file; logging to stderr only', { file: opts.file, error: openError });
  return logger;
}

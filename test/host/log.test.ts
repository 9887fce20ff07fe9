// host/log.ts. The log file is named by whoever writes a network config, so the cases it refuses
// run in a child (this file again, VDPA_LOG_TEST_FILE set) whose stderr shows the warning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, isLogLevel } from '../../host/log.js';

const parse = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const lines = (file: string) => parse(readFileSync(file, 'utf8'));

/** A child logs "hello" with `file` as its log file; returns its stderr lines. */
function logFromChild(file: string): Record<string, unknown>[] {
  const r = spawnSync(process.execPath, [process.argv[1]!], { env: { ...process.env, VDPA_LOG_TEST_FILE: file }, encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 0, `child: ${r.error?.message ?? r.stderr}`);
  return parse(r.stderr);
}

/** The child logged "hello" on stderr only, after the warning that names the file and `why`. */
function refused(file: string, why: RegExp): void {
  const got = logFromChild(file);
  assert.is(got.length, 2, JSON.stringify(got));
  assert.is(got[0]!.level, 'warn');
  assert.is(got[0]!.msg, 'cannot open log file; logging to stderr only');
  assert.is(got[0]!.file, file);
  assert.match(String(got[0]!.error), why);
  assert.is(got[1]!.msg, 'hello');
}

function suite(): void {
  const dir = mkdtempSync(join(tmpdir(), 'vdpa-log-'));

  test('writes JSON lines at or above the level, with fields and context', () => {
    const file = join(dir, 'a.log');
    const log = createLogger({ level: 'info', file, stderr: false });
    log.debug('dropped');
    log.info('kept', { n: 1 });
    log.with({ containerID: 'c1' }).error('failed', { error: new Error('boom') });
    log.close();
    const got = lines(file);
    assert.is(got.length, 2);
    assert.is(got[0]!.msg, 'kept');
    assert.is(got[0]!.level, 'info');
    assert.is(got[0]!.n, 1);
    assert.type(got[0]!.ts, 'string');
    assert.is(got[1]!.containerID, 'c1');
    assert.is(got[1]!.error, 'boom');
  });

  test('a new log file is created with mode 0600', () => {
    const file = join(dir, 'new.log');
    createLogger({ file, stderr: false }).close();
    assert.is(statSync(file).mode & 0o7777, 0o600);
  });

  test('appends to an existing file, which keeps its mode; debug level keeps everything', () => {
    const file = join(dir, 'b.log');
    writeFileSync(file, '{"ts":"2026-01-01T00:00:00.000Z","msg":"zero"}\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    createLogger({ level: 'debug', file, stderr: false }).debug('one');
    const log = createLogger({ level: 'debug', file, stderr: false });
    log.warn('two');
    log.close();
    log.warn('after close goes nowhere');
    assert.equal(
      lines(file).map((l) => l.msg),
      ['zero', 'one', 'two'],
    );
    assert.is(statSync(file).mode & 0o7777, 0o644);
  });

  test('a symlink at the path is not followed: its target is untouched, the warning is on stderr', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched\n');
    const link = join(dir, 'link.log');
    symlinkSync(target, link);
    refused(link, /link\.log is a symlink/);
    // Also a dangling one: following it would create the target.
    const dangling = join(dir, 'dangling.log');
    symlinkSync(join(dir, 'created-through-link'), dangling);
    refused(dangling, /is a symlink/);
    assert.is(readFileSync(target, 'utf8'), 'untouched\n');
    assert.not.ok(existsSync(join(dir, 'created-through-link')));
  });

  test('a directory that does not exist is not created', () => {
    const file = join(dir, 'nosuch', 'deeper', 'c.log');
    refused(file, /ENOENT/);
    assert.not.ok(existsSync(join(dir, 'nosuch')));
  });

  test('refuses a FIFO (without hanging), a file another uid owns, and a world-writable directory without the sticky bit', () => {
    const fifo = join(dir, 'fifo.log');
    assert.is(spawnSync('mkfifo', [fifo]).status, 0);
    refused(fifo, /is not a regular file/);

    const planted = join(dir, 'planted.log');
    writeFileSync(planted, '');
    chownSync(planted, 65534, 65534);
    refused(planted, /is owned by uid 65534/);
    assert.is(readFileSync(planted, 'utf8'), '');

    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    refused(join(open, 'd.log'), /open is world-writable and not sticky/);
    assert.not.ok(existsSync(join(open, 'd.log')));
    // /tmp-like: sticky, so nobody else can swap the file; allowed.
    chmodSync(open, 0o1777);
    assert.equal(
      logFromChild(join(open, 'd.log')).map((l) => l.msg),
      ['hello'],
    );
    assert.equal(
      lines(join(open, 'd.log')).map((l) => l.msg),
      ['hello'],
    );
  });

  test('refuses an existing file that is not a log of ours (/etc/passwd, a /proc/sys knob): nothing is appended', () => {
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n');
    refused(passwd, /is not a vdpa-k8s log/);
    assert.is(readFileSync(passwd, 'utf8'), 'root:x:0:0:root:/root:/bin/bash\n');
    refused('/proc/sys/kernel/core_pattern', /is a kernel file, not a log/);
    const empty = join(dir, 'empty.log');
    writeFileSync(empty, '');
    assert.equal(logFromChild(empty).map((l) => l.msg), ['hello'], 'an empty file is taken');
    assert.equal(lines(empty).map((l) => l.msg), ['hello']);
  });

  test('isLogLevel accepts only the four levels', () => {
    assert.ok(isLogLevel('warn'));
    assert.not.ok(isLogLevel('trace'));
    assert.not.ok(isLogLevel(3));
  });

  test.after(() => rmSync(dir, { recursive: true, force: true }));
  test.run();
}

const childFile = process.env.VDPA_LOG_TEST_FILE;
if (childFile) {
  const log = createLogger({ file: childFile });
  log.info('hello');
  log.close();
} else suite();

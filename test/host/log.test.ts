import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, isLogLevel } from '../../host/log.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-log-'));
const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test('writes JSON lines at or above the level, with fields and context', () => {
  const file = join(dir, 'sub', 'a.log');
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

test('appends to an existing file; debug level keeps everything', () => {
  const file = join(dir, 'b.log');
  createLogger({ level: 'debug', file, stderr: false }).debug('one');
  const log = createLogger({ level: 'debug', file, stderr: false });
  log.warn('two');
  log.close();
  log.warn('after close goes nowhere');
  assert.equal(
    lines(file).map((l) => l.msg),
    ['one', 'two'],
  );
});

test('isLogLevel accepts only the four levels', () => {
  assert.ok(isLogLevel('warn'));
  assert.not.ok(isLogLevel('trace'));
  assert.not.ok(isLogLevel(3));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();

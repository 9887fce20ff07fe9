import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { ROOT } from '../support/paths.js';
import { run } from '../support/exec.js';

test('committed proto/gen matches what codegen produces from the .proto files', async () => {
  const r = await run('bash', [join(ROOT, 'proto', 'codegen.sh'), '--check']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /up to date/);
});

test.run();

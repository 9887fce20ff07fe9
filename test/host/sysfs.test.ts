import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUnreadable, leaf, parentOf, readAttr, readLink, readNames, virtfnLinks, type Unreadable } from '../../host/sysfs.js';

const root = realpathSync(mkdtempSync(join(tmpdir(), 'vdpa-sysfs-')));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('readLink resolves every link form as realpath does', () => {
  mkdirSync(join(root, 'devices/pci0000:64/0000:64:00.0/0000:65:00.2'), { recursive: true });
  mkdirSync(join(root, 'bus/pci/devices'), { recursive: true });
  const forms: Record<string, string> = {
    kernel: '../../../devices/pci0000:64/0000:64:00.0/0000:65:00.2',
    dotted: './../../../devices/pci0000:64/./0000:64:00.0/0000:65:00.2',
    middle: '../../../devices/pci0000:64/0000:64:00.0/../0000:64:00.0/0000:65:00.2',
    doubleSlash: '../../..//devices/pci0000:64/0000:64:00.0/0000:65:00.2',
    absolute: join(root, 'devices/pci0000:64/0000:64:00.0/0000:65:00.2'),
  };
  for (const [name, target] of Object.entries(forms)) {
    const link = join(root, 'bus/pci/devices', name);
    symlinkSync(target, link);
    assert.equal(readLink(link), realpathSync(link), name);
  }
  const up = join(root, 'up');
  symlinkSync('..', up);
  assert.equal(readLink(up), parentOf(root));
});

test('failures come back as values: missing, not a link, unreadable', () => {
  const missing = readLink(join(root, 'nope'));
  assert.equal(missing, { path: join(root, 'nope'), code: 'missing' });
  writeFileSync(join(root, 'file'), 'x\n');
  assert.equal(readLink(join(root, 'file')), { path: join(root, 'file'), code: 'EINVAL' });
  mkdirSync(join(root, 'dir'));
  assert.equal(readAttr(join(root, 'dir')), { path: join(root, 'dir'), code: 'EISDIR' });
  assert.equal(readAttr(join(root, 'file')), 'x');
  assert.ok(isUnreadable(readNames(join(root, 'file'))));
  assert.equal([leaf('/a/b/c'), parentOf('/a/b/c'), parentOf('/a')], ['c', '/a/b', '/']);
});

test('virtfnLinks: VF address and N of each virtfnN link, in listing order; an unreadable one is reported', () => {
  const pf = join(root, 'pf');
  mkdirSync(pf);
  symlinkSync('../0000:65:00.3', join(pf, 'virtfn1'));
  symlinkSync('../0000:65:00.2', join(pf, 'virtfn0'));
  writeFileSync(join(pf, 'virtfn2'), '');
  writeFileSync(join(pf, 'virtfn_x'), '');
  const bad: Unreadable[] = [];
  const names = ['virtfn1', 'physfn', 'virtfn0', 'virtfn2', 'virtfn_x', 'net'];
  assert.equal(virtfnLinks(pf, names, (u) => bad.push(u)), [['0000:65:00.3', 1], ['0000:65:00.2', 0]]);
  assert.equal(bad, [{ path: join(pf, 'virtfn2'), code: 'EINVAL' }]);
  assert.equal(virtfnLinks(pf, ['virtfn2']), []);
});

test.run();

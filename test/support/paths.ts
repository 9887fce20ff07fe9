import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root; suites run from .test-build/test/…, so walk up to package.json's folder. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('.test-build') && dir !== '/') dir = dirname(dir);
  return dir === '/' ? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..') : dirname(dir);
}

export const ROOT = findRoot();
export const CNI_BIN = join(ROOT, 'build', 'out', 'vdpa-cni');
export const DP_BIN = join(ROOT, 'build', 'out', 'vdpa-device-plugin');

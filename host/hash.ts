/**
 * SHA-256 and random bytes without loading node:crypto: that module (and the streams it pulls in)
 * costs Bun, the CNI's runtime, a few milliseconds on every call, a quarter of its start. Bun's
 * native hasher where it runs, node:crypto (loaded on first use) elsewhere; a digest is the same
 * whichever runtime computes it, and it must be: lock and state file names and netdev marks are
 * shared by every build on a node.
 */
import { bun } from './bun.js';

/** The SHA-256 of `text` (UTF-8) in lower-case hex. */
export function sha256Hex(text: string): string {
  if (bun) return new bun.CryptoHasher('sha256').update(text).digest('hex');
  return process.getBuiltinModule('node:crypto').createHash('sha256').update(text).digest('hex');
}

/** `bytes` random bytes in lower-case hex (Web Crypto, which both runtimes have built in). */
export function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');
}

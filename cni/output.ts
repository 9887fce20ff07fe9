/**
 * The CNI's stdout and stderr: all of a text to fd 1 or 2, synchronously, so that the process can
 * exit as soon as its answer is out.
 */
import { writeSync } from 'node:fs';

/**
 * All of `text` to fd 1 or 2, synchronously. Not through process.stdout/stderr: setting up those
 * streams costs Bun more than the rest of a VERSION call. A non-blocking pipe from the caller
 * (the flag belongs to the pipe, not to us) is waited for a millisecond at a time.
 */
export function emit(fd: 1 | 2, text: string): void {
  let data = Buffer.from(text);
  while (data.length > 0) {
    try {
      data = data.subarray(writeSync(fd, data));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

export const print = (value: unknown) => emit(1, JSON.stringify(value) + '\n');

/**
 * The CNI's call outcomes, for the device plugin to export as metrics: the CNI lives for one call,
 * so each call appends one JSON line to `<stateDir>/outcomes.jsonl` (one open, one write of
 * less than PIPE_BUF bytes with O_APPEND, so lines from concurrent calls never interleave), and
 * the long-running device plugin reads what is new on each scrape. Once the file has grown past
 * a limit, the reader renames it aside, finishes it, and removes it; writers then start a new one.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';

export interface Outcome {
  readonly verb: string;
  /** The network config's name; "" when the config could not be read. */
  readonly network: string;
  /** 0 for success, else the CNI error code. */
  readonly code: number;
  readonly ms: number;
  /** ADD undid its own steps after a failure. */
  readonly rollback: boolean;
  /** Attachments of gone pods ADD undid before it could use the VF. */
  readonly reclaims: number;
}

const FILE = 'outcomes.jsonl';
const ROTATE_BYTES = 1 << 20;

/** Appends one outcome; never throws (metrics must not fail a call). */
export function recordOutcome(stateDir: string, o: Outcome): void {
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const fd = openSync(join(stateDir, FILE), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, JSON.stringify(o) + '\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    // A read-only or full state directory loses the record, not the call.
  }
}

const isOutcome = (v: unknown): v is Outcome => {
  const o = v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  return (
    o !== null && typeof o.verb === 'string' && typeof o.network === 'string' && typeof o.code === 'number' &&
    typeof o.ms === 'number' && typeof o.rollback === 'boolean' && typeof o.reclaims === 'number'
  );
};

/** Reads the outcomes appended since the last call; lines that do not parse are skipped. */
export class OutcomeReader {
  private offset = 0;
  private partial = '';

  constructor(private readonly stateDir: string) {}

  private readFrom(path: string, from: number): { lines: string[]; end: number } {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return { lines: [], end: 0 };
    }
    try {
      const size = fstatSync(fd).size;
      const start = size < from ? 0 : from;
      const buf = Buffer.alloc(size - start);
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, start + got);
        if (n === 0) break;
        got += n;
      }
      const text = this.partial + buf.toString('utf8', 0, got);
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      return { lines, end: start + got };
    } finally {
      closeSync(fd);
    }
  }

  /** New outcomes; rotates the file once it is large. */
  read(): Outcome[] {
    const path = join(this.stateDir, FILE);
    const { lines, end } = this.readFrom(path, this.offset);
    this.offset = end;
    if (end > ROTATE_BYTES) {
      // Calls that opened the file before the rename still append to it: read it once more.
      const aside = `${path}.${process.pid}.old`;
      try {
        renameSync(path, aside);
        lines.push(...this.readFrom(aside, end).lines);
        rmSync(aside, { force: true });
      } catch {
        // Another reader rotated it first.
      }
      this.offset = 0;
      this.partial = '';
    }
    return lines.flatMap((l) => {
      try {
        const v: unknown = JSON.parse(l);
        return isOutcome(v) ? [v] : [];
      } catch {
        return [];
      }
    });
  }
}

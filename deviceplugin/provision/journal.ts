/**
 * The provisioning state file: what we changed on this node and how to undo it, in the order it
 * was done. It is written before each change (so a crash in the middle still leaves the record),
 * replaced atomically, and it is all `teardown` goes by: what is not in it was not ours.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeAction, parseAction, readerFor, type Action, type ProvisionJournalEffect } from './steps.js';

export const DEFAULT_STATE_FILE = '/var/lib/vdpa-k8s/provision.json';
const VERSION = 1;

export interface ProvisionJournalEntry {
  readonly key: string;
  readonly undo: Action;
  /** When the change was made (ISO time), for people reading the file. */
  readonly at: string;
  /**
   * On a vDPA device we created: the attributes its management device refused, so that their
   * absence is not taken for drift. Missing on records older than drift checking.
   */
  readonly refused?: readonly string[];
}

export class ProvisionJournalError extends Error {
  override name = 'ProvisionJournalError';
}

export function parseProvisionJournal(v: unknown, file: string): ProvisionJournalEntry[] {
  const fail = (at: string, msg: string): never => {
    throw new ProvisionJournalError(`${file}: ${at}: ${msg}`);
  };
  const r = readerFor(v, 'state', fail);
  if (r.num('version') !== VERSION) fail('state.version', `must be ${VERSION}`);
  const entries = (v as { entries?: unknown }).entries;
  if (!Array.isArray(entries)) fail('state.entries', 'must be a list');
  return (entries as unknown[]).map((e, i) => {
    const er = readerFor(e, `state.entries[${i}]`, fail);
    const entry = { key: er.str('key'), at: er.str('at'), undo: parseAction((e as { undo: unknown }).undo, `state.entries[${i}].undo`, fail) };
    return (e as { refused?: unknown }).refused === undefined ? entry : { ...entry, refused: er.strings('refused') };
  });
}

export class ProvisionJournal {
  private constructor(
    readonly file: string,
    private entries: ProvisionJournalEntry[],
  ) {}

  /** The state file's entries; none when there is no file. */
  static open(file: string): ProvisionJournal {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new ProvisionJournal(file, []);
      throw new ProvisionJournalError(`${file}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ProvisionJournalError(`${file}: not valid JSON (${(err as Error).message})`);
    }
    return new ProvisionJournal(file, parseProvisionJournal(json, file));
  }

  list(): readonly ProvisionJournalEntry[] {
    return this.entries;
  }

  has(key: string): boolean {
    return this.entries.some((e) => e.key === key);
  }

  /** Applies a step's effect on the record and saves it; returns whether anything changed. */
  apply(effect: ProvisionJournalEffect): boolean {
    if (effect === null) return false;
    if ('forget' in effect) {
      if (!this.has(effect.forget)) return false;
      this.entries = this.entries.filter((e) => e.key !== effect.forget);
    } else {
      if (this.has(effect.record)) return false;
      this.entries = [...this.entries, { key: effect.record, undo: effect.undo, at: new Date().toISOString() }];
    }
    this.save();
    return true;
  }

  forget(key: string): void {
    this.apply({ forget: key });
  }

  /** What a created device's management device refused (none: []), on its record. */
  noteRefused(key: string, refused: readonly string[]): void {
    const e = this.entries.find((x) => x.key === key);
    if (!e || JSON.stringify(e.refused) === JSON.stringify(refused)) return;
    this.entries = this.entries.map((x) => (x === e ? { ...x, refused } : x));
    this.save();
  }

  private save(): void {
    if (this.entries.length === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    const doc = {
      version: VERSION,
      entries: this.entries.map((e) => ({ ...e, description: describeAction(e.undo) })),
    };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}

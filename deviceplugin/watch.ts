/**
 * Event sources that keep the plugin current: directory watches (kubelet restarts, config edits,
 * node changes) and the periodic tick that backs them up. Real sysfs sends no inotify events, so
 * the tick is what notices most hardware changes there; /dev (devtmpfs), the kubelet directory and
 * the config directory do send events, and so does a fixture tree.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';

/**
 * fs.watch on one directory that survives the directory appearing late, disappearing or being
 * replaced. `onEvent(null)` means "events may have been missed: look again".
 */
export class DirWatch {
  private watcher: FSWatcher | null = null;
  private ino: number | null = null;
  private started = false;

  constructor(
    readonly dir: string,
    private readonly onEvent: (name: string | null) => void,
  ) {
    this.ensure();
    this.started = true;
  }

  /** Cheap; call it on every tick. A directory that appeared or was replaced is reported. */
  ensure(): void {
    const st = statSync(this.dir, { throwIfNoEntry: false });
    const ino = st?.isDirectory() ? st.ino : null;
    if (ino === this.ino && (this.watcher !== null || ino === null)) return;
    this.close();
    this.ino = ino;
    if (ino === null) return;
    try {
      this.watcher = watch(this.dir, { persistent: false }, (_type, name) => this.onEvent(name === null ? null : String(name)));
      this.watcher.on('error', () => {
        this.close();
        this.ino = null;
        this.onEvent(null);
      });
    } catch {
      this.watcher = null;
      this.ino = null;
    }
    if (this.started) this.onEvent(null);
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
  }
}

/** A set of DirWatches with one handler, reconciled against a changing list of directories. */
export class WatchSet {
  private readonly watches = new Map<string, DirWatch>();

  constructor(private readonly onEvent: (dir: string, name: string | null) => void) {}

  set(dirs: Iterable<string>): void {
    const wanted = new Set(dirs);
    for (const [dir, w] of this.watches) {
      if (!wanted.has(dir)) {
        w.close();
        this.watches.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (!this.watches.has(dir)) this.watches.set(dir, new DirWatch(dir, (name) => this.onEvent(dir, name)));
    }
  }

  ensure(): void {
    for (const w of this.watches.values()) w.ensure();
  }

  close(): void {
    this.set([]);
  }
}

/** Runs `fn` once, `ms` after the last trigger of a burst (but at the latest `maxMs` after the first). */
export class Debounced {
  private timer: NodeJS.Timeout | null = null;
  private first = 0;

  constructor(
    private readonly fn: () => void,
    private readonly ms: number,
    private readonly maxMs: number = ms * 4,
  ) {}

  trigger(): void {
    const now = Date.now();
    if (this.timer === null) this.first = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.ms, this.first + this.maxMs - now));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fn();
    }, wait);
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

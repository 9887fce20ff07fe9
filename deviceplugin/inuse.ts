/**
 * Which devices pods hold, and the DeviceInfo files that can go. The kubelet's pod resources API
 * says what its containers hold; a DeviceInfo file under `<devinfo>/dp` only says a device was
 * handed out once. So a file counts as "in use" only while the kubelet cannot say (no answer, or
 * it has just started and may not know its pods yet) and for a grace period after it was written
 * (the kubelet books a device only after Allocate returns, and lists a pod only once admitted).
 */
import { statSync } from 'node:fs';
import { dpDeviceInfoFiles, readDeviceInfo, removeDeviceInfo, type DeviceInfo } from '../host/deviceinfo.js';
import type { Logger } from '../host/log.js';
import { describeHolder, knowsItsPods, listHeldDevices, type HeldDevices } from '../host/podresources.js';
import type { Snapshot } from '../host/snapshot.js';

/** How long a device just handed out counts as in use whatever the kubelet says. */
export const ALLOCATION_GRACE_MS = 30_000;

interface DpFile {
  readonly path: string;
  readonly pci: string;
  /** null for a `pci` document (another device plugin's, in the same directory). */
  readonly vdpaDevice: string | null;
  readonly writtenAt: number;
}

/** The device plugin's files under `<devinfo>/dp`; `unreadable` hears of the ones that are not ours to judge. */
function readDpFiles(devinfoDir: string, unreadable: (message: string) => void = () => {}): DpFile[] {
  const files: DpFile[] = [];
  for (const path of dpDeviceInfoFiles(devinfoDir) ?? []) {
    let di: DeviceInfo | null;
    let writtenAt: number;
    try {
      di = readDeviceInfo(path);
      writtenAt = statSync(path).mtimeMs;
    } catch (err) {
      unreadable(`ignoring DeviceInfo file: ${(err as Error).message}`);
      continue;
    }
    const pci = (di?.vdpa?.['pci-address'] ?? di?.pci?.['pci-address'])?.toLowerCase();
    if (pci) files.push({ path, pci, vdpaDevice: di?.vdpa?.['parent-device'] ?? null, writtenAt });
  }
  return files;
}

const recent = (f: DpFile): boolean => Date.now() - f.writtenAt < ALLOCATION_GRACE_MS;

/**
 * What pods hold, for provisioning: device ID → what says so (the containers the kubelet lists,
 * or the DeviceInfo file where the kubelet cannot say). A warning says when the files had to do,
 * naming them.
 */
export async function heldByPods(podResourcesSocket: string, devinfoDir: string, warnings: string[]): Promise<Map<string, string>> {
  const files = readDpFiles(devinfoDir, (m) => warnings.push(m));
  const named = files.map((f) => f.path).sort().join(', ') || 'none';
  const held = new Map<string, string>();
  let kubelet: HeldDevices | null = null;
  try {
    kubelet = await listHeldDevices(podResourcesSocket);
    for (const [id, holders] of kubelet.held) held.set(id, holders.map(describeHolder).join('; '));
  } catch (err) {
    warnings.push(`cannot ask the kubelet which devices pods hold (${(err as Error).message}); going by the DeviceInfo files: ${named}`);
  }
  const knows = kubelet !== null && knowsItsPods(kubelet);
  if (kubelet && !knows) {
    const seconds = Math.round((Date.now() - kubelet.servingSince) / 1000);
    warnings.push(`the kubelet has served pod resources for ${seconds} s and may not know all its pods yet; the DeviceInfo files count too: ${named}`);
  }
  for (const f of files) if (!held.has(f.pci) && (!knows || recent(f))) held.set(f.pci, f.path);
  return held;
}

export interface DeviceUseOptions {
  readonly podResourcesSocket: string;
  readonly devinfoDir: string;
  readonly logger: Logger;
}

export class DeviceUse {
  private files: readonly DpFile[] = [];
  private kubelet: HeldDevices | null = null;
  /** The last failure to ask the kubelet, so that it is logged once, not on every tick. */
  private failure: string | null | undefined = undefined;
  /** Handed out since the files were last read (their files count from then on). */
  private readonly handedOut = new Set<string>();

  constructor(private readonly opts: DeviceUseOptions) {}

  /** Asks the kubelet now and reads the DeviceInfo files again. */
  async refresh(): Promise<void> {
    // Only our own (vdpa) documents: another plugin's files are not ours to count or remove.
    this.files = readDpFiles(this.opts.devinfoDir).filter((f) => f.vdpaDevice !== null);
    this.handedOut.clear();
    const { podResourcesSocket: socket } = this.opts;
    try {
      this.kubelet = await listHeldDevices(socket);
      if (this.failure !== null) this.opts.logger.info('asking the kubelet which devices pods hold', { socket, held: this.kubelet.held.size });
      this.failure = null;
    } catch (err) {
      this.kubelet = null;
      const error = (err as Error).message;
      if (error !== this.failure) {
        this.opts.logger.warn('cannot ask the kubelet which devices pods hold; every DeviceInfo file counts as a device in use', {
          socket,
          error,
          files: this.files.map((f) => f.path),
        });
      }
      this.failure = error;
    }
  }

  /** Handed out by Allocate just now: in use until the kubelet has had time to book it. */
  markAllocated(ids: Iterable<string>): void {
    for (const id of ids) this.handedOut.add(id);
  }

  /** The kubelet's answer is the truth about use when it has one and has been up long enough. */
  private kubeletKnows(): boolean {
    return this.kubelet !== null && knowsItsPods(this.kubelet);
  }

  /** Device IDs a pod holds, or may hold, as far as is known now. */
  inUse(): Set<string> {
    const ids = new Set([...(this.kubelet?.held.keys() ?? []), ...this.handedOut]);
    const knows = this.kubeletKnows();
    for (const f of this.files) if (!knows || recent(f)) ids.add(f.pci);
    return ids;
  }

  /** Why a file can go now, or null while a pod may still need it. */
  private whyRemove(f: DpFile, snapshot: Snapshot, kubeletKnows: boolean): string | null {
    if (this.kubelet?.held.get(f.pci)?.length) return null;
    const gone = !snapshot.functions.has(f.pci) ? `PCI function ${f.pci} is gone` : !snapshot.vdpa.has(f.vdpaDevice!) ? `vDPA device ${f.vdpaDevice} is gone` : null;
    if (kubeletKnows) return recent(f) ? null : `the kubelet lists no container holding ${f.pci}${gone ? ` (${gone})` : ''}`;
    return gone && !snapshot.errors.length ? gone : null;
  }

  /**
   * Removes the DeviceInfo files of devices no container holds, on the answer of the last
   * refresh(), which the caller made just before. Without a kubelet that knows its pods, only the
   * files of devices that no longer exist go, and only when `snapshot` is a full view of the node.
   */
  release(snapshot: Snapshot): void {
    const knows = this.kubeletKnows();
    this.files = this.files.filter((f) => {
      const reason = this.whyRemove(f, snapshot, knows);
      if (reason === null) return true;
      removeDeviceInfo(f.path);
      this.opts.logger.info('removed a DeviceInfo file no pod needs', { file: f.path, reason });
      return false;
    });
  }
}

/**
 * ADD's journal: the attachment's state file, kept current as steps begin. A step is recorded
 * before its host change starts, so whatever a crash leaves, DEL finds it listed and undoes it.
 */
import { writeState, type AttachmentState, type AttachStep } from '../host/state.js';

/** Told where ADD is: `before:<step>` once the step is recorded, `after:<step>` once it is done. */
export type StepObserver = (point: `${'before' | 'after'}:${AttachStep}`) => Promise<void>;

export class AttachmentJournal {
  constructor(
    private readonly stateDir: string,
    public state: AttachmentState,
    private readonly observer: StepObserver | null,
  ) {
    writeState(stateDir, state);
  }

  /** Records `steps` as begun, then runs the host change that makes them. */
  async step<T>(steps: readonly AttachStep[], fn: () => Promise<T>): Promise<T> {
    if (steps.length) {
      this.state = { ...this.state, steps: [...this.state.steps, ...steps] };
      writeState(this.stateDir, this.state);
    }
    for (const s of steps) await this.observer?.(`before:${s}`);
    const out = await fn();
    for (const s of steps) await this.observer?.(`after:${s}`);
    return out;
  }

  /** Drops a step whose undo has been done already. */
  forget(step: AttachStep): void {
    this.state = { ...this.state, steps: this.state.steps.filter((s) => s !== step) };
    writeState(this.stateDir, this.state);
  }

  /** Records what a step learned (the netdev's identity in the pod). */
  update(facts: Partial<Pick<AttachmentState, 'netdevIdentity'>>): void {
    this.state = { ...this.state, ...facts };
    writeState(this.stateDir, this.state);
  }
}

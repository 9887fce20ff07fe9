/** CNI error codes from the CNI spec's Error section; 100+ are ours. */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableDegraded: 51,
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error that reaches the runtime as the spec's error JSON on stdout. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  /** The spec's error reply (not toJSON: JSON.stringify would call that with a property key). */
  reply(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Any thrown value as a CniError; unexpected errors keep their message under the generic code. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  return new CniError(ErrorCode.Internal, err instanceof Error ? err.message : String(err));
}

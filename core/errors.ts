/**
 * Errors carry a stable string `code` that callers branch on (never the message text),
 * and an optional `cause`. Pattern from sigstore-js `BaseError` and undici `UND_ERR_*`.
 */
export class StellaError<C extends string = string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** True when `err` is a StellaError, optionally with the given code. */
export function isStellaError(err: unknown, code?: string): err is StellaError {
  return err instanceof StellaError && (code === undefined || err.code === code);
}

/**
 * Error classification for the operator runtime: which reconcile errors must not be retried, and which
 * Kubernetes API status a failed call carried. Callers branch on codes and HTTP statuses, never on text.
 */
import { StellaError } from "../../core/errors.ts";

/**
 * A reconcile error that retrying cannot fix (invalid spec, unsupported input): the controller logs it,
 * counts it and forgets the key instead of requeueing with backoff. controller-runtime
 * `reconcile.TerminalError`. The next change to the object enqueues it again.
 */
export class TerminalError extends StellaError<"TERMINAL"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TERMINAL", message, options);
  }
}

/** True when `err` or any error in its `cause` chain is a TerminalError (Go's `errors.Is`). */
export function isTerminalError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
    if (e instanceof TerminalError) return true;
  }
  return false;
}

/**
 * The HTTP status of a failed Kubernetes API call: client-node's `ApiException.code` (a number) or the
 * `statusCode` its Watch attaches. Node system errors carry a string `code` and yield undefined.
 */
export function apiStatusCode(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === "number") return code;
  if (typeof statusCode === "number") return statusCode;
  return undefined;
}

/** 409: optimistic-concurrency conflict (stale resourceVersion) or AlreadyExists on create. */
export function isConflict(err: unknown): boolean {
  return apiStatusCode(err) === 409;
}

export function isNotFound(err: unknown): boolean {
  return apiStatusCode(err) === 404;
}

/**
 * Time seam for the runtime: every delay in the work queue, leader election, informer restarts and
 * the event recorder goes through a `Clock`, so unit tests drive time with `FakeClock` and never sleep
 * (client-go's `clock.Clock`, client-node's `ListWatch` `delayFn`).
 */

/** Cancels a timer created by `Clock.setTimeout`; calling it after the timer fired is a no-op. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` once after `delayMs` (clamped to ≥ 0) and returns its cancel function. */
  setTimeout(callback: () => void, delayMs: number): CancelTimer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    return () => {
      clearTimeout(handle);
    };
  },
};

/**
 * Resolves after `delayMs` on `clock`, or as soon as `signal` aborts (never rejects: callers check
 * `signal.aborted`). Returns true when the full delay elapsed.
 */
export function sleep(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      cancel();
      resolve(false);
    };
    const cancel = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, delayMs);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortSignal that aborts after `timeoutMs` on `clock` or when `parent` aborts, whichever is first.
 * `AbortSignal.timeout` would use the real timer, which a FakeClock cannot advance.
 * Call `dispose` once the guarded operation settles so the timer does not linger.
 */
export function timeoutSignal(
  clock: Clock,
  timeoutMs: number,
  parent?: AbortSignal,
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onParentAbort = (): void => {
    controller.abort(parent?.reason);
  };
  const cancel = clock.setTimeout(() => {
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      cancel();
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}

/**
 * Settles with `promise`, or rejects with the signal's reason as soon as `signal` aborts: bounds calls
 * whose client may ignore the signal. The abandoned promise's eventual rejection is swallowed.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(toError(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => undefined);
      reject(toError(signal.reason));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(toError(err));
      },
    );
  });
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

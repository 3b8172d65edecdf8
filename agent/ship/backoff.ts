// Exponential backoff with jitter for the shipper's reconnects, after gRPC's connection backoff
// (grpc/doc/connection-backoff.md: initial 1 s, multiplier 1.6, jitter ±20 %, max 120 s; ours are shorter
// because an agent's buffer fills while it waits).

export interface BackoffOptions {
  /** First delay after a failure, milliseconds. */
  initialMs: number;
  /** Upper bound of the un-jittered delay, milliseconds. */
  maxMs: number;
  /** Growth factor per consecutive failure (≥ 1). */
  multiplier: number;
  /** Relative jitter in [0, 1]: each delay is drawn uniformly from delay·(1 ± jitter). */
  jitter: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = {
  initialMs: 500,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
};

export class Backoff {
  readonly #options: BackoffOptions;
  readonly #random: () => number;
  #currentMs: number;

  constructor(options: BackoffOptions, random: () => number = Math.random) {
    this.#options = options;
    this.#random = random;
    this.#currentMs = options.initialMs;
  }

  /** The delay to wait now; the following call returns a longer one until reset(). */
  next(): number {
    const { maxMs, multiplier, jitter } = this.#options;
    const base = this.#currentMs;
    this.#currentMs = Math.min(maxMs, base * multiplier);
    return Math.max(0, Math.round(base * (1 + jitter * (2 * this.#random() - 1))));
  }

  /** After a success: the next failure waits initialMs again. */
  reset(): void {
    this.#currentMs = this.#options.initialMs;
  }
}

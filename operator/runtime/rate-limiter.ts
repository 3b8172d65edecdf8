/**
 * Work-queue rate limiters, after client-go `util/workqueue/default_rate_limiters.go`.
 *
 * `when(item)` returns how long to wait before the item may be processed again and records a failure;
 * `forget(item)` clears the item's history once it succeeded. The default controller limiter is the
 * maximum of a per-item exponential backoff (5 ms doubling to 1000 s) and an overall token bucket
 * (10 qps, burst 100), exactly client-go's `DefaultControllerRateLimiter`.
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";

export interface RateLimiter<K> {
  /** Delay in milliseconds before `item` should be retried; counts one more failure for it. */
  when(item: K): number;
  /** Stops tracking `item` (its next failure starts from the base delay again). */
  forget(item: K): void;
  /** Failures recorded for `item` since it was last forgotten. */
  numRequeues(item: K): number;
}

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1000 * 1000;
export const DEFAULT_BUCKET_QPS = 10;
export const DEFAULT_BUCKET_BURST = 100;

/** baseDelay · 2^failures, capped at maxDelay (client-go ItemExponentialFailureRateLimiter). */
export class ItemExponentialFailureRateLimiter<K> implements RateLimiter<K> {
  readonly #failures = new Map<K, number>();
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;

  constructor(baseDelayMs = DEFAULT_BASE_DELAY_MS, maxDelayMs = DEFAULT_MAX_DELAY_MS) {
    this.#baseDelayMs = baseDelayMs;
    this.#maxDelayMs = maxDelayMs;
  }

  when(item: K): number {
    const exp = this.#failures.get(item) ?? 0;
    this.#failures.set(item, exp + 1);
    // 2^exp overflows to Infinity past ~1024 failures; min() keeps the cap.
    return Math.min(this.#baseDelayMs * 2 ** exp, this.#maxDelayMs);
  }

  forget(item: K): void {
    this.#failures.delete(item);
  }

  numRequeues(item: K): number {
    return this.#failures.get(item) ?? 0;
  }
}

/**
 * Overall token bucket shared by all items (client-go BucketRateLimiter over golang.org/x/time/rate):
 * each `when` reserves one token; when the bucket is empty the reservation is granted in the future
 * and the returned delay says when.
 */
export class BucketRateLimiter<K> implements RateLimiter<K> {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #lastMs: number;

  constructor(qps = DEFAULT_BUCKET_QPS, burst = DEFAULT_BUCKET_BURST, clock: Clock = systemClock) {
    if (!(qps > 0) || !(burst >= 1)) throw new RangeError("bucket rate limiter needs qps > 0 and burst >= 1");
    this.#qps = qps;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#lastMs = clock.now();
  }

  when(_item: K): number {
    const now = this.#clock.now();
    const elapsedS = Math.max(0, now - this.#lastMs) / 1000;
    this.#lastMs = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsedS * this.#qps) - 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }

  forget(_item: K): void {
    // The bucket is shared; there is nothing per item to forget.
  }

  numRequeues(_item: K): number {
    return 0;
  }
}

/** The worst (longest) delay of several limiters (client-go MaxOfRateLimiter). */
export class MaxOfRateLimiter<K> implements RateLimiter<K> {
  readonly #limiters: readonly RateLimiter<K>[];

  constructor(...limiters: RateLimiter<K>[]) {
    this.#limiters = limiters;
  }

  when(item: K): number {
    let max = 0;
    for (const l of this.#limiters) max = Math.max(max, l.when(item));
    return max;
  }

  forget(item: K): void {
    for (const l of this.#limiters) l.forget(item);
  }

  numRequeues(item: K): number {
    let max = 0;
    for (const l of this.#limiters) max = Math.max(max, l.numRequeues(item));
    return max;
  }
}

export interface ControllerRateLimiterOptions {
  clock?: Clock;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall token bucket; `false` disables it (per-item backoff only). */
  bucket?: { qps: number; burst: number } | false;
}

/** client-go DefaultControllerRateLimiter: max(per-item 5 ms → 1000 s, bucket 10 qps / burst 100). */
export function defaultControllerRateLimiter<K>(options: ControllerRateLimiterOptions = {}): RateLimiter<K> {
  const perItem = new ItemExponentialFailureRateLimiter<K>(options.baseDelayMs, options.maxDelayMs);
  const bucket = options.bucket ?? { qps: DEFAULT_BUCKET_QPS, burst: DEFAULT_BUCKET_BURST };
  if (bucket === false) return perItem;
  return new MaxOfRateLimiter<K>(perItem, new BucketRateLimiter<K>(bucket.qps, bucket.burst, options.clock));
}

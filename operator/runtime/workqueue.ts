/**
 * A de-duplicating, delaying, rate-limited work queue with client-go's semantics
 * (`util/workqueue/queue.go`, `delaying_queue.go`, `rate_limiting_queue.go`):
 *
 * - `dirty` holds every key that needs processing, `processing` every key a worker holds. Adding a key
 *   that is already dirty is a no-op, so a burst of events for one object is reconciled once.
 * - A key re-added while it is processing is only marked dirty; `done(key)` puts it back in the queue.
 *   So a key is never handed to two workers at once, and a change seen mid-reconcile is not lost.
 * - `addAfter` keeps one pending timer per key (the earliest wins); `addRateLimited` asks the rate limiter
 *   for the key's backoff; `forget` resets that backoff after a success.
 *
 * Differences from client-go, on purpose:
 * - Bounded: at most `maxLength` dirty keys and `maxLength` delayed keys; further adds are dropped and
 *   counted (`workqueue_dropped_total`, `onDrop`). Reconcilers are level-based, so a dropped key is
 *   recovered by the next event or resync of its object.
 * - After `shutdown()`, `get()` resolves `undefined` at once, even if keys are still queued: a stopping
 *   (or demoted) operator must not start new reconciles; the next leader lists everything anyway.
 */
import type { Registry } from "prom-client";
import type { CancelTimer, Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { counter, exponentialBuckets, gauge, histogram } from "../../core/service/metrics.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import { defaultControllerRateLimiter } from "./rate-limiter.ts";

export const DEFAULT_MAX_QUEUE_LENGTH = 65_536;

/** Hooks the queue calls; `prometheusWorkQueueMetrics` implements them with controller-runtime's names. */
export interface WorkQueueMetrics {
  depth(n: number): void;
  added(): void;
  retried(): void;
  dropped(): void;
  /** Seconds a key waited between being added and handed to a worker. */
  queueLatency(seconds: number): void;
  /** Seconds a worker held a key (get → done). */
  workDuration(seconds: number): void;
}

export const noopWorkQueueMetrics: WorkQueueMetrics = {
  depth: () => undefined,
  added: () => undefined,
  retried: () => undefined,
  dropped: () => undefined,
  queueLatency: () => undefined,
  workDuration: () => undefined,
};

/** client-go/controller-runtime bucket layout: 10 ns … 1000 s. */
const WORKQUEUE_BUCKETS_SECONDS = exponentialBuckets(10e-9, 10, 12);

/**
 * controller-runtime's workqueue metric families (`pkg/metrics/workqueue.go`), labelled by queue
 * `name` and `controller` (both the queue name, as controller-runtime does), plus our drop counter.
 */
export function prometheusWorkQueueMetrics(registry: Registry, name: string): WorkQueueMetrics {
  const labelNames = ["name", "controller"] as const;
  const labels = { name, controller: name };
  const depth = gauge(registry, { name: "workqueue_depth", help: "Current depth of workqueue", labelNames });
  const adds = counter(registry, {
    name: "workqueue_adds_total",
    help: "Total number of adds handled by workqueue",
    labelNames,
  });
  const retries = counter(registry, {
    name: "workqueue_retries_total",
    help: "Total number of retries handled by workqueue",
    labelNames,
  });
  const drops = counter(registry, {
    name: "workqueue_dropped_total",
    help: "Total number of adds dropped because the workqueue was full",
    labelNames,
  });
  const queueDuration = histogram(registry, {
    name: "workqueue_queue_duration_seconds",
    help: "How long in seconds an item stays in workqueue before being requested",
    labelNames,
    buckets: WORKQUEUE_BUCKETS_SECONDS,
  });
  const workDuration = histogram(registry, {
    name: "workqueue_work_duration_seconds",
    help: "How long in seconds processing an item from workqueue takes",
    labelNames,
    buckets: WORKQUEUE_BUCKETS_SECONDS,
  });
  // Create the series at zero so dashboards see the queue before its first add.
  depth.set(labels, 0);
  adds.inc(labels, 0);
  retries.inc(labels, 0);
  drops.inc(labels, 0);
  return {
    depth: (n) => {
      depth.set(labels, n);
    },
    added: () => {
      adds.inc(labels);
    },
    retried: () => {
      retries.inc(labels);
    },
    dropped: () => {
      drops.inc(labels);
    },
    queueLatency: (s) => {
      queueDuration.observe(labels, s);
    },
    workDuration: (s) => {
      workDuration.observe(labels, s);
    },
  };
}

export interface WorkQueueOptions<K> {
  /** Queue name: the `name` label of its metrics and the key in logs. */
  name: string;
  clock?: Clock;
  /** Backoff for `addRateLimited`; default client-go's controller rate limiter. */
  rateLimiter?: RateLimiter<K>;
  /** Maximum dirty keys (and, separately, maximum delayed keys); default 65 536. */
  maxLength?: number;
  metrics?: WorkQueueMetrics;
  /** Called for each dropped add (queue full), e.g. to log it. */
  onDrop?: (item: K) => void;
  /** Aborting it shuts the queue down. */
  signal?: AbortSignal;
}

type Getter<K> = (item: K | undefined) => void;

export class WorkQueue<K = string> {
  readonly name: string;
  readonly #clock: Clock;
  readonly #rateLimiter: RateLimiter<K>;
  readonly #maxLength: number;
  readonly #metrics: WorkQueueMetrics;
  readonly #onDrop: ((item: K) => void) | undefined;

  /** FIFO of dirty, not-processing keys; `#head` indexes its front (amortised O(1) dequeue). */
  #queue: K[] = [];
  #head = 0;
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #delayed = new Map<K, { readyAt: number; cancel: CancelTimer }>();
  readonly #addedAt = new Map<K, number>();
  readonly #startedAt = new Map<K, number>();
  #getters: Getter<K>[] = [];
  #shuttingDown = false;
  #dropped = 0;

  constructor(options: WorkQueueOptions<K>) {
    this.name = options.name;
    this.#clock = options.clock ?? systemClock;
    this.#rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<K>({ clock: this.#clock });
    this.#maxLength = options.maxLength ?? DEFAULT_MAX_QUEUE_LENGTH;
    if (!Number.isInteger(this.#maxLength) || this.#maxLength < 1) {
      throw new RangeError(`workqueue ${this.name}: maxLength must be a positive integer`);
    }
    this.#metrics = options.metrics ?? noopWorkQueueMetrics;
    this.#onDrop = options.onDrop;
    if (options.signal?.aborted) this.shutdown();
    else
      options.signal?.addEventListener(
        "abort",
        () => {
          this.shutdown();
        },
        { once: true },
      );
  }

  /** Marks `item` as needing processing. No-op if it already is, or after shutdown. */
  add(item: K): void {
    if (this.#shuttingDown || this.#dirty.has(item)) return;
    if (this.#dirty.size >= this.#maxLength) {
      this.#drop(item);
      return;
    }
    this.#dirty.add(item);
    this.#metrics.added();
    if (!this.#addedAt.has(item)) this.#addedAt.set(item, this.#clock.now());
    // A worker holds it: `done` re-queues it, so it is never processed concurrently.
    if (this.#processing.has(item)) return;
    this.#push(item);
  }

  /** Adds `item` after `delayMs`. If it is already waiting, the earlier deadline wins. */
  addAfter(item: K, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(item);
      return;
    }
    const readyAt = this.#clock.now() + delayMs;
    const pending = this.#delayed.get(item);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      pending.cancel();
    } else if (this.#delayed.size >= this.#maxLength) {
      this.#drop(item);
      return;
    }
    const cancel = this.#clock.setTimeout(() => {
      this.#delayed.delete(item);
      this.add(item);
    }, delayMs);
    this.#delayed.set(item, { readyAt, cancel });
  }

  /** Adds `item` after its rate-limited backoff (one more failure recorded for it). */
  addRateLimited(item: K): void {
    if (this.#shuttingDown) return;
    this.#metrics.retried();
    this.addAfter(item, this.#rateLimiter.when(item));
  }

  /** Clears `item`'s backoff history; call it when processing succeeded. */
  forget(item: K): void {
    this.#rateLimiter.forget(item);
  }

  numRequeues(item: K): number {
    return this.#rateLimiter.numRequeues(item);
  }

  /**
   * The next key to process, waiting until one is available. Resolves `undefined` once the queue is
   * shut down (or `signal` aborts). The caller owns the key until it calls `done(key)`.
   */
  get(signal?: AbortSignal): Promise<K | undefined> {
    if (this.#shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    if (this.len() > 0) return Promise.resolve(this.#take());
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.#getters = this.#getters.filter((g) => g !== getter);
        resolve(undefined);
      };
      const getter: Getter<K> = (item) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(item);
      };
      this.#getters.push(getter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Releases `item` after processing; if it was re-added meanwhile it goes back in the queue. */
  done(item: K): void {
    if (!this.#processing.delete(item)) return;
    const started = this.#startedAt.get(item);
    this.#startedAt.delete(item);
    if (started !== undefined) this.#metrics.workDuration((this.#clock.now() - started) / 1000);
    if (this.#dirty.has(item) && !this.#shuttingDown) this.#push(item);
  }

  /** Keys queued and ready (not processing, not delayed). */
  len(): number {
    return this.#queue.length - this.#head;
  }

  get processingCount(): number {
    return this.#processing.size;
  }

  get delayedCount(): number {
    return this.#delayed.size;
  }

  get droppedCount(): number {
    return this.#dropped;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Stops the queue: pending `get`s resolve `undefined`, delayed adds are cancelled, queued keys are
   * discarded, later adds are ignored. Keys being processed may still be `done`.
   */
  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { cancel } of this.#delayed.values()) cancel();
    this.#delayed.clear();
    this.#queue = [];
    this.#head = 0;
    for (const item of this.#dirty) if (!this.#processing.has(item)) this.#addedAt.delete(item);
    this.#dirty.clear();
    this.#metrics.depth(0);
    const getters = this.#getters;
    this.#getters = [];
    for (const g of getters) g(undefined);
  }

  #push(item: K): void {
    this.#queue.push(item);
    this.#metrics.depth(this.len());
    while (this.#getters.length > 0 && this.len() > 0) {
      const getter = this.#getters.shift();
      getter?.(this.#take());
    }
  }

  #take(): K {
    const item = this.#queue[this.#head] as K;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#dirty.delete(item);
    this.#processing.add(item);
    const now = this.#clock.now();
    const added = this.#addedAt.get(item);
    this.#addedAt.delete(item);
    if (added !== undefined) this.#metrics.queueLatency((now - added) / 1000);
    this.#startedAt.set(item, now);
    this.#metrics.depth(this.len());
    return item;
  }

  #drop(item: K): void {
    this.#dropped++;
    this.#metrics.dropped();
    this.#onDrop?.(item);
  }
}

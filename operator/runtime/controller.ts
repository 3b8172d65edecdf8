/**
 * A controller: N workers taking keys from a WorkQueue and running a level-based reconcile function,
 * after controller-runtime `pkg/internal/controller/controller.go`.
 *
 * - `reconcile(key, signal)` resolves `{ requeueAfterMs }` to look again later, `{ requeue: true }` to
 *   retry with backoff, or nothing when the object is in its desired state (the key's backoff is reset).
 * - A throw requeues the key with its rate-limited backoff; a `TerminalError` (anywhere in the cause
 *   chain) is logged, counted and forgotten instead: retrying cannot fix it.
 * - The queue guarantees one key is never reconciled by two workers at once.
 * - `shutdown(deadlineMs)` stops handing out keys and waits for in-flight reconciles; at the deadline
 *   it aborts their `signal` and returns.
 *
 * Metrics use controller-runtime's names so its dashboards work unchanged.
 */
import type { Registry } from "prom-client";
import type { Logger } from "../../core/service/log.ts";
import { silentLogger } from "../../core/service/log.ts";
import type { Clock } from "./clock.ts";
import { sleep, systemClock } from "./clock.ts";
import { isTerminalError } from "./errors.ts";
import { counter, gauge, histogram } from "../../core/service/metrics.ts";
import type { WorkQueueOptions } from "./workqueue.ts";
import { WorkQueue, prometheusWorkQueueMetrics } from "./workqueue.ts";

export interface ReconcileResult {
  /** Reconcile again after this many milliseconds (the key's failure backoff is reset). */
  requeueAfterMs?: number;
  /** Reconcile again after the key's rate-limited backoff. Ignored when `requeueAfterMs` is set. */
  requeue?: boolean;
}

/** `signal` aborts when the controller's shutdown deadline passes: stop and return (or throw). */
export type Reconciler = (
  key: string,
  signal: AbortSignal,
) => Promise<ReconcileResult | undefined> | Promise<void>;

export interface ControllerOptions {
  /** Controller name: the `controller` metric label and log field. Bounded, e.g. "funcproof". */
  name: string;
  reconcile: Reconciler;
  /** Concurrent reconciles (controller-runtime MaxConcurrentReconciles). Default 1. */
  workers?: number;
  registry?: Registry;
  logger?: Logger;
  clock?: Clock;
  /** Queue tuning: rate limiter, maxLength, onDrop. */
  queue?: Omit<WorkQueueOptions<string>, "name" | "clock" | "metrics" | "signal">;
  /** Aborting it shuts the controller down with `DEFAULT_SHUTDOWN_DEADLINE_MS`. */
  signal?: AbortSignal;
}

export const DEFAULT_SHUTDOWN_DEADLINE_MS = 30_000;

type Result = "success" | "error" | "requeue" | "requeue_after";
const RESULTS: readonly Result[] = ["success", "error", "requeue", "requeue_after"];

/** controller-runtime's reconcile-time buckets, in seconds. */
const RECONCILE_TIME_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
  1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

function controllerMetrics(registry: Registry) {
  return {
    total: counter(registry, {
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
    }),
    errors: counter(registry, {
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
    }),
    terminal: counter(registry, {
      name: "controller_runtime_terminal_reconcile_errors_total",
      help: "Total number of terminal reconciliation errors per controller",
      labelNames: ["controller"],
    }),
    time: histogram(registry, {
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: RECONCILE_TIME_BUCKETS_SECONDS,
    }),
    maxConcurrent: gauge(registry, {
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller",
      labelNames: ["controller"],
    }),
    activeWorkers: gauge(registry, {
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller",
      labelNames: ["controller"],
    }),
  };
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #reconcile: Reconciler;
  readonly #workers: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: ReturnType<typeof controllerMetrics> | undefined;
  /** Aborted when the shutdown deadline passes; every reconcile's `signal`. */
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<string>();
  #running: Promise<void>[] = [];
  #started = false;
  #shutdown: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.#reconcile = options.reconcile;
    this.#workers = options.workers ?? 1;
    if (!Number.isInteger(this.#workers) || this.#workers < 1) {
      throw new RangeError(`controller ${this.name}: workers must be a positive integer`);
    }
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({ component: "controller", controller: this.name });
    this.#metrics = options.registry === undefined ? undefined : controllerMetrics(options.registry);
    this.queue = new WorkQueue({
      onDrop: (key) => {
        this.#log.warn({ key }, "work queue full, dropping key");
      },
      ...options.queue,
      name: this.name,
      clock: this.#clock,
      ...(options.registry === undefined
        ? {}
        : { metrics: prometheusWorkQueueMetrics(options.registry, this.name) }),
    });
    if (this.#metrics !== undefined) {
      // Initialise every series at zero (controller-runtime initMetrics) so rates work from the start.
      const c = { controller: this.name };
      for (const result of RESULTS) this.#metrics.total.inc({ ...c, result }, 0);
      this.#metrics.errors.inc(c, 0);
      this.#metrics.terminal.inc(c, 0);
      this.#metrics.activeWorkers.set(c, 0);
      this.#metrics.maxConcurrent.set(c, this.#workers);
    }
    if (options.signal?.aborted === true) void this.shutdown();
    options.signal?.addEventListener(
      "abort",
      () => {
        void this.shutdown();
      },
      { once: true },
    );
  }

  /** Enqueues `key` (namespace/name or name). Safe before `start`: keys wait for the workers. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, delayMs: number): void {
    this.queue.addAfter(key, delayMs);
  }

  get started(): boolean {
    return this.#started;
  }

  /** Starts the workers; returns at once. Idempotent; a no-op after shutdown. */
  start(): Promise<void> {
    if (this.#started || this.#shutdown !== undefined) return Promise.resolve();
    this.#started = true;
    this.#log.info({ workers: this.#workers }, "starting workers");
    for (let i = 0; i < this.#workers; i++) this.#running.push(this.#worker());
    return Promise.resolve();
  }

  /**
   * Stops taking keys and waits up to `deadlineMs` for in-flight reconciles; past the deadline their
   * `signal` is aborted and shutdown returns without waiting further (a reconcile that ignores the
   * signal keeps running until the process exits).
   */
  shutdown(deadlineMs = DEFAULT_SHUTDOWN_DEADLINE_MS): Promise<void> {
    this.#shutdown ??= this.#doShutdown(deadlineMs);
    return this.#shutdown;
  }

  async #doShutdown(deadlineMs: number): Promise<void> {
    this.queue.shutdown();
    const drained = Promise.all(this.#running).then(() => true);
    const timer = new AbortController();
    const finished = await Promise.race([
      drained,
      sleep(this.#clock, Math.max(0, deadlineMs), timer.signal).then(() => false),
    ]);
    timer.abort();
    if (!finished) {
      this.#log.warn(
        { inFlight: [...this.#inFlight], deadlineMs },
        "shutdown deadline passed with reconciles in flight; aborting them",
      );
      this.#abort.abort(new Error(`controller ${this.name} shutdown deadline exceeded`));
    } else {
      this.#log.info("all workers finished");
    }
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key);
      } catch (err: unknown) {
        // #process handles reconcile errors itself; this guards the worker against its own bugs.
        this.#log.error({ err, key }, "worker failed processing key");
      } finally {
        this.queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const labels = { controller: this.name };
    const started = this.#clock.now();
    this.#inFlight.add(key);
    this.#metrics?.activeWorkers.inc(labels);
    let result: ReconcileResult | undefined;
    try {
      result = (await this.#reconcile(key, this.#abort.signal)) ?? undefined;
    } catch (err: unknown) {
      this.#metrics?.errors.inc(labels);
      this.#metrics?.total.inc({ ...labels, result: "error" });
      if (isTerminalError(err)) {
        this.#metrics?.terminal.inc(labels);
        this.queue.forget(key);
        this.#log.error({ err, key }, "terminal reconciler error, not requeueing");
      } else {
        this.queue.addRateLimited(key);
        this.#log.error({ err, key, retries: this.queue.numRequeues(key) }, "reconciler error");
      }
      return;
    } finally {
      this.#inFlight.delete(key);
      this.#metrics?.activeWorkers.dec(labels);
      this.#metrics?.time.observe(labels, (this.#clock.now() - started) / 1000);
    }
    const after = result?.requeueAfterMs;
    if (after !== undefined && after > 0) {
      this.queue.forget(key);
      this.queue.addAfter(key, after);
      this.#metrics?.total.inc({ ...labels, result: "requeue_after" });
    } else if (result?.requeue === true) {
      this.queue.addRateLimited(key);
      this.#metrics?.total.inc({ ...labels, result: "requeue" });
    } else {
      this.queue.forget(key);
      this.#metrics?.total.inc({ ...labels, result: "success" });
    }
  }
}

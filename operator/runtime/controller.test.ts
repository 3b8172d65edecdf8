import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Controller } from "./controller.ts";
import type { Reconciler } from "./controller.ts";
import { TerminalError } from "./errors.ts";
import { FakeClock, settle } from "./fake-clock.ts";
import { createRegistry } from "../../core/service/metrics.ts";

function setup(reconcile: Reconciler, workers = 1) {
  const clock = new FakeClock();
  const registry = createRegistry({ defaultMetrics: false });
  const controller = new Controller({ name: "funcproof", reconcile, workers, clock, registry });
  return { clock, registry, controller };
}

function metricValue(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line !== undefined, `series ${series} missing from:\n${text}`);
  return Number(line.slice(series.length + 1));
}

describe("Controller", { timeout: 10_000 }, () => {
  test("retries a throwing reconcile with doubling backoff and counts the errors", async () => {
    const calls: number[] = [];
    const { clock, registry, controller } = setup(async () => {
      calls.push(clock.now());
      if (calls.length <= 3) throw new Error("apiserver unavailable");
      return Promise.resolve();
    });
    const t0 = clock.now();
    controller.enqueue("stella/app");
    await controller.start();
    await clock.advance(1000);
    assert.deepEqual(
      calls.map((t) => t - t0),
      [0, 5, 15, 35],
      "5, 10, 20 ms backoff between attempts",
    );
    assert.equal(controller.queue.numRequeues("stella/app"), 0, "success forgets the backoff");
    const text = await registry.metrics();
    const c = 'controller="funcproof"';
    assert.equal(metricValue(text, `controller_runtime_reconcile_errors_total{${c}}`), 3);
    assert.equal(metricValue(text, `controller_runtime_reconcile_total{${c},result="error"}`), 3);
    assert.equal(metricValue(text, `controller_runtime_reconcile_total{${c},result="success"}`), 1);
    assert.equal(metricValue(text, `controller_runtime_reconcile_total{${c},result="requeue"}`), 0);
    assert.equal(metricValue(text, `controller_runtime_reconcile_time_seconds_count{${c}}`), 4);
    assert.equal(metricValue(text, `controller_runtime_max_concurrent_reconciles{${c}}`), 1);
    assert.equal(metricValue(text, `controller_runtime_active_workers{${c}}`), 0);
    assert.equal(metricValue(text, `workqueue_retries_total{name="funcproof",controller="funcproof"}`), 3);
    await controller.shutdown(0);
  });

  test("a TerminalError (even as a cause) is not retried", async () => {
    let calls = 0;
    const { clock, registry, controller } = setup(async () => {
      calls++;
      await Promise.resolve();
      throw new Error("wrapped", { cause: new TerminalError("spec.image is not a digest") });
    });
    controller.enqueue("stella/bad");
    await controller.start();
    await clock.advance(60_000);
    assert.equal(calls, 1);
    assert.equal(controller.queue.numRequeues("stella/bad"), 0);
    assert.equal(controller.queue.delayedCount, 0);
    const text = await registry.metrics();
    const c = 'controller="funcproof"';
    assert.equal(metricValue(text, `controller_runtime_terminal_reconcile_errors_total{${c}}`), 1);
    assert.equal(metricValue(text, `controller_runtime_reconcile_errors_total{${c}}`), 1);
    controller.enqueue("stella/bad");
    await clock.advance(0);
    assert.equal(calls, 2, "a new event reconciles it again");
    await controller.shutdown(0);
  });

  test("requeueAfterMs reconciles again after the delay; requeue uses the backoff", async () => {
    const calls: number[] = [];
    const { clock, registry, controller } = setup(async () => {
      calls.push(clock.now());
      await Promise.resolve();
      if (calls.length === 1) return { requeueAfterMs: 30_000 };
      if (calls.length === 2) return { requeue: true };
      return undefined;
    });
    const t0 = clock.now();
    controller.enqueue("k");
    await controller.start();
    await clock.advance(29_999);
    assert.equal(calls.length, 1);
    await clock.advance(1);
    assert.equal(calls.length, 2);
    await clock.advance(5);
    assert.deepEqual(
      calls.map((t) => t - t0),
      [0, 30_000, 30_005],
    );
    const text = await registry.metrics();
    assert.equal(
      metricValue(text, 'controller_runtime_reconcile_total{controller="funcproof",result="requeue_after"}'),
      1,
    );
    assert.equal(
      metricValue(text, 'controller_runtime_reconcile_total{controller="funcproof",result="requeue"}'),
      1,
    );
    await controller.shutdown(0);
  });

  test("workers run different keys concurrently but never the same key twice at once", async () => {
    const active = new Map<string, number>();
    let maxSame = 0;
    let maxTotal = 0;
    let running = 0;
    const gates: (() => void)[] = [];
    const { controller } = setup(async (key) => {
      active.set(key, (active.get(key) ?? 0) + 1);
      running++;
      maxSame = Math.max(maxSame, active.get(key) ?? 0);
      maxTotal = Math.max(maxTotal, running);
      await new Promise<void>((resolve) => gates.push(resolve));
      running--;
      active.set(key, (active.get(key) ?? 0) - 1);
    }, 3);
    await controller.start();
    for (const k of ["a", "a", "b", "c", "a", "b"]) controller.enqueue(k);
    await settle();
    assert.equal(running, 3);
    controller.enqueue("a");
    while (gates.length > 0) {
      gates.shift()?.();
      await settle();
    }
    assert.equal(maxSame, 1);
    assert.equal(maxTotal, 3);
    await controller.shutdown(0);
  });

  test("shutdown drains in-flight reconciles, then aborts them at the deadline", async () => {
    let release: () => void = () => undefined;
    let seenSignal: AbortSignal | undefined;
    const { clock, controller } = setup(async (_key, signal) => {
      seenSignal = signal;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    controller.enqueue("a");
    await controller.start();
    await settle();
    let done = false;
    const stopping = controller.shutdown(10_000).then(() => {
      done = true;
    });
    await clock.advance(5_000);
    assert.equal(done, false, "waits for the in-flight reconcile");
    release();
    await clock.advance(0);
    assert.equal(done, true);
    assert.equal(seenSignal?.aborted, false);
    await stopping;

    const second = setup(async (_key, signal) => {
      seenSignal = signal;
      await new Promise<void>(() => undefined); // never settles
    });
    second.controller.enqueue("b");
    await second.controller.start();
    await settle();
    const stop2 = second.controller.shutdown(1_000);
    await second.clock.advance(1_000);
    await stop2;
    assert.equal(seenSignal?.aborted, true, "the deadline aborts the reconcile's signal");
    second.controller.enqueue("c");
    assert.equal(second.controller.queue.len(), 0, "no new work after shutdown");
  });
});

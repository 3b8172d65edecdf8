import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FakeClock, settle } from "./fake-clock.ts";
import { createRegistry } from "../../core/service/metrics.ts";
import { ItemExponentialFailureRateLimiter } from "./rate-limiter.ts";
import { WorkQueue, prometheusWorkQueueMetrics } from "./workqueue.ts";
import type { WorkQueueOptions } from "./workqueue.ts";

function queue(clock = new FakeClock(), extra: Partial<WorkQueueOptions<string>> = {}) {
  return new WorkQueue<string>({
    name: "test",
    clock,
    rateLimiter: new ItemExponentialFailureRateLimiter(5, 1_000_000),
    ...extra,
  });
}

/** Resolves to the promise's value, or to "pending" if it has not settled after the event loop idles. */
async function peek<T>(p: Promise<T>): Promise<T | "pending"> {
  let out: T | "pending" = "pending";
  void p.then((v) => {
    out = v;
  });
  await settle();
  return out;
}

describe("WorkQueue", { timeout: 10_000 }, () => {
  test("a key added three times while queued is processed once", async () => {
    const q = queue();
    q.add("ns/a");
    q.add("ns/a");
    q.add("ns/a");
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "ns/a");
    q.done("ns/a");
    assert.equal(q.len(), 0);
    assert.equal(await peek(q.get()), "pending");
    q.shutdown();
  });

  test("keys come out in FIFO order", async () => {
    const q = queue();
    for (const k of ["a", "b", "c", "a"]) q.add(k);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ["a", "b", "c"]);
    assert.equal(q.len(), 0);
  });

  test("a key re-added while processing is held back, then processed again after done", async () => {
    const q = queue();
    q.add("a");
    const first = await q.get();
    assert.equal(first, "a");
    q.add("a");
    q.add("a");
    assert.equal(q.len(), 0, "not queued while a worker holds it");
    const second = q.get();
    assert.equal(await peek(second), "pending", "a second worker must not get the same key concurrently");
    q.done("a");
    assert.equal(await second, "a");
    q.done("a");
    assert.equal(q.len(), 0, "processed once more, not once per add");
  });

  test("many workers never process one key concurrently and never lose an add", async () => {
    const q = queue();
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ticks = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await Promise.resolve();
    };
    const active = new Set<string>();
    let violations = 0;
    let stamp = 0;
    const lastAdd = new Map<string, number>();
    const lastStart = new Map<string, number>();
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await q.get();
        if (key === undefined) return;
        if (active.has(key)) violations++;
        active.add(key);
        lastStart.set(key, ++stamp);
        await ticks(1 + rand(4));
        active.delete(key);
        q.done(key);
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    for (let round = 0; round < 500; round++) {
      const key = `k${rand(5)}`;
      q.add(key);
      lastAdd.set(key, ++stamp);
      await ticks(rand(3));
    }
    await settle();
    assert.equal(violations, 0);
    for (const [key, added] of lastAdd) {
      assert.ok((lastStart.get(key) ?? 0) > added, `${key} must be processed after its last add`);
    }
    q.shutdown();
    await Promise.all(workers);
  });

  test("shutdown unblocks waiting getters and later gets", async () => {
    const q = queue();
    const a = q.get();
    const b = q.get();
    assert.equal(await peek(a), "pending");
    q.shutdown();
    assert.equal(await a, undefined);
    assert.equal(await b, undefined);
    q.add("x");
    assert.equal(await q.get(), undefined);
    assert.equal(q.len(), 0);
  });

  test("queue signal and get signal unblock getters", async () => {
    const ac = new AbortController();
    const q = new WorkQueue<string>({ name: "s", clock: new FakeClock(), signal: ac.signal });
    const getAbort = new AbortController();
    const g1 = q.get(getAbort.signal);
    getAbort.abort();
    assert.equal(await g1, undefined);
    q.add("still-works");
    assert.equal(await q.get(), "still-works");
    const g2 = q.get();
    ac.abort();
    assert.equal(await g2, undefined);
    assert.equal(q.shuttingDown, true);
  });

  test("rate-limited backoff doubles per failure and resets on forget", async () => {
    const clock = new FakeClock();
    const q = queue(clock);
    const expected = [5, 10, 20, 40, 80];
    for (const delay of expected) {
      q.addRateLimited("a");
      await clock.advance(delay - 1);
      assert.equal(q.len(), 0, `not ready 1 ms before ${delay} ms`);
      await clock.advance(1);
      assert.equal(q.len(), 1, `ready after ${delay} ms`);
      assert.equal(await q.get(), "a");
      q.done("a");
    }
    assert.equal(q.numRequeues("a"), 5);
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
    q.addRateLimited("a");
    await clock.advance(5);
    assert.equal(q.len(), 1, "back to the 5 ms base delay");
  });

  test("addAfter keeps the earliest deadline and is cancelled by shutdown", async () => {
    const clock = new FakeClock();
    const q = queue(clock);
    q.addAfter("a", 1000);
    q.addAfter("a", 100);
    q.addAfter("a", 5000);
    assert.equal(q.delayedCount, 1);
    await clock.advance(100);
    assert.equal(q.len(), 1);
    q.addAfter("b", 1000);
    q.shutdown();
    assert.equal(clock.pendingTimers, 0);
  });

  test("is bounded: adds beyond maxLength are dropped and counted", async () => {
    const clock = new FakeClock();
    const dropped: string[] = [];
    const registry = createRegistry({ defaultMetrics: false });
    const q = queue(clock, {
      maxLength: 2,
      onDrop: (k) => dropped.push(k),
      metrics: prometheusWorkQueueMetrics(registry, "bounded"),
    });
    q.add("a");
    q.add("b");
    q.add("c");
    q.add("a"); // already dirty: not a drop
    assert.equal(q.len(), 2);
    assert.deepEqual(dropped, ["c"]);
    assert.equal(q.droppedCount, 1);
    q.addAfter("x", 10);
    q.addAfter("y", 10);
    q.addAfter("z", 10);
    assert.deepEqual(dropped, ["c", "z"]);
    const text = await registry.metrics();
    assert.match(text, /workqueue_dropped_total\{name="bounded",controller="bounded"\} 2/);
    assert.match(text, /workqueue_depth\{name="bounded",controller="bounded"\} 2/);
  });

  test("reports controller-runtime workqueue metrics", async () => {
    const clock = new FakeClock();
    const registry = createRegistry({ defaultMetrics: false });
    const q = queue(clock, { metrics: prometheusWorkQueueMetrics(registry, "m") });
    q.add("a");
    q.add("a");
    q.add("b");
    await clock.advance(2000);
    const a = await q.get();
    await clock.advance(500);
    q.done(a!);
    q.addRateLimited("a");
    const text = await registry.metrics();
    assert.match(text, /workqueue_adds_total\{name="m",controller="m"\} 2/);
    assert.match(text, /workqueue_retries_total\{name="m",controller="m"\} 1/);
    assert.match(text, /workqueue_depth\{name="m",controller="m"\} 1/);
    assert.match(text, /workqueue_queue_duration_seconds_sum\{name="m",controller="m"\} 2\n/);
    assert.match(text, /workqueue_work_duration_seconds_sum\{name="m",controller="m"\} 0.5\n/);
  });
});

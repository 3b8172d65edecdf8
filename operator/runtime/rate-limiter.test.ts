import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FakeClock } from "./fake-clock.ts";
import {
  BucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from "./rate-limiter.ts";

describe("rate limiters", () => {
  test("per-item exponential backoff: 5 ms doubling, capped at 1000 s, per key", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>();
    const delays = Array.from({ length: 20 }, () => rl.when("a"));
    assert.deepEqual(delays.slice(0, 5), [5, 10, 20, 40, 80]);
    assert.equal(delays[17], 5 * 2 ** 17);
    assert.equal(delays[18], 1_000_000, "capped at 1000 s");
    assert.equal(rl.when("b"), 5, "other keys are independent");
    assert.equal(rl.numRequeues("a"), 20);
    for (let i = 0; i < 2000; i++) rl.when("a");
    assert.equal(rl.when("a"), 1_000_000, "no overflow after many failures");
    rl.forget("a");
    assert.equal(rl.when("a"), 5);
  });

  test("token bucket: burst, then 1/qps spacing, refills with time", async () => {
    const clock = new FakeClock();
    const rl = new BucketRateLimiter<string>(10, 3, clock);
    assert.deepEqual([rl.when("x"), rl.when("x"), rl.when("x")], [0, 0, 0]);
    assert.equal(rl.when("x"), 100);
    assert.equal(rl.when("x"), 200);
    await clock.advance(1000);
    // 5 reserved, 3 burst + 10 refilled tokens → capped at burst 3; 2 were owed.
    assert.equal(rl.when("x"), 0);
  });

  test("max-of takes the longest delay; default limiter combines both like client-go", () => {
    const clock = new FakeClock();
    const rl = new MaxOfRateLimiter<string>(
      new ItemExponentialFailureRateLimiter(5, 1000),
      new BucketRateLimiter(1, 1, clock),
    );
    assert.equal(rl.when("a"), 5);
    assert.equal(rl.when("a"), 1000, "bucket empty: 1 s");
    const def = defaultControllerRateLimiter<string>({ clock });
    assert.equal(def.when("k"), 5);
    assert.equal(def.when("k"), 10);
    def.forget("k");
    assert.equal(def.numRequeues("k"), 0);
  });
});

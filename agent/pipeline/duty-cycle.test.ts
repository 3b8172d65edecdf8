import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DutyCycle, type TimerApi } from "./duty-cycle.ts";

/** Timers driven by hand: advance(ms) fires what is due, in order. */
class ManualTimers implements TimerApi {
  now = 0;
  #next = 1;
  readonly #pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#pending.delete(h as number);
  }
  get pending(): number {
    return this.#pending.size;
  }
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.#pending.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.now = until;
  }
}

describe("DutyCycle", () => {
  it("samples 60 s of every 300 s: on at 0, off at 60, on at 300, off at 360", async () => {
    const timers = new ManualTimers();
    const log: string[] = [];
    const dc = new DutyCycle({
      onMs: 60_000,
      periodMs: 300_000,
      timers,
      turnOn: () => {
        log.push(`on@${timers.now}`);
        return Promise.resolve();
      },
      turnOff: () => {
        log.push(`off@${timers.now}`);
        return Promise.resolve();
      },
    });
    await dc.start();
    assert.equal(dc.on, true);
    await timers.advance(400_000);
    assert.deepEqual(log, ["on@0", "off@60000", "on@300000", "off@360000"]);
    await dc.shutdown();
    assert.equal(timers.pending, 0, "no timer left after shutdown");
    await timers.advance(1_000_000);
    assert.equal(log.length, 4);
  });

  it("always on when onSeconds >= periodSeconds; shutdown turns it off once", async () => {
    const timers = new ManualTimers();
    let on = 0;
    let off = 0;
    const dc = new DutyCycle({
      onMs: 5,
      periodMs: 5,
      timers,
      turnOn: () => {
        on++;
        return Promise.resolve();
      },
      turnOff: () => {
        off++;
        return Promise.resolve();
      },
    });
    await dc.start();
    await timers.advance(1_000_000);
    assert.deepEqual([on, off, timers.pending], [1, 0, 0]);
    await dc.shutdown();
    await dc.shutdown();
    assert.equal(off, 1);
  });

  it("a failed start is reported and retried next period, never in a loop", async () => {
    const timers = new ManualTimers();
    const errors: unknown[] = [];
    let attempts = 0;
    const dc = new DutyCycle({
      onMs: 10,
      periodMs: 100,
      timers,
      turnOn: () => (++attempts <= 2 ? Promise.reject(new Error("bpftrace busy")) : Promise.resolve()),
      turnOff: () => Promise.resolve(),
      onError: (e) => errors.push(e),
    });
    await dc.start();
    assert.equal(dc.on, false);
    await timers.advance(205); // failed at 0 and 100, on at 200, off again at 210
    assert.equal(attempts, 3);
    assert.equal(errors.length, 2);
    assert.equal(dc.on, true);
    await dc.shutdown();
  });

  it("rejects nonsense budgets", () => {
    assert.throws(
      () => new DutyCycle({ onMs: 0, periodMs: 10, turnOn: async () => {}, turnOff: async () => {} }),
      RangeError,
    );
  });
});

/**
 * A manually advanced Clock for unit tests: timers fire only inside `advance`, in due-time order, and
 * promise chains they start are allowed to settle between timers so async loops (leader election,
 * delayed queue adds) behave as they would in real time, without real sleeping.
 */
import type { CancelTimer, Clock } from "./clock.ts";

interface FakeTimer {
  readonly id: number;
  readonly due: number;
  readonly callback: () => void;
}

export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, FakeTimer>();

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): CancelTimer {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + Math.max(0, delayMs), callback });
    return () => {
      this.#timers.delete(id);
    };
  }

  /** Number of timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer due on the way and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#earliest();
      if (next === undefined || next.due > target) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.due);
      next.callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers.values()) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    }
    return best;
  }
}

/** Lets pending promise chains (microtasks and a few rounds of immediates) run to completion. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => {
      setImmediate(resolve);
    });
  }
}

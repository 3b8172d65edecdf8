// "Sample 60 s of every 300 s": turns sampling on and off on a schedule. The on-phase starts at once;
// a failure to start is reported and retried at the next period (never a tight loop).
export interface TimerApi {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: TimerApi = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => {
    clearTimeout(h as NodeJS.Timeout);
  },
};

export interface DutyCycleOptions {
  /** Sampling time per period, ms. */
  onMs: number;
  /** Period length, ms; onMs >= periodMs means always on. */
  periodMs: number;
  turnOn: () => Promise<void>;
  turnOff: () => Promise<void>;
  onError?: (err: unknown) => void;
  timers?: TimerApi;
}

export class DutyCycle {
  readonly #o: DutyCycleOptions;
  readonly #timers: TimerApi;
  #timer: unknown;
  #stopped = false;
  #on = false;
  /** Serialises on/off transitions so a slow start never overlaps a stop. */
  #chain: Promise<void> = Promise.resolve();
  periods = 0;

  constructor(o: DutyCycleOptions) {
    if (!(o.onMs > 0) || !(o.periodMs > 0))
      throw new RangeError(`duty cycle: onMs and periodMs must be > 0 (got ${o.onMs}, ${o.periodMs})`);
    this.#o = o;
    this.#timers = o.timers ?? realTimers;
  }

  get alwaysOn(): boolean {
    return this.#o.onMs >= this.#o.periodMs;
  }

  get on(): boolean {
    return this.#on;
  }

  /** Starts the first on-phase; resolves once it is on (or its start failed and was reported). */
  start(): Promise<void> {
    return this.#phaseOn();
  }

  #phaseOn(): Promise<void> {
    this.periods++;
    this.#chain = this.#chain.then(async () => {
      if (this.#stopped) return;
      try {
        await this.#o.turnOn();
        this.#on = true;
      } catch (err) {
        this.#o.onError?.(err);
      }
    });
    if (!this.alwaysOn) {
      this.#schedule(this.#o.onMs, () => {
        void this.#phaseOff();
      });
    }
    return this.#chain;
  }

  #phaseOff(): Promise<void> {
    this.#chain = this.#chain.then(async () => {
      if (!this.#on) return;
      this.#on = false;
      await this.#o.turnOff().catch((err: unknown) => this.#o.onError?.(err));
    });
    this.#schedule(this.#o.periodMs - this.#o.onMs, () => {
      void this.#phaseOn();
    });
    return this.#chain;
  }

  #schedule(ms: number, fn: () => void): void {
    if (this.#stopped) return;
    this.#timer = this.#timers.setTimeout(fn, ms);
  }

  /** Stops the schedule and turns sampling off. */
  async shutdown(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#chain = this.#chain.then(async () => {
      if (!this.#on) return;
      this.#on = false;
      await this.#o.turnOff().catch((err: unknown) => this.#o.onError?.(err));
    });
    await this.#chain;
  }
}

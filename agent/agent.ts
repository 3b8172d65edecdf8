// The node agent's pipeline: (duty-cycled) bpftrace sampler → attribution + symbolisation + collapse
// per interval → a StackSink (the gRPC shipper in a cluster, an in-memory collector for `stella agent
// record`). One Sampler per on-phase: bpftrace is started when sampling turns on and stopped (with its
// whole process group) when it turns off, so an off-phase costs nothing.
import type { Logger } from "../core/service/log.ts";
import { silentLogger } from "../core/service/log.ts";
import { StackAggregator, type AggregatorStats, type LocalSample } from "./pipeline/aggregator.ts";
import type { AttributionSource } from "./pipeline/attribution.ts";
import { DutyCycle, type TimerApi } from "./pipeline/duty-cycle.ts";
import type { BatchBody } from "./pipeline/wire.ts";
import type { StackSample } from "./sampler/bpftrace-output.ts";
import { Sampler, type SamplerFilter, type SamplerOptions } from "./sampler/sampler.ts";
import type { Symbolizer } from "./symbolize/symbolizer.ts";

/** Where each interval's batch goes. */
export interface StackSink {
  enqueue(body: BatchBody & { samples: LocalSample[] }): void;
  /** A sink that may drop batches (the shipper's full buffer) says how many it dropped so far. */
  readonly stats?: { readonly droppedBatches: number };
}

export interface AgentOptions {
  hz: number;
  intervalMs: number;
  filter: SamplerFilter;
  /** Userspace pid filter applied before aggregation (cgroup subtrees). */
  accept?: (pid: number) => boolean;
  /** Sample onMs of every periodMs; default always on. */
  dutyCycle?: { onMs: number; periodMs: number };
  symbolizer: Symbolizer;
  attribution: AttributionSource;
  sink: StackSink;
  /** Keep pid/comm per sample (local output only). */
  byProcess?: boolean;
  logger?: Logger;
  /** Passed through to each Sampler (runner, bpftracePath, backoff, …). */
  sampler?: Omit<SamplerOptions, "hz" | "intervalMs" | "filter" | "onInterval" | "onError">;
  /** A fatal sampler error (bpftrace gone or not permitted after a restart). */
  onFatal?: (err: Error) => void;
  now?: () => number;
  timers?: TimerApi;
}

export interface AgentStats {
  intervals: number;
  samplerStarts: number;
  samplerRestarts: number;
  samplerCrashes: number;
  lostEvents: number;
  badLines: number;
  oversizeLines: number;
  badKeys: number;
  /** Last interval: unresolved frames / all frames (0 when no frames). */
  unresolvedRatio: number;
  lastIntervalStacks: number;
  lastIntervalSeconds: number;
  aggregator: AggregatorStats;
}

type SamplerCounters = Pick<
  AgentStats,
  | "samplerStarts"
  | "samplerRestarts"
  | "samplerCrashes"
  | "lostEvents"
  | "badLines"
  | "oversizeLines"
  | "badKeys"
>;

export class Agent {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly #agg: StackAggregator;
  readonly #duty: DutyCycle;
  readonly #now: () => number;
  #sampler: Sampler | undefined;
  /** Counters of samplers already stopped (each on-phase has its own Sampler). */
  #retired: SamplerCounters = {
    samplerStarts: 0,
    samplerRestarts: 0,
    samplerCrashes: 0,
    lostEvents: 0,
    badLines: 0,
    oversizeLines: 0,
    badKeys: 0,
  };
  #windowStart = 0;
  #sinkDrops = 0;
  #intervals = 0;
  #unresolvedRatio = 0;
  #lastStacks = 0;
  #lastSeconds = 0;
  /** Resolves once the first on-phase started (or failed). */
  #firstStart: Promise<void> | undefined;
  #firstError: Error | undefined;

  constructor(o: AgentOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger();
    this.#now = o.now ?? Date.now;
    const agg = { resolver: o.symbolizer, attribution: o.attribution, byProcess: o.byProcess ?? false };
    this.#agg = new StackAggregator(o.accept ? { ...agg, accept: o.accept } : agg);
    const dc = o.dutyCycle ?? { onMs: 1, periodMs: 1 };
    this.#duty = new DutyCycle({
      onMs: dc.onMs,
      periodMs: dc.periodMs,
      turnOn: () => this.#turnOn(),
      turnOff: () => this.#turnOff(),
      onError: (err) => {
        const e = err instanceof Error ? err : new Error(String(err));
        this.#firstError ??= e;
        this.#log.error({ err: e }, "sampler failed to start; retrying next period");
      },
      ...(o.timers ? { timers: o.timers } : {}),
    });
  }

  get sampling(): boolean {
    return this.#sampler !== undefined;
  }

  /** The running bpftrace child's pid (for CPU accounting). */
  get bpftracePid(): number | undefined {
    return this.#sampler?.childPid;
  }

  get stats(): AgentStats {
    const cur = this.#sampler?.stats;
    const r = this.#retired;
    return {
      intervals: this.#intervals,
      samplerStarts: r.samplerStarts + (cur?.starts ?? 0),
      samplerRestarts: r.samplerRestarts + (cur?.restarts ?? 0),
      samplerCrashes: r.samplerCrashes + (cur?.crashes ?? 0),
      lostEvents: r.lostEvents + (cur?.parser.lostEvents ?? 0),
      badLines: r.badLines + (cur?.parser.badLines ?? 0),
      oversizeLines: r.oversizeLines + (cur?.parser.oversizeLines ?? 0),
      badKeys: r.badKeys + (cur?.parser.badKeys ?? 0),
      unresolvedRatio: this.#unresolvedRatio,
      lastIntervalStacks: this.#lastStacks,
      lastIntervalSeconds: this.#lastSeconds,
      aggregator: { ...this.#agg.stats },
    };
  }

  /**
   * Starts sampling. Rejects when the first start fails with an error the user must fix (bpftrace
   * missing, too old, not permitted); later failures are logged and retried each period.
   */
  async start(): Promise<void> {
    this.#firstStart = this.#duty.start();
    await this.#firstStart;
    if (this.#firstError && !this.sampling) {
      await this.#duty.shutdown();
      throw this.#firstError;
    }
  }

  /** Stops bpftrace; the last partial interval is still delivered to the sink. */
  async shutdown(): Promise<void> {
    await this.#duty.shutdown();
  }

  async #turnOn(): Promise<void> {
    this.#windowStart = this.#now();
    const s = new Sampler({
      ...this.#o.sampler,
      hz: this.#o.hz,
      intervalMs: this.#o.intervalMs,
      filter: this.#o.filter,
      onInterval: (stacks) => {
        this.#onInterval(stacks);
      },
      onError: (err) => {
        this.#log.error({ err }, "sampler stopped");
        this.#retire(s);
        this.#o.onFatal?.(err);
      },
    });
    await s.start();
    this.#sampler = s;
    this.#log.info(
      { hz: this.#o.hz, intervalMs: this.#o.intervalMs, bpftracePid: s.childPid },
      "sampling on",
    );
  }

  async #turnOff(): Promise<void> {
    const s = this.#sampler;
    if (!s) return;
    await s.shutdown();
    this.#retire(s);
    this.#log.info({}, "sampling off");
  }

  #retire(s: Sampler): void {
    if (this.#sampler !== s) return;
    this.#sampler = undefined;
    const r = this.#retired;
    r.samplerStarts += s.stats.starts;
    r.samplerRestarts += s.stats.restarts;
    r.samplerCrashes += s.stats.crashes;
    r.lostEvents += s.stats.parser.lostEvents;
    r.badLines += s.stats.parser.badLines;
    r.oversizeLines += s.stats.parser.oversizeLines;
    r.badKeys += s.stats.parser.badKeys;
  }

  #onInterval(stacks: StackSample[]): void {
    const t0 = performance.now();
    const before = { ok: this.#agg.stats.framesResolved, bad: this.#agg.stats.framesUnresolved };
    this.#agg.add(stacks);
    const end = this.#now();
    const body = this.#agg.flush({ startUnixMs: this.#windowStart, endUnixMs: end }, this.#o.hz);
    this.#windowStart = end;
    const ok = this.#agg.stats.framesResolved - before.ok;
    const bad = this.#agg.stats.framesUnresolved - before.bad;
    this.#unresolvedRatio = ok + bad === 0 ? 0 : bad / (ok + bad);
    this.#lastStacks = body.samples.length;
    this.#intervals++;
    this.#lastSeconds = (performance.now() - t0) / 1000;
    try {
      this.#o.sink.enqueue(body);
    } catch (err) {
      this.#log.error({ err }, "sink rejected a batch");
    }
    // A dropped batch may have carried the only description of a binary (they are sent once):
    // describe every binary again in the next batches.
    const drops = this.#o.sink.stats?.droppedBatches ?? 0;
    if (drops > this.#sinkDrops) {
      this.#sinkDrops = drops;
      this.#agg.redescribeBinaries();
    }
  }
}

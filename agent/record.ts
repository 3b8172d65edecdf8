// `stella agent record`: sample this machine for a while and return the collapsed stacks, no cluster
// and no operator involved (the embedded default). The same Agent pipeline as the DaemonSet, with an
// in-memory sink that merges the intervals.
import { existsSync } from "node:fs";

import { Agent, type AgentStats } from "./agent.ts";
import type { LocalSample } from "./pipeline/aggregator.ts";
import type { AttributionSource } from "./pipeline/attribution.ts";
import { resolveCgroupFilter } from "./pipeline/cgroup-filter.ts";
import type { BatchBody } from "./pipeline/wire.ts";
import type { SamplerFilter, ProcessRunner } from "./sampler/sampler.ts";
import { Symbolizer, type SymbolizerStats } from "./symbolize/symbolizer.ts";
import { StellaError } from "../core/errors.ts";

export type RecordTarget = { pid: number } | { cgroup: string; cgroupRoot?: string } | { all: true };

export interface RecordOptions {
  target: RecordTarget;
  durationMs: number;
  hz: number;
  /** How often bpftrace hands over its map (default 1000 ms, or less for short recordings). */
  intervalMs?: number;
  attribution: AttributionSource;
  kernel?: boolean;
  bpftracePath?: string;
  runner?: ProcessRunner;
  signal?: AbortSignal;
  /** Called about every 200 ms with elapsed milliseconds. */
  onProgress?: (elapsedMs: number) => void;
}

export interface Recording {
  window: { startUnixMs: number; endUnixMs: number };
  hz: number;
  samples: LocalSample[];
  /** Samples dropped before output (process gone before attribution, nothing resolvable). */
  droppedSamples: number;
  /** Why the recording ended before its duration, if it did. */
  endedEarly?: "pid-exited" | "aborted";
  agent: AgentStats;
  symbolizer: SymbolizerStats;
}

/** Merges interval bodies: same (process, attribution, frames) → one sample with the summed count. */
class CollectSink {
  readonly #byKey = new Map<string, LocalSample>();
  dropped = 0;
  enqueue(body: BatchBody & { samples: LocalSample[] }): void {
    this.dropped += body.droppedSamples;
    for (const s of body.samples) {
      const { count, ...rest } = s;
      const key = JSON.stringify(rest);
      const prev = this.#byKey.get(key);
      if (prev) prev.count += count;
      else this.#byKey.set(key, { ...s });
    }
  }
  samples(): LocalSample[] {
    return [...this.#byKey.values()].sort((a, b) => b.count - a.count);
  }
}

export async function record(o: RecordOptions): Promise<Recording> {
  if (!Number.isSafeInteger(o.hz) || o.hz < 1 || o.hz > 10_000)
    throw new StellaError("INVALID_ARGUMENT", `--hz must be an integer in [1, 10000], got ${o.hz}`);
  if (!(o.durationMs > 0)) throw new StellaError("INVALID_ARGUMENT", `--duration must be > 0`);
  let filter: SamplerFilter;
  let accept: ((pid: number) => boolean) | undefined;
  if ("pid" in o.target) {
    if (!existsSync(`/proc/${o.target.pid}`))
      throw new StellaError("NO_SUCH_PROCESS", `--pid ${o.target.pid}: no such process`);
    filter = { pid: o.target.pid };
  } else if ("cgroup" in o.target) {
    const f = resolveCgroupFilter(
      o.target.cgroup,
      o.target.cgroupRoot !== undefined ? { cgroupRoot: o.target.cgroupRoot } : {},
    );
    filter = f.sampler;
    accept = f.accept;
  } else filter = { all: true, excludePid: process.pid };

  const intervalMs = o.intervalMs ?? Math.max(100, Math.min(1000, Math.floor(o.durationMs / 4)));
  const symbolizer = new Symbolizer({ kernel: o.kernel ?? false });
  const sink = new CollectSink();
  let fatal: Error | undefined;
  const agent = new Agent({
    hz: o.hz,
    intervalMs,
    filter,
    ...(accept ? { accept } : {}),
    symbolizer,
    attribution: o.attribution,
    sink,
    byProcess: true,
    sampler: {
      ...(o.runner ? { runner: o.runner } : {}),
      ...(o.bpftracePath ? { bpftracePath: o.bpftracePath } : {}),
    },
    onFatal: (err) => {
      fatal = err;
    },
  });
  const startUnixMs = Date.now();
  await agent.start();
  const t0 = performance.now();
  let endedEarly: Recording["endedEarly"];
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - t0;
      o.onProgress?.(Math.min(elapsed, o.durationMs));
      if (o.signal?.aborted) endedEarly = "aborted";
      else if ("pid" in o.target && !existsSync(`/proc/${o.target.pid}`)) endedEarly = "pid-exited";
      if (elapsed >= o.durationMs || endedEarly !== undefined || fatal !== undefined) {
        clearInterval(tick);
        resolve();
      }
    }, 200);
  });
  // bpftrace prints the last partial interval on SIGTERM: shutdown delivers it to the sink.
  await agent.shutdown();
  if (fatal) throw fatal;
  const rec: Recording = {
    window: { startUnixMs, endUnixMs: Date.now() },
    hz: o.hz,
    samples: sink.samples(),
    droppedSamples: sink.dropped,
    agent: agent.stats,
    symbolizer: { ...symbolizer.stats },
  };
  if (endedEarly) rec.endedEarly = endedEarly;
  return rec;
}

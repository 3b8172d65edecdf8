// The agent's Prometheus metrics. Pull-style: the pipeline keeps plain counters (agent, shipper,
// symboliser, attribution stats) and each scrape copies them in, so the hot path never touches
// prom-client. Names follow Prometheus conventions (base units, counters end in _total) and no label
// carries an unbounded value (never a pid, pod, BuildID or stack).
import { readFileSync } from "node:fs";

import type { Registry } from "prom-client";

import { counter, gauge } from "../core/service/metrics.ts";
import type { AgentStats } from "./agent.ts";
import type { ElfCacheStats } from "./symbolize/elf-cache.ts";
import type { ShipperStats } from "./ship/shipper.ts";

/** Everything the metrics read; all optional so `record` and tests can wire a subset. */
export interface AgentMetricSources {
  agent?: () => AgentStats;
  sampling?: () => boolean;
  bpftracePid?: () => number | undefined;
  shipper?: () => Readonly<ShipperStats>;
  elfCache?: () => ElfCacheStats;
  attribution?: () => { pods: number; containers: number };
}

type Series = readonly [labels: Record<string, string> | undefined, read: () => number];

/**
 * A counter family that mirrors monotonic numbers kept elsewhere, one series per label set (each
 * only ever incremented by its delta, so a reset source never makes the counter go down).
 */
function mirroredCounter(
  reg: Registry,
  name: string,
  help: string,
  series: readonly (Series | undefined)[],
): void {
  const live = series.filter((x): x is Series => x !== undefined);
  if (live.length === 0) return;
  const labelNames = Object.keys(live[0]?.[0] ?? {});
  const last = live.map(() => 0);
  const c = counter(reg, {
    name,
    help,
    labelNames,
    collect: () => {
      live.forEach(([labels, read], i) => {
        const v = read();
        const prev = last[i] ?? 0;
        if (v > prev) {
          if (labels) c.inc(labels, v - prev);
          else c.inc(v - prev);
          last[i] = v;
        }
      });
    },
  });
}

/** One unlabelled series, when its source is wired. */
function one(read: (() => number) | undefined, labels?: Record<string, string>): Series | undefined {
  return read ? [labels, read] : undefined;
}

function mirroredGauge(reg: Registry, name: string, help: string, read: (() => number) | undefined): void {
  if (!read) return;
  const g = gauge(reg, {
    name,
    help,
    collect: () => {
      g.set(read());
    },
  });
}

const CLK_TCK = 100;

/** utime + stime of a process, seconds (/proc/PID/stat fields 14 and 15; the comm may hold spaces). */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state): fields 14 and 15 are rest[11] and rest[12].
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

export function registerAgentMetrics(reg: Registry, src: AgentMetricSources): void {
  const a = src.agent;
  const p = "stella_agent_";
  mirroredCounter(reg, `${p}samples_total`, "Stack samples taken by bpftrace.", [
    one(a && (() => a().aggregator.samplesIn)),
  ]);
  mirroredCounter(
    reg,
    `${p}shipped_samples_total`,
    "Samples that left the agent attributed and symbolised.",
    [one(a && (() => a().aggregator.samplesOut))],
  );
  mirroredCounter(
    reg,
    `${p}stacks_total`,
    "Distinct (container, stack) buckets produced, summed over intervals.",
    [one(a && (() => a().aggregator.stacksOut))],
  );
  mirroredCounter(reg, `${p}frames_total`, "Frames symbolised, by result.", [
    one(a && (() => a().aggregator.framesResolved), { result: "resolved" }),
    one(a && (() => a().aggregator.framesUnresolved), { result: "unresolved" }),
  ]);
  mirroredGauge(
    reg,
    `${p}unresolved_frames_ratio`,
    "Unresolved frames / all frames in the last interval.",
    a && (() => a().unresolvedRatio),
  );
  mirroredCounter(
    reg,
    `${p}dropped_samples_total`,
    "Samples not delivered, by reason: process_exited (before attribution), unresolved (no frame " +
      "resolved), buffer_full (evicted unacknowledged).",
    [
      one(a && (() => a().aggregator.droppedExited), { reason: "process_exited" }),
      one(a && (() => a().aggregator.droppedUnresolved), { reason: "unresolved" }),
      one(src.shipper && (() => src.shipper?.().droppedSamples ?? 0), { reason: "buffer_full" }),
    ],
  );
  mirroredCounter(reg, `${p}bpftrace_restarts_total`, "bpftrace restarts after a crash.", [
    one(a && (() => a().samplerRestarts)),
  ]);
  mirroredCounter(reg, `${p}bpftrace_lost_events_total`, "Events bpftrace reported lost.", [
    one(a && (() => a().lostEvents)),
  ]);
  mirroredCounter(
    reg,
    `${p}bpftrace_malformed_lines_total`,
    "bpftrace output lines or keys that could not be parsed (garbage, truncated, oversize).",
    [one(a && (() => a().badLines + a().oversizeLines + a().badKeys))],
  );
  mirroredGauge(
    reg,
    `${p}interval_processing_seconds`,
    "Time to attribute, symbolise and collapse the last interval.",
    a && (() => a().lastIntervalSeconds),
  );
  mirroredGauge(
    reg,
    `${p}sampling`,
    "1 while bpftrace is sampling (duty cycle on), else 0.",
    src.sampling && (() => (src.sampling?.() ? 1 : 0)),
  );
  // The agent's own CPU is prom-client's process_cpu_seconds_total; bpftrace runs as a child process.
  mirroredCounter(reg, `${p}bpftrace_cpu_seconds_total`, "User + system CPU of the current bpftrace child.", [
    one(
      src.bpftracePid &&
        (() => {
          const pid = src.bpftracePid?.();
          return pid === undefined ? 0 : (processCpuSeconds(pid) ?? 0);
        }),
    ),
  ]);
  const s = src.shipper;
  mirroredGauge(
    reg,
    `${p}buffer_bytes`,
    "Encoded bytes of unacknowledged batches held.",
    s && (() => s().bufferBytes),
  );
  mirroredGauge(reg, `${p}buffer_batches`, "Unacknowledged batches held.", s && (() => s().bufferBatches));
  mirroredCounter(reg, `${p}batches_sent_total`, "Batches sent (first sends).", [one(s && (() => s().sent))]);
  mirroredCounter(reg, `${p}batches_resent_total`, "Batches sent again after a reconnect.", [
    one(s && (() => s().resent)),
  ]);
  mirroredCounter(reg, `${p}batches_acked_total`, "Batches the operator acknowledged.", [
    one(s && (() => s().acked)),
  ]);
  mirroredCounter(
    reg,
    `${p}batches_rejected_total`,
    "Batches the operator refused as malformed (not resent).",
    [one(s && (() => s().rejected))],
  );
  mirroredCounter(
    reg,
    `${p}dropped_batches_total`,
    "Unacknowledged batches dropped because the buffer was full.",
    [one(s && (() => s().droppedBatches))],
  );
  mirroredCounter(reg, `${p}reconnects_total`, "gRPC stream reconnects.", [one(s && (() => s().reconnects))]);
  mirroredGauge(
    reg,
    `${p}connected`,
    "1 while the ingest stream is up.",
    s && (() => (s().connected ? 1 : 0)),
  );
  const e = src.elfCache;
  mirroredGauge(reg, `${p}symbol_cache_bytes`, "Bytes of ELF function tables held.", e && (() => e().bytes));
  mirroredGauge(
    reg,
    `${p}symbol_cache_binaries`,
    "Binaries held in the ELF cache.",
    e && (() => e().entries),
  );
  mirroredCounter(reg, `${p}symbol_cache_evictions_total`, "ELF cache evictions.", [
    one(e && (() => e().evictions)),
  ]);
  const at = src.attribution;
  mirroredGauge(reg, `${p}node_pods`, "Pods of this node known to the agent.", at && (() => at().pods));
  mirroredGauge(
    reg,
    `${p}node_containers`,
    "Containers of this node known to the agent.",
    at && (() => at().containers),
  );
}

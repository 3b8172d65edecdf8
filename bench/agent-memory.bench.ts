// Agent memory with 10,000 distinct stacks per interval (the bound), through the real
// pipeline: attribution (the real Attributor) → Symbolizer (real /proc maps and ELF files of this process: node, libc,
// libstdc++ …) → collapse → a batch body per interval, for 30 intervals.
//
//   node --expose-gc bench/agent-memory.bench.ts [--stacks 10000] [--depth 24] [--intervals 30] [--pool 20000]
//
// --pool 0 draws every frame at random (worst case: nothing shared between stacks).
//
// Prints heap and RSS after each phase; the steady state must not grow with intervals (the
// aggregator holds one interval; the ELF cache is capped by symbolization.cacheBytes and the
// shipper's buffer by operator.maxBufferBytes, both reported separately).
import { readFileSync } from "node:fs";

import { StackAggregator } from "../agent/pipeline/aggregator.ts";
import { Attributor } from "../agent/attribute/attributor.ts";
import type { StackSample } from "../agent/sampler/bpftrace-output.ts";
import { parseMaps } from "../agent/symbolize/maps.ts";
import { Symbolizer } from "../agent/symbolize/symbolizer.ts";

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const STACKS = arg("--stacks", 10_000);
const DEPTH = arg("--depth", 24);
const INTERVALS = arg("--intervals", 30);
/** Distinct code addresses stacks are drawn from (real programs repeat callers); 0 = all random. */
const POOL = arg("--pool", 20_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const MiB = 1024 * 1024;
function mem(label: string): { heap: number; rss: number } {
  gc?.();
  const m = process.memoryUsage();
  console.log(
    `${label.padEnd(40)} heap ${(m.heapUsed / MiB).toFixed(1).padStart(7)} MiB   rss ${(m.rss / MiB).toFixed(1).padStart(7)} MiB`,
  );
  return { heap: m.heapUsed, rss: m.rss };
}

// Executable file mappings of this very process: real code addresses to resolve.
const exec = parseMaps(readFileSync("/proc/self/maps", "utf8")).mappings.filter(
  (m) => m.kind === "file" && m.perms.includes("x"),
);
let seed = 42;
const rnd = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; // imul: a float product would lose bits
  return seed % n;
};
function address(): bigint {
  const m = exec[rnd(exec.length)];
  if (!m) throw new Error("no executable mapping");
  return BigInt(m.start + rnd(m.end - m.start));
}

const pool: bigint[] = [];
for (let i = 0; i < POOL; i++) pool.push(address());
const frame = (): bigint => (POOL > 0 ? (pool[rnd(POOL)] as bigint) : address());

/** One interval: STACKS distinct stacks (distinct leaves guarantee distinct buckets). */
function interval(): StackSample[] {
  const out: StackSample[] = [];
  for (let i = 0; i < STACKS; i++) {
    const frames: bigint[] = [];
    for (let d = 0; d < DEPTH; d++) frames.push(frame());
    out.push({ pid: process.pid, comm: "bench", frames, count: 1 + rnd(5) });
  }
  return out;
}

const base = mem("baseline");
const sym = new Symbolizer({ kernel: false });
const agg = new StackAggregator({ resolver: sym, attribution: new Attributor() });
// Warm the ELF cache (every mapped binary's function table) so its cost shows apart from the stacks'.
for (const m of exec) sym.resolve(process.pid, BigInt(m.start));
const warm = mem("ELF cache warm");
let peakHeap = 0;
let peakRss = 0;
let buckets = 0;
let frames = 0;
let busyMs = 0;
for (let i = 0; i < INTERVALS; i++) {
  const stacks = interval();
  const a0 = performance.now();
  agg.add(stacks);
  busyMs += performance.now() - a0;
  gc?.(); // live memory at the fullest point: the interval's raw stacks and its buckets
  const m = process.memoryUsage();
  peakHeap = Math.max(peakHeap, m.heapUsed);
  peakRss = Math.max(peakRss, m.rss);
  const f0 = performance.now();
  const body = agg.flush({ startUnixMs: i, endUnixMs: i + 1 }, 99);
  busyMs += performance.now() - f0;
  buckets = body.samples.length;
  frames += STACKS * DEPTH;
  if (i === 0) mem("after interval 1");
}
const secs = busyMs / 1000;
const end = mem(`after ${INTERVALS} intervals`);
console.log(
  `\n${STACKS} distinct stacks x ${DEPTH} frames per interval, ${INTERVALS} intervals; last interval ${buckets} buckets`,
);
console.log(
  `ELF cache: ${(sym.cache.stats.bytes / MiB).toFixed(1)} MiB in ${sym.cache.stats.entries} binaries (cap ${(sym.cache.maxBytes / MiB).toFixed(0)} MiB)`,
);
console.log(
  `live at the fullest point of an interval: heap +${((peakHeap - warm.heap) / MiB).toFixed(1)} MiB, rss +${((peakRss - warm.rss) / MiB).toFixed(1)} MiB over the warm ELF cache`,
);
console.log(
  `ELF cache warm: heap +${((warm.heap - base.heap) / MiB).toFixed(1)} MiB, rss +${((warm.rss - base.rss) / MiB).toFixed(1)} MiB over baseline\nsteady (after GC): heap +${((end.heap - warm.heap) / MiB).toFixed(1)} MiB, rss +${((end.rss - warm.rss) / MiB).toFixed(1)} MiB over the warm ELF cache`,
);
console.log(
  `pipeline throughput: ${(frames / secs / 1e6).toFixed(2)} M frames/s (attribute + symbolise + collapse + sort; input generation and GC excluded)`,
);
console.log(
  `bound stated in docs/agent.md: heap growth < 64 MiB at 10k stacks/interval (excluding ELF cache and shipper buffer caps)`,
);
if ((peakHeap - warm.heap) / MiB > 64) process.exitCode = 1;

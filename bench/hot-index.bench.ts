// Hot-symbol index: fold throughput, query latency and memory with realistic batches.
//   batches: 2,000 samples x 20 frames, ~5,000 distinct symbols (Zipf-weighted stacks), 50 pods on 10 nodes,
//   10 images, 20 BuildIDs; 10 agents each sending one batch per 10 s window
//   fold: samples/s and frames/s over 1M samples (500 batches), by wall clock and by process CPU time
//   query: median latency of query() for a hot, a middling and an absent symbol over the whole window
//   memory: stats.approxBytes against the heap growth (after GC) once 1M samples are folded
// Run: node --expose-gc bench/hot-index.bench.ts
import { createHotSymbolIndex } from "../operator/index/hot-symbols.ts";
import type { Frame__Output, Sample__Output, StackBatch__Output } from "../proto/evidence.ts";
import { median, timeMs } from "./timing.ts";

const SAMPLES_PER_BATCH = 2000;
const FRAMES = 20;
const SYMBOLS = 5000;
const PODS = 50;
const NODES = 10;
const IMAGES = 10;
const BUILD_IDS = 20;
const DISTINCT_STACKS = 20_000;
const TOTAL_SAMPLES = Number(process.env.SAMPLES ?? 1_000_000);
const T0 = 1_800_000_000_000;

let seed = 42;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
/** Zipf-ish index in [0, n): a few heavy hitters, a long tail. */
function zipf(n: number): number {
  return Math.min(n - 1, Math.floor(n ** rand()) - 1);
}

const gc = (globalThis as { gc?: () => void }).gc;
const heap = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

const buildIds = Array.from({ length: BUILD_IDS }, (_, i) => i.toString(16).padStart(2, "0").repeat(20));
const symbols = Array.from({ length: SYMBOLS }, (_, i) => `_ZN5stella${i}process_requestEv_${i}`);
/** Each symbol lives in one BuildID. */
const frameOf = (s: number): Frame__Output => ({
  kind: "KIND_NATIVE",
  buildId: buildIds[s % BUILD_IDS] ?? "",
  fileOffset: 0x1000 + s * 64,
  symbol: symbols[s] ?? "",
  offset: 16,
  unresolvedReason: "",
});
// Stacks: a root chain shared by many (main, run loop), then Zipf-picked frames: ~5,000 distinct symbols.
const stacks: Frame__Output[][] = Array.from({ length: DISTINCT_STACKS }, () => {
  const frames: Frame__Output[] = [];
  for (let i = 0; i < FRAMES - 2; i++) frames.push(frameOf(2 + zipf(SYMBOLS - 2)));
  frames.push(frameOf(1), frameOf(0));
  return frames;
});
const pods = Array.from({ length: PODS }, (_, i) => ({
  pod: `svc${i % IMAGES}-7d9f8c-${i.toString(36).padStart(5, "x")}`,
  namespace: `team-${i % 5}`,
  imageDigest: `sha256:${(i % IMAGES).toString(16).repeat(64)}`,
}));

function makeBatch(i: number): StackBatch__Output {
  const node = `node-${i % NODES}`;
  const end = T0 + Math.floor(i / NODES) * 10_000;
  const samples: Sample__Output[] = [];
  for (let j = 0; j < SAMPLES_PER_BATCH; j++) {
    const p = pods[Math.floor(rand() * PODS)] ?? { pod: "", namespace: "", imageDigest: "" };
    samples.push({
      container: "c".repeat(64),
      ...p,
      containerName: "app",
      frames: stacks[zipf(DISTINCT_STACKS)] ?? [],
      count: 1 + Math.floor(rand() * 3),
    });
  }
  return {
    node,
    agentId: `${node}/0123456789ab`,
    seq: i + 1,
    window: { startUnixMs: end - 10_000, endUnixMs: end },
    samples,
    binaries: [],
    hz: 99,
    droppedSamples: 0,
  };
}

const BATCHES = TOTAL_SAMPLES / SAMPLES_PER_BATCH;
// Batches are built up front (they are ingest's memory, not the index's) from a pool of 50 templates.
const templates = Array.from({ length: 50 }, (_, i) => makeBatch(i));
const batches = Array.from({ length: BATCHES }, (_, i) => {
  const t = templates[i % templates.length] ?? makeBatch(i);
  const node = `node-${i % NODES}`;
  const end = T0 + Math.floor(i / NODES) * 10_000;
  return { ...t, node, seq: i + 1, window: { startUnixMs: end - 10_000, endUnixMs: end } };
});
const lastEnd = T0 + Math.floor((BATCHES - 1) / NODES) * 10_000;

const heapBefore = heap();
const index = createHotSymbolIndex({ now: () => lastEnd });
const cpuStart = process.cpuUsage();
const start = process.hrtime.bigint();
const perBatch: number[] = [];
for (const b of batches) {
  const t = process.hrtime.bigint();
  index.fold(b);
  perBatch.push(Number(process.hrtime.bigint() - t) / 1e6);
}
const foldMs = Number(process.hrtime.bigint() - start) / 1e6;
// CPU time of the process (all threads, GC included): on a shared machine wall time overstates the cost.
const cpu = process.cpuUsage(cpuStart);
const foldCpuMs = (cpu.user + cpu.system) / 1000;
const heapAfter = heap();
const stats = index.stats;

const window = { sinceMs: 0, untilMs: Number.MAX_SAFE_INTEGER };
const hot = symbols[2] ?? "";
const mid = symbols[300] ?? "";
const q = (name: string) => timeMs(() => index.query({ name, ...window }), 21);
const hotObs = index.query({ name: hot, ...window });

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const out = {
  batches: BATCHES,
  sampleRecords: BATCHES * SAMPLES_PER_BATCH,
  foldedSamples: stats.foldedSamples,
  foldMs: Math.round(foldMs),
  sampleRecordsPerSec: Math.round((BATCHES * SAMPLES_PER_BATCH) / (foldMs / 1000)),
  framesPerSec: Math.round((BATCHES * SAMPLES_PER_BATCH * FRAMES) / (foldMs / 1000)),
  foldCpuMs: Math.round(foldCpuMs),
  sampleRecordsPerCpuSec: Math.round((BATCHES * SAMPLES_PER_BATCH) / (foldCpuMs / 1000)),
  medianBatchMs: median(perBatch).toFixed(2),
  symbols: stats.symbols,
  buckets: stats.buckets,
  queryHotMs: q(hot).toFixed(3),
  queryMidMs: q(mid).toFixed(3),
  queryAbsentMs: q("no_such_symbol").toFixed(4),
  productSamplesMs: timeMs(() => index.productSamples(undefined, 0, Number.MAX_SAFE_INTEGER), 21).toFixed(4),
  hotSamples: hotObs.samples,
  hotShare: (hotObs.samples / hotObs.productSamples).toFixed(3),
  approxBytes: mb(stats.approxBytes),
  heapGrowth: gc ? mb(heapAfter - heapBefore) : "run with --expose-gc",
  approxOverHeap: gc ? (stats.approxBytes / (heapAfter - heapBefore)).toFixed(2) : "",
};
console.log(JSON.stringify(out, null, 2));

// Hot-symbol index: fold throughput, query latency and memory with realistic batches (bench/stack-model.ts):
//   batches of 2,000 sample records x 20 frames, ~5,000 distinct symbols, 50 pods on 10 nodes, 10 images,
//   20 BuildIDs; 10 agents each sending one batch per 10 s window. Batches go through the real decoder first
//   (decode.ts: shared frozen frames, as ingest hands them to the index); decoding is not timed here.
//   fold: sample records/s over 1M records (500 batches; SHAPE=churn: 400,000 records, every stack new)
//   query: median latency of query() for a hot, a middling and an absent symbol over the whole window
//   memory: stats.approxBytes against the heap growth (after GC) once everything is folded
// Run: node --expose-gc bench/hot-index.bench.ts [SHAPE=steady|churn]
import { createHotSymbolIndex } from "../operator/index/hot-symbols.ts";
import { decodeStackBatch } from "../operator/ingest/decode.ts";
import { encodeBatch } from "../operator/ingest/wal.ts";
import { makeBatch, SAMPLES_PER_BATCH, FRAMES, symbols, windowEnd, type Shape } from "./stack-model.ts";
import { median, timeMs } from "./timing.ts";

const SHAPE: Shape = process.env.SHAPE === "churn" ? "churn" : "steady";

const gc = (globalThis as { gc?: () => void }).gc;
const heap = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

const BATCHES = SHAPE === "steady" ? 500 : 200;
const decoded = (i: number) => decodeStackBatch(encodeBatch(makeBatch(i, SHAPE)));
// Steady: built from 50 templates (their stacks recur anyway); churn: every batch its own.
const templates = SHAPE === "steady" ? Array.from({ length: 50 }, (_, i) => decoded(i)) : [];
const batches = Array.from({ length: BATCHES }, (_, i) => {
  const t = templates[i % 50] ?? decoded(i);
  const end = windowEnd(i);
  return { ...t, window: { startUnixMs: end - 10_000, endUnixMs: end } };
});
const lastEnd = windowEnd(BATCHES - 1);

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
const hot = symbols[2502] ?? ""; // libc's hottest function, in every image
const mid = symbols[330] ?? ""; // a middling one of image 1's binary
const q = (name: string) => timeMs(() => index.query({ name, ...window }), 21);
const hotObs = index.query({ name: hot, ...window });

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const out = {
  shape: SHAPE,
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

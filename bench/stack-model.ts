// A model of what agents send, shared by the ingest and hot-index benches: 2,000 sample records per batch,
// 20 frames each (a shared root chain, then Zipf-picked functions: a few hot, a long tail) from 5,000 symbols
// in 20 BuildIDs of 250 functions; an image's stacks run through its own binary (60% of frames), a shared
// libc (25%) and one of nine libraries (15%); 50 pods of 10 images on 10 nodes; counts 1–3; samples in the
// agent's order (count descending, then attribution).
//   - "steady": each image's stacks drawn (Zipf) from its own pool of 2,000 distinct stacks (20,000 in all), so
//     they recur batch after batch, as in a long-running service;
//   - "churn": every record a stack never seen before, only its frames recur (measured on this machine with
//     `stella agent record --all` over JIT-heavy Node processes: 15% of the frames of a 10 s interval distinct,
//     86% seen in the previous interval, almost no stack seen twice) — the decoder's whole-stack cache misses.
import type { Frame, Sample, StackBatch } from "../proto/evidence.ts";

export const SAMPLES_PER_BATCH = 2000;
export const FRAMES = 20;
const SYMBOLS = 5000;
const PODS = 50;
const NODES = 10;
const IMAGES = 10;
const BUILD_IDS = 20;
const STACKS_PER_IMAGE = 2000;
export const T0 = 1_800_000_000_000;

let seed = 42;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
/** Zipf-ish index in [0, n): a few heavy hitters, a long tail. */
function zipf(n: number): number {
  return Math.min(n - 1, Math.floor(n ** rand()) - 1);
}

const buildIds = Array.from({ length: BUILD_IDS }, (_, i) => i.toString(16).padStart(2, "0").repeat(20));
export const symbols = Array.from({ length: SYMBOLS }, (_, i) => `_ZN5stella${i}process_requestEv_${i}`);
/** Symbol s lives in BuildID floor(s / 250), at one place. */
const frameOf = (s: number): Frame => ({
  kind: "KIND_NATIVE",
  buildId: buildIds[Math.floor(s / 250)] ?? "",
  fileOffset: 0x1000 + s * 64 + 16,
  symbol: symbols[s] ?? "",
  offset: 16,
});
/** A stack of image `image`: Zipf-picked functions of its binary (image), libc (10) or a library (11..19). */
function newStack(image: number): Frame[] {
  const frames: Frame[] = [];
  for (let i = 0; i < FRAMES - 2; i++) {
    const u = rand();
    const binary = u < 0.6 ? image : u < 0.85 ? 10 : 11 + (image % 9);
    frames.push(frameOf(binary * 250 + 2 + zipf(248)));
  }
  frames.push(frameOf(image * 250 + 1), frameOf(image * 250)); // main, _start
  return frames;
}
const stacks: Frame[][] = Array.from({ length: IMAGES * STACKS_PER_IMAGE }, (_, i) =>
  newStack(Math.floor(i / STACKS_PER_IMAGE)),
);
const pods = Array.from({ length: PODS }, (_, i) => ({
  image: i % IMAGES,
  attribution: {
    pod: `svc${i % IMAGES}-7d9f8c-${i.toString(36).padStart(5, "x")}`,
    namespace: `team-${i % 5}`,
    imageDigest: `sha256:${(i % IMAGES).toString(16).repeat(64)}`,
    container: (i * 7919).toString(16).padStart(64, "c"),
    containerName: "app",
  },
}));

export type Shape = "steady" | "churn";

/** Batch `i`: agent `i % 10`, windows of 10 s, so ten batches share a window end. */
export function makeBatch(i: number, shape: Shape): StackBatch {
  const node = `node-${i % NODES}`;
  const end = T0 + Math.floor(i / NODES) * 10_000;
  const samples: Sample[] = [];
  for (let j = 0; j < SAMPLES_PER_BATCH; j++) {
    const p = pods[Math.floor(rand() * PODS) % PODS] as (typeof pods)[number];
    samples.push({
      ...p.attribution,
      frames:
        shape === "steady" ? stacks[p.image * STACKS_PER_IMAGE + zipf(STACKS_PER_IMAGE)] : newStack(p.image),
      count: 1 + Math.floor(rand() * 3),
    });
  }
  // The agent's order: count descending, then attribution.
  samples.sort(
    (a, b) => Number(b.count) - Number(a.count) || (a.container ?? "").localeCompare(b.container ?? ""),
  );
  return {
    node,
    agentId: `${node}/0123456789ab`,
    seq: Math.floor(i / NODES) + 1,
    window: { startUnixMs: end - 10_000, endUnixMs: end },
    samples,
    binaries: [],
    hz: 99,
    droppedSamples: 0,
  };
}

/** Window end of batch i. */
export const windowEnd = (i: number): number => T0 + Math.floor(i / NODES) * 10_000;

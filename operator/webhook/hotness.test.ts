import assert from "node:assert/strict";
import { test } from "node:test";

import type { Frame__Output, Sample__Output, StackBatch__Output } from "../../proto/evidence.ts";
import { createHotSymbolIndex } from "../index/hot-symbols.ts";
import { indexHotness } from "./hotness.ts";

const T = 1_800_000_000_000; // a minute boundary
const MIN = 60_000;
const IMG_A = "sha256:" + "a".repeat(64);
const IMG_B = "sha256:" + "b".repeat(64);
const IMG_NONE = "sha256:" + "c".repeat(64);
const BID = "11".repeat(20);

function frame(symbol: string): Frame__Output {
  return { kind: "KIND_NATIVE", buildId: BID, fileOffset: 0x1000, symbol, offset: 4, unresolvedReason: "" };
}

function sample(image: string, frames: string[], count: number): Sample__Output {
  return {
    container: "c".repeat(64),
    pod: "web-1",
    namespace: "shop",
    imageDigest: image,
    containerName: "web",
    frames: frames.map(frame),
    count,
    frameIds: [],
  };
}

let seq = 0;
function batch(endMs: number, samples: Sample__Output[]): StackBatch__Output {
  return {
    node: "node-a",
    agentId: "node-a/0123456789ab",
    seq: ++seq,
    window: { startUnixMs: endMs - 10_000, endUnixMs: endMs },
    samples,
    binaries: [],
    hz: 99,
    droppedSamples: 0,
    frames: [],
  };
}

/** Image A, recent: 100 samples in 20 stacks of 5; 6 of the stacks (30 samples) run through parse_hdr. */
const recentA: Sample__Output[] = Array.from({ length: 20 }, (_, i) =>
  sample(IMG_A, i % 10 < 3 ? ["memcpy", "parse_hdr", "main"] : ["poll", `worker_${i}`, "main"], 5),
);
/** Image B, recent: parse_hdr in 1 of 4 samples; one recursive stack names it twice. */
const recentB: Sample__Output[] = [
  sample(IMG_B, ["parse_hdr", "parse_hdr", "main"], 10),
  sample(IMG_B, ["idle", "main"], 30),
];
/** Image A, ten minutes older: parse_hdr in every sample. */
const olderA: Sample__Output[] = [sample(IMG_A, ["parse_hdr", "main"], 400)];

/** The share the lookup should give, counted from the samples themselves (a stack counts once). */
function share(samples: Sample__Output[], image: string, symbol: string): number {
  const mine = samples.filter((s) => s.imageDigest === image);
  const total = mine.reduce((n, s) => n + s.count, 0);
  const through = mine
    .filter((s) => s.frames.some((f) => f.symbol === symbol))
    .reduce((n, s) => n + s.count, 0);
  return through / total;
}

function index(): ReturnType<typeof createHotSymbolIndex> {
  const ix = createHotSymbolIndex({ now: () => T + 20 * MIN });
  ix.fold(batch(T, olderA));
  ix.fold(batch(T + 10 * MIN + 5_000, [...recentA.slice(0, 10), ...recentB]));
  ix.fold(batch(T + 10 * MIN + 15_000, recentA.slice(10)));
  return ix;
}

const RECENT = { since: T + 10 * MIN, until: T + 11 * MIN };

test("the share of an image's samples that ran through the symbol", () => {
  const lookup = indexHotness(index(), RECENT.since, RECENT.until);
  const a = share(recentA, IMG_A, "parse_hdr");
  assert.equal(a, 0.3, "30 of 100 samples, as built");
  assert.equal(lookup(IMG_A, "parse_hdr"), a);
  assert.equal(lookup(IMG_A, "main"), 1);
  assert.equal(lookup(IMG_A, "worker_3"), share(recentA, IMG_A, "worker_3"));
  // Per image: B's share is over B's samples only.
  assert.equal(lookup(IMG_B, "parse_hdr"), share(recentB, IMG_B, "parse_hdr"));
  assert.equal(lookup(IMG_B, "parse_hdr"), 0.25);
});

test("a symbol that never ran in a sampled image is 0; an image without samples is unknown", () => {
  const lookup = indexHotness(index(), RECENT.since, RECENT.until);
  assert.equal(lookup(IMG_A, "never_called"), 0);
  assert.equal(lookup(IMG_B, "worker_3"), 0, "ran in A, not in B");
  assert.equal(lookup(IMG_NONE, "parse_hdr"), undefined);
  assert.equal(lookup(IMG_NONE, "main"), undefined);
});

test("the window bounds what counts: older samples are left out, and may be the only ones", () => {
  const ix = index();
  const wide = indexHotness(ix, T, RECENT.until);
  const all = [...olderA, ...recentA];
  assert.equal(wide(IMG_A, "parse_hdr"), share(all, IMG_A, "parse_hdr"));
  assert.equal(wide(IMG_A, "parse_hdr"), 430 / 500);
  assert.notEqual(wide(IMG_A, "parse_hdr"), indexHotness(ix, RECENT.since, RECENT.until)(IMG_A, "parse_hdr"));

  const old = indexHotness(ix, T, T + MIN);
  assert.equal(old(IMG_A, "parse_hdr"), 1);
  assert.equal(old(IMG_A, "worker_3"), 0);
  assert.equal(old(IMG_B, "parse_hdr"), undefined, "B has no samples that long ago");

  // until is exclusive: a window ending where the recent samples' minute starts sees only the old ones.
  assert.equal(indexHotness(ix, T, T + 10 * MIN)(IMG_A, "parse_hdr"), 1);
  assert.equal(indexHotness(ix, T + 12 * MIN, T + 20 * MIN)(IMG_A, "parse_hdr"), undefined);
});

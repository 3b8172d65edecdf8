import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { isStellaError } from "../../core/errors.ts";
import type { Frame__Output, Sample__Output, StackBatch__Output } from "../../proto/evidence.ts";
import { createHotSymbolIndex, MAX_TOP_STACKS, type HotSymbolIndexImpl } from "./hot-symbols.ts";

const T = 1_800_000_000_000; // a minute boundary
const MIN = 60_000;
const IMG_A = "sha256:" + "a".repeat(64);
const IMG_B = "sha256:" + "b".repeat(64);
const BID_1 = "11".repeat(20);
const BID_2 = "22".repeat(20);

function native(symbol: string, buildId = BID_1): Frame__Output {
  return { kind: "KIND_NATIVE", buildId, fileOffset: 0x1000, symbol, offset: 4, unresolvedReason: "" };
}

function sample(
  frames: (string | Frame__Output)[],
  count: number,
  opts: { pod?: string; ns?: string; image?: string } = {},
): Sample__Output {
  return {
    container: "c".repeat(64),
    pod: opts.pod ?? "web-1",
    namespace: opts.ns ?? "shop",
    imageDigest: opts.image ?? IMG_A,
    containerName: "web",
    frames: frames.map((f) => (typeof f === "string" ? native(f) : f)),
    count,
    frameIds: [],
  };
}

let seq = 0;
function batch(endMs: number, samples: Sample__Output[], node = "node-a"): StackBatch__Output {
  return {
    node,
    agentId: `${node}/0123456789ab`,
    seq: ++seq,
    window: { startUnixMs: endMs - 10_000, endUnixMs: endMs },
    samples,
    binaries: [],
    hz: 99,
    droppedSamples: 0,
    frames: [],
  };
}

function index(opts: Parameters<typeof createHotSymbolIndex>[0] = {}): HotSymbolIndexImpl {
  return createHotSymbolIndex({ now: () => T + 10 * MIN, ...opts });
}

const ALL = { sinceMs: 0, untilMs: Number.MAX_SAFE_INTEGER };

describe("HotSymbolIndex windows", () => {
  test("only buckets in [since, until) count; prune drops older buckets", () => {
    const ix = index();
    ix.fold(batch(T + 10_000, [sample(["f", "main"], 1)])); // bucket T
    ix.fold(batch(T + MIN + 59_999, [sample(["f", "main"], 10)])); // bucket T+1m
    ix.fold(batch(T + 2 * MIN, [sample(["f", "main"], 100)])); // bucket T+2m
    assert.equal(ix.query({ name: "f", ...ALL }).samples, 111);
    const mid = ix.query({ name: "f", sinceMs: T + MIN, untilMs: T + 2 * MIN });
    assert.equal(mid.samples, 10);
    assert.equal(mid.productSamples, 10);
    assert.equal(mid.firstSeenMs, T + MIN + 59_999);
    assert.equal(mid.lastSeenMs, T + MIN + 59_999);
    assert.equal(ix.query({ name: "f", sinceMs: T, untilMs: T + MIN }).samples, 1);
    assert.equal(ix.query({ name: "f", sinceMs: T + 3 * MIN, untilMs: T + 4 * MIN }).samples, 0);
    assert.equal(ix.query({ name: "f", sinceMs: T + 3 * MIN, untilMs: T + 4 * MIN }).firstSeenMs, undefined);
    assert.deepEqual(ix.productSamples(undefined, T, T + 2 * MIN), {
      samples: 11,
      lastSeenMs: T + MIN + 59_999,
    });
    assert.equal(ix.stats.buckets, 3);

    ix.prune(T + MIN);
    assert.equal(ix.stats.buckets, 2);
    assert.equal(ix.query({ name: "f", ...ALL }).samples, 110);
    assert.equal(ix.productSamples(undefined, 0, T + MIN).samples, 0);
    ix.prune(T + 3 * MIN);
    assert.equal(ix.stats.symbols, 0);
    assert.equal(ix.stats.buckets, 0);
    assert.equal(ix.query({ name: "f", ...ALL }).samples, 0);
    assert.equal(ix.stats.approxBytes, 0, "the byte estimate returns to zero with the data");
  });

  test("retention: samples older than now - retention are dropped, older buckets pruned on fold", () => {
    let now = T;
    const ix = createHotSymbolIndex({ now: () => now, retentionMs: 60 * MIN });
    ix.fold(batch(T, [sample(["f"], 3)]));
    ix.fold(batch(T - 61 * MIN, [sample(["f"], 5)]));
    assert.equal(ix.stats.expiredSamples, 5);
    assert.equal(ix.query({ name: "f", ...ALL }).samples, 3);
    now = T + 62 * MIN;
    ix.fold(batch(now, [sample(["g"], 1)]));
    assert.equal(ix.query({ name: "f", ...ALL }).samples, 0, "pruned by the retention");
    assert.equal(ix.stats.symbols, 1);
  });

  test("a batch without a window is refused before anything changes", () => {
    const ix = index();
    const b = { ...batch(T, [sample(["f"], 1)]), window: null };
    assert.throws(
      () => {
        ix.fold(b);
      },
      (e) => isStellaError(e, "INDEX_BAD_BATCH"),
    );
    assert.equal(ix.stats.foldedBatches, 0);
    assert.equal(ix.stats.symbols, 0);
  });
});

describe("HotSymbolIndex counting", () => {
  test("pods (namespace/name, host processes left out) and nodes", () => {
    const ix = index();
    ix.fold(
      batch(T, [sample(["f"], 2, { pod: "web-1" }), sample(["f"], 3, { pod: "web-2", ns: "ops" })], "n1"),
    );
    ix.fold(batch(T, [sample(["f"], 4, { pod: "", ns: "" }), sample(["g"], 9, { pod: "other" })], "n2"));
    const obs = ix.query({ name: "f", ...ALL });
    assert.equal(obs.samples, 9);
    assert.deepEqual(obs.pods, ["ops/web-2", "shop/web-1"]);
    assert.deepEqual(obs.nodes, ["n1", "n2"]);
    assert.equal(obs.productSamples, 18);
  });

  test("equal names in two BuildIDs are two keys, whichever stack comes first", () => {
    for (const order of [
      [BID_1, BID_2],
      [BID_2, BID_1],
    ]) {
      const ix = index();
      ix.fold(batch(T, [sample([native("parse", order[0]), "main"], 2)]));
      ix.fold(batch(T, [sample([native("parse", order[1]), "main"], 5)]));
      assert.equal(ix.query({ name: "parse", buildIds: [order[0]!], ...ALL }).samples, 2);
      assert.equal(ix.query({ name: "parse", buildIds: [order[1]!], ...ALL }).samples, 5);
      assert.deepEqual(ix.query({ name: "parse", ...ALL }).topStacks, [{ stack: "parse;main", count: 7 }]);
    }
  });

  test("a recursive symbol counts once per stack", () => {
    const ix = index();
    ix.fold(batch(T, [sample(["fib", "fib", "fib", "main", "fib"], 5), sample(["fib", "main"], 1)]));
    const obs = ix.query({ name: "fib", ...ALL });
    assert.equal(obs.samples, 6);
    assert.deepEqual(obs.topStacks, [
      { stack: "fib;fib;fib;main;fib", count: 5 },
      { stack: "fib;main", count: 1 },
    ]);
    assert.equal(ix.buildId(BID_1)?.samples, 6, "a BuildID counts once per stack too");
  });

  test("imageDigest filter; productSamples is the image's CPU-share base", () => {
    const ix = index();
    ix.fold(
      batch(T, [
        sample(["f", "main"], 10, { image: IMG_A }),
        sample(["main"], 30, { image: IMG_A }),
        sample(["f", "main"], 7, { image: IMG_B }),
        sample(["idle"], 50, { image: IMG_B }),
      ]),
    );
    const a = ix.query({ name: "f", imageDigest: IMG_A, ...ALL });
    assert.equal(a.samples, 10);
    assert.equal(a.productSamples, 40);
    const b = ix.query({ name: "f", imageDigest: IMG_B, ...ALL });
    assert.equal(b.samples, 7);
    assert.equal(b.productSamples, 57);
    const any = ix.query({ name: "f", ...ALL });
    assert.equal(any.samples, 17);
    assert.equal(any.productSamples, 97);
    assert.equal(ix.query({ name: "f", imageDigest: "sha256:" + "c".repeat(64), ...ALL }).samples, 0);
    assert.deepEqual(ix.productSamples(IMG_A, T, T + MIN), { samples: 40, lastSeenMs: T });
  });

  test("buildIds filter and per-BuildID observations", () => {
    const ix = index();
    ix.fold(batch(T, [sample([native("f", BID_1), native("main", BID_2)], 3, { pod: "a" })], "n1"));
    ix.fold(batch(T + MIN, [sample([native("f", BID_2)], 4, { pod: "b" })], "n2"));
    assert.deepEqual(ix.query({ name: "f", ...ALL }).buildIds, [BID_1, BID_2]);
    assert.equal(ix.query({ name: "f", buildIds: [BID_2], ...ALL }).samples, 4);
    assert.equal(ix.query({ name: "f", buildIds: [], ...ALL }).samples, 7);
    assert.deepEqual(ix.buildId(BID_2), {
      buildId: BID_2,
      samples: 7,
      lastSeenMs: T + MIN,
      pods: ["shop/a", "shop/b"],
      nodes: ["n1", "n2"],
    });
    assert.equal(ix.buildId("33".repeat(20)), undefined);
    ix.prune(T + MIN);
    assert.equal(ix.buildId(BID_1), undefined, "last seen before the cut");
    assert.equal(ix.buildId(BID_2)?.samples, 7);
  });

  test("jit, kernel and unresolved frames", () => {
    const ix = index();
    const jit: Frame__Output = {
      kind: "KIND_JIT",
      buildId: "",
      fileOffset: 0,
      symbol: "LazyCompile:foo",
      unresolvedReason: "",
    };
    const kernel: Frame__Output = {
      kind: "KIND_KERNEL",
      buildId: "",
      fileOffset: 0,
      symbol: "do_syscall_64",
      unresolvedReason: "",
    };
    const gone: Frame__Output = {
      kind: "KIND_UNRESOLVED",
      buildId: "",
      fileOffset: 0,
      unresolvedReason: "process gone",
    };
    ix.fold(batch(T, [sample([kernel, jit, gone, "main"], 2)]));
    const obs = ix.query({ name: "LazyCompile:foo", ...ALL });
    assert.equal(obs.samples, 2);
    assert.deepEqual(obs.buildIds, []);
    assert.deepEqual(obs.topStacks, [{ stack: "do_syscall_64;LazyCompile:foo;[unknown];main", count: 2 }]);
    assert.equal(ix.query({ name: "do_syscall_64", ...ALL }).samples, 2);
    assert.equal(ix.query({ name: "[unknown]", ...ALL }).samples, 0, "unresolved frames are not symbols");
  });
});

describe("HotSymbolIndex top stacks", () => {
  test("merged across buckets, heaviest first, at most 16", () => {
    const ix = index();
    // 20 stacks through f in two buckets; stack i has weight i in each, stack 0 only in the second.
    for (const [bucket, from] of [
      [T, 1],
      [T + MIN, 0],
    ] as const) {
      ix.fold(
        batch(
          bucket,
          Array.from({ length: 20 - from }, (_, j) => sample(["f", `caller${j + from}`], j + from + 1)),
        ),
      );
    }
    const obs = ix.query({ name: "f", ...ALL });
    assert.equal(obs.topStacks.length, MAX_TOP_STACKS);
    assert.deepEqual(obs.topStacks[0], { stack: "f;caller19", count: 40 });
    assert.deepEqual(obs.topStacks[15], { stack: "f;caller4", count: 10 });
    for (let i = 1; i < obs.topStacks.length; i++) {
      assert.ok(obs.topStacks[i - 1]!.count >= obs.topStacks[i]!.count, "sorted heaviest first");
    }
    const one = ix.query({ name: "f", sinceMs: T + MIN, untilMs: T + 2 * MIN });
    assert.deepEqual(one.topStacks[0], { stack: "f;caller19", count: 20 });
  });

  test("every stack through a symbol is kept (no per-symbol cap): top stacks are exact", () => {
    const ix = index();
    ix.fold(
      batch(
        T,
        Array.from({ length: 300 }, (_, j) => sample(["f", `c${j}`], 1 + (j % 17))),
      ),
    );
    ix.fold(batch(T, [sample(["f", "c5"], 100)]));
    const obs = ix.query({ name: "f", ...ALL });
    assert.deepEqual(obs.topStacks[0], { stack: "f;c5", count: 106 });
    assert.deepEqual(
      obs.topStacks[1],
      { stack: "f;c101", count: 17 },
      "ties: the smaller stack string first",
    );
    assert.equal(obs.topStacks.length, MAX_TOP_STACKS);
  });
});

describe("HotSymbolIndex memory bound", () => {
  test("maxStacksPerBucket: later stacks count for their symbols (samples, pods, nodes), not in top stacks", () => {
    const ix = index({ maxStacksPerBucket: 3 });
    ix.fold(batch(T, [sample(["f", "a"], 5), sample(["f", "b"], 4), sample(["f", "c"], 3)], "n1"));
    ix.fold(batch(T, [sample(["f", "d"], 50, { pod: "late" }), sample(["f", "a"], 1)], "n2"));
    const obs = ix.query({ name: "f", ...ALL });
    assert.equal(obs.samples, 63, "every sample counts");
    assert.deepEqual(obs.pods, ["shop/late", "shop/web-1"]);
    assert.deepEqual(obs.nodes, ["n1", "n2"]);
    assert.deepEqual(
      obs.topStacks.map((s) => s.stack),
      ["f;a", "f;b", "f;c"],
      "the overflow stack is not listed",
    );
    assert.equal(ix.query({ name: "d", ...ALL }).samples, 50, "its own symbols are indexed too");
    assert.equal(ix.stats.overflowSamples, 50);
    assert.equal(ix.query({ name: "f", sinceMs: T + MIN, untilMs: T + 2 * MIN }).samples, 0);
    ix.fold(batch(T + MIN, [sample(["f", "d"], 2)]));
    assert.deepEqual(
      ix.query({ name: "f", sinceMs: T + MIN, untilMs: T + 2 * MIN }).topStacks,
      [{ stack: "f;d", count: 2 }],
      "the cap is per bucket",
    );
  });

  test("maxBytes: the oldest buckets go first, never the one being folded", () => {
    const ix = index({ maxBytes: 150_000 });
    for (let m = 0; m < 10; m++) {
      ix.fold(
        batch(
          T + m * MIN,
          Array.from({ length: 40 }, (_, j) => sample([`sym${m}_${j}`, "main"], 1)),
        ),
      );
      assert.ok(ix.stats.approxBytes <= 150_000, `${ix.stats.approxBytes}`);
    }
    assert.ok(ix.stats.evictedBuckets > 0);
    assert.ok(ix.stats.buckets < 10);
    assert.equal(ix.query({ name: "sym9_39", ...ALL }).samples, 1, "the newest bucket is kept");
    assert.equal(ix.query({ name: "sym0_0", ...ALL }).samples, 0, "the oldest is gone");
    assert.equal(ix.query({ name: "main", ...ALL }).samples, 40 * ix.stats.buckets);
    assert.equal(ix.stats.unindexedSamples, 0);
  });

  test("maxBytes with a single bucket over the budget: known symbols still count, new ones are not indexed", () => {
    const ix = index({ maxBytes: 20_000 });
    ix.fold(
      batch(
        T,
        Array.from({ length: 30 }, (_, j) => sample([`s${j}`, "main"], 1)),
      ),
    );
    assert.ok(ix.stats.approxBytes > 20_000, "one batch may overshoot");
    const bytes = ix.stats.approxBytes;
    ix.fold(batch(T, [sample(["s1", "main"], 7), sample(["brand-new", "main"], 3)]));
    assert.equal(ix.query({ name: "s1", ...ALL }).samples, 8);
    assert.equal(ix.query({ name: "main", ...ALL }).samples, 40, "a known symbol of a new stack counts");
    assert.equal(ix.query({ name: "brand-new", ...ALL }).samples, 0);
    assert.equal(ix.stats.unindexedSamples, 3);
    assert.equal(ix.stats.overflowSamples, 3);
    assert.ok(
      ix.stats.approxBytes < bytes + 1000,
      "no entry, key or cell made, only overflow pod/node counts",
    );
    assert.equal(ix.stats.symbols, 31);
  });

  test("approxBytes grows with the data and clear() forgets everything", () => {
    const ix = index();
    const before = ix.stats.approxBytes;
    ix.fold(
      batch(
        T,
        Array.from({ length: 100 }, (_, j) => sample([`s${j}`, "main"], 1, { pod: `p${j % 7}` })),
      ),
    );
    assert.ok(ix.stats.approxBytes > before + 100 * 500, `${ix.stats.approxBytes}`);
    ix.clear();
    assert.deepEqual(
      { ...ix.stats },
      {
        symbols: 0,
        buckets: 0,
        approxBytes: 0,
        foldedBatches: 0,
        foldedSamples: 0,
        evictedBuckets: 0,
        overflowSamples: 0,
        unindexedSamples: 0,
        expiredSamples: 0,
        namedFrames: 0,
        unnamedFrames: 0,
      },
    );
    assert.equal(ix.query({ name: "main", ...ALL }).samples, 0);
  });

  test("shared frozen frames (the decoder's) are resolved once and give the same answers", () => {
    const shared = Object.freeze(
      [native("leaf"), native("mid"), native("main")].map((f) => Object.freeze(f)),
    );
    const plain = index();
    const cached = index();
    for (let b = 0; b < 3; b++) {
      const samples = (frames: Frame__Output[] | readonly Frame__Output[]) => [
        { ...sample([], 2 + b, { pod: `p${b}` }), frames: frames as Frame__Output[] },
        { ...sample([], 1, { image: IMG_B }), frames: frames as Frame__Output[] },
      ];
      plain.fold(batch(T + b * 20_000, samples(shared.map((f) => ({ ...f })))));
      cached.fold(batch(T + b * 20_000, samples(shared)));
    }
    const q = { name: "mid", ...ALL };
    assert.deepEqual(cached.query(q), plain.query(q));
    assert.equal(cached.query(q).samples, 12);
    assert.equal(cached.query({ ...q, imageDigest: IMG_B }).samples, 3);
    assert.deepEqual(cached.stats, plain.stats);
  });
});

describe("HotSymbolIndex determinism", () => {
  test("the same batches in another order give deep-equal answers", () => {
    const batches: StackBatch__Output[] = [];
    let x = 12345;
    const rand = (n: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % n;
    };
    for (let i = 0; i < 40; i++) {
      const samples = Array.from({ length: 30 }, () =>
        sample(
          Array.from({ length: 1 + rand(6) }, () => native(`fn${rand(25)}`, rand(2) === 0 ? BID_1 : BID_2)),
          1 + rand(9),
          { pod: `p${rand(5)}`, image: rand(3) === 0 ? IMG_B : IMG_A },
        ),
      );
      batches.push(batch(T + rand(5) * MIN + rand(MIN), samples, `n${rand(4)}`));
    }
    const answers = (order: StackBatch__Output[]) => {
      const ix = index();
      for (const b of order) ix.fold(b);
      return {
        queries: Array.from({ length: 25 }, (_, i) => [
          ix.query({ name: `fn${i}`, ...ALL }),
          ix.query({ name: `fn${i}`, imageDigest: IMG_B, sinceMs: T + MIN, untilMs: T + 3 * MIN }),
          ix.query({ name: `fn${i}`, buildIds: [BID_2], ...ALL }),
        ]),
        product: ix.productSamples(IMG_A, T, T + 4 * MIN),
        bids: [ix.buildId(BID_1), ix.buildId(BID_2)],
        symbols: ix.stats.symbols,
        approxBytes: ix.stats.approxBytes,
      };
    };
    const forward = answers(batches);
    const reversed = answers([...batches].reverse());
    const shuffled = answers([...batches].sort((a, b) => ((a.seq * 7919) % 41) - ((b.seq * 7919) % 41)));
    assert.ok(forward.queries.some(([q]) => q!.samples > 0 && q!.topStacks.length > 1));
    assert.deepEqual(reversed, forward);
    assert.deepEqual(shuffled, forward);
  });
});

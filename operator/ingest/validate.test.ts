import assert from "node:assert/strict";
import { test } from "node:test";
import type { StackBatch__Output } from "../../proto/evidence.ts";
import { decodeBatch, encodeBatch } from "./wal.ts";
import { validateBatch } from "./validate.ts";
import { decodedBatch } from "../../proto/testing/batches.ts";

/** A batch as the server decodes it (defaults filled), mutated by `edit`. */
function batch(edit: (b: StackBatch__Output) => void = () => undefined): StackBatch__Output {
  const b = decodeBatch(encodeBatch(decodedBatch(3)));
  // The decoder shares frozen frames between samples with equal bytes: edit unshared copies.
  for (const s of b.samples) s.frames = s.frames.map((f) => ({ ...f }));
  edit(b);
  return b;
}

test("a well-formed batch passes", () => {
  assert.equal(validateBatch(batch()), undefined);
});

test("frames the decoder found invalid are not cached as valid: the batch is refused every time", () => {
  const bad = decodedBatch(3);
  bad.samples[1]!.frames[0]!.buildId = "XYZ";
  const bytes = encodeBatch(bad);
  for (let i = 0; i < 2; i++) {
    assert.match(
      validateBatch(decodeBatch(bytes)) ?? "",
      /^samples\[1\]\.frames\[0\]\.buildId: not lower-case hex/,
    );
  }
  const good = decodeBatch(encodeBatch(decodedBatch(3)));
  assert.ok(Object.isFrozen(good.samples[0]!.frames), "valid frames are shared, frozen");
  assert.equal(validateBatch(good), undefined);
});

const cases: [string, (b: StackBatch__Output) => void, RegExp][] = [
  ["empty agentId", (b) => (b.agentId = ""), /^agentId: empty/],
  ["long node", (b) => (b.node = "n".repeat(254)), /^node: 254 chars, limit 253$/],
  ["seq 0", (b) => (b.seq = 0), /^seq: 0, limit ≥ 1$/],
  ["missing window", (b) => (b.window = null), /^window: missing/],
  [
    "window end before start",
    (b) => {
      b.window = { startUnixMs: 10, endUnixMs: 5 };
    },
    /^window\.endUnixMs: 5 before startUnixMs 10/,
  ],
  [
    "too many samples",
    (b) => {
      const s = b.samples[0]!;
      b.samples = Array.from({ length: 50_001 }, () => s);
    },
    /^samples: 50001 samples, limit 50000$/,
  ],
  [
    "too many frames",
    (b) => {
      const f = b.samples[1]!.frames[0]!;
      b.samples[1]!.frames = Array.from({ length: 300 }, () => f);
    },
    /^samples\[1\]\.frames: 300 frames, limit 256$/,
  ],
  [
    "long symbol",
    (b) => (b.samples[0]!.frames[2]!.symbol = "s".repeat(4097)),
    /^samples\[0\]\.frames\[2\]\.symbol: 4097 chars, limit 4096$/,
  ],
  [
    "non-hex build id",
    (b) => (b.samples[0]!.frames[0]!.buildId = "XYZ"),
    /^samples\[0\]\.frames\[0\]\.buildId: not lower-case hex/,
  ],
  [
    "long build id",
    (b) => (b.binaries[0]!.buildId = "a".repeat(130)),
    /^binaries\[0\]\.buildId: 130 chars, limit 128$/,
  ],
  ["count 0", (b) => (b.samples[1]!.count = 0), /^samples\[1\]\.count: 0, limit ≥ 1$/],
  [
    "total count",
    (b) => {
      b.samples[0]!.count = 6e8;
      b.samples[1]!.count = 6e8;
    },
    /^samples\[\]\.count: total 1200000000, limit 1000000000$/,
  ],
  ["long namespace", (b) => (b.samples[0]!.namespace = "n".repeat(64)), /^samples\[0\]\.namespace: 64 chars/],
  ["long pod", (b) => (b.samples[0]!.pod = "p".repeat(254)), /^samples\[0\]\.pod: 254 chars, limit 253$/],
  ["long container", (b) => (b.samples[0]!.container = "c".repeat(129)), /^samples\[0\]\.container: 129/],
  [
    "too many binaries",
    (b) => {
      const x = b.binaries[0]!;
      b.binaries = Array.from({ length: 10_001 }, () => x);
    },
    /^binaries: 10001 binaries, limit 10000$/,
  ],
];

for (const [name, edit, want] of cases) {
  test(`rejects ${name}`, () => {
    const reason = validateBatch(batch(edit));
    assert.ok(reason !== undefined, "expected a rejection");
    assert.match(reason, want);
  });
}

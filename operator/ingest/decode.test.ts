import assert from "node:assert/strict";
import { test } from "node:test";
import { ingestService } from "../../proto/evidence.ts";
import type { StackBatch } from "../../proto/evidence.ts";
import { decodeStackBatch } from "./decode.ts";
import { validateBatch } from "./validate.ts";
import { expandFrameTable, tabulate } from "../../proto/frame-table.ts";
import { encodeBatch } from "./wal.ts";
import { binary, decodedBatch, sample } from "../../proto/testing/batches.ts";

const reference = ingestService.StreamStacks.requestDeserialize;

function same(b: StackBatch): void {
  const bytes = encodeBatch(b);
  assert.deepEqual(decodeStackBatch(bytes), reference(bytes));
}

test("matches proto-loader on a full batch", () => {
  same(decodedBatch(42));
});

test("matches proto-loader on defaults, absent optionals, unresolved frames and big numbers", () => {
  same({});
  same({ seq: 1 });
  same({
    node: "n",
    agentId: "a",
    seq: 2 ** 40 + 3,
    window: { startUnixMs: 0, endUnixMs: 1_700_000_000_123 },
    hz: 4_000_000_000,
    droppedSamples: 2 ** 52,
    samples: [
      {
        container: "host",
        frames: [
          { kind: "KIND_UNRESOLVED", unresolvedReason: "gone" },
          { kind: "KIND_JIT", symbol: "", offset: 0 },
          { kind: "KIND_KERNEL", buildId: "ab", fileOffset: 2 ** 33, symbol: "ü€😀", offset: 5 },
        ],
        count: 3,
      },
    ],
    binaries: [binary(1), { buildId: "", path: "", sections: [{}] }],
  });
  const many = {
    ...decodedBatch(3),
    samples: Array.from({ length: 300 }, (_, i) => sample(i, 1 + (i % 5), 20)),
  };
  same(many);
});

test("skips unknown fields and rejects truncated input", () => {
  const bytes = encodeBatch(decodedBatch(5));
  // Field 15, varint 1; field 14, length-delimited "xy": unknown, skipped (as protobufjs does).
  const withUnknown = Buffer.concat([bytes, Buffer.from([0x78, 0x01, 0x72, 0x02, 0x78, 0x79])]);
  assert.deepEqual(decodeStackBatch(withUnknown), reference(bytes));
  assert.throws(() => decodeStackBatch(bytes.subarray(0, bytes.length - 3)), { code: "PROTO_DECODE" });
});

test("samples with equal stack bytes share one frozen frames array, across batches; equal to proto-loader", () => {
  const b = decodedBatch(7);
  const twin = { ...b.samples[0]!, pod: "other-pod", count: 9 };
  const bytes = encodeBatch({ ...b, samples: [...b.samples, twin] });
  const one = decodeStackBatch(bytes);
  const two = decodeStackBatch(bytes);
  const last = one.samples.at(-1)!;
  assert.equal(last.frames, one.samples[0]!.frames, "shared within a batch");
  assert.equal(two.samples[0]!.frames, one.samples[0]!.frames, "and across batches");
  assert.ok(Object.isFrozen(last.frames) && Object.isFrozen(last.frames[0]));
  assert.equal(last.pod, "other-pod");
  assert.equal(two.samples[1]!.container, one.samples[1]!.container);
  assert.deepEqual(two, reference(bytes));
});

test("frames split by another field (no encoder does it, the format allows it) are all kept, in order", () => {
  const s = sample(3, 2, 4);
  const head = encodeBatch({ samples: [{ ...s, frames: s.frames!.slice(0, 2), count: 2 }] });
  const tail = encodeBatch({ samples: [{ frames: s.frames!.slice(2) }] });
  // Both are one-sample batches: field 5 (tag 0x2a), length, sample bytes. Join the two sample bodies.
  const body = (b: Buffer): Buffer => b.subarray(1 + (b[1]! & 0x80 ? 2 : 1));
  const joined = Buffer.concat([body(head), body(tail)]);
  const len = joined.length;
  const bytes = Buffer.concat([Buffer.from([0x2a, (len & 0x7f) | 0x80, len >> 7]), joined]);
  const decoded = decodeStackBatch(bytes);
  assert.deepEqual(decoded, reference(bytes));
  assert.equal(decoded.samples[0]!.frames.length, 4);
  assert.equal(decoded.samples[0]!.count, 2);
});

test("a frame table batch decodes to the same batch as its inline form, stacks shared", () => {
  const b = decodedBatch(11);
  const samples = [...b.samples, { ...b.samples[0]!, pod: "twin", count: 4 }];
  const inline = encodeBatch({ ...b, samples });
  const t = tabulate(samples);
  assert.ok(t.frames.length < samples.reduce((n, s) => n + (s.frames?.length ?? 0), 0), "frames shared");
  const tabled = encodeBatch({ ...b, samples: t.samples, frames: t.frames });
  assert.ok(tabled.length < inline.length);
  const decoded = decodeStackBatch(tabled);
  assert.deepEqual(decoded, decodeStackBatch(inline));
  assert.deepEqual(decoded, expandFrameTable(reference(tabled)));
  assert.equal(decoded.samples[0]!.frames, decoded.samples.at(-1)!.frames, "one frozen array per stack");
  assert.equal(validateBatch(decoded), undefined);
});

test("frame table: an index outside the table, or both forms in one sample, is refused with the field", () => {
  const b = decodedBatch(12);
  const t = tabulate(b.samples);
  const outside = t.samples.map((s, i) => (i === 1 ? { ...s, frameIds: [0, t.frames.length + 5] } : s));
  const out = decodeStackBatch(encodeBatch({ ...b, samples: outside, frames: t.frames }));
  assert.equal(
    validateBatch(out),
    `samples[1].frameIds[1]: ${t.frames.length + 5}, limit < ${t.frames.length} (frames in the table)`,
  );
  const both = t.samples.map((s, i) => (i === 0 ? { ...s, frames: b.samples[0]!.frames } : s));
  const twice = decodeStackBatch(encodeBatch({ ...b, samples: both, frames: t.frames }));
  assert.equal(validateBatch(twice), "samples[0]: both frames and frameIds, limit one of them");
});

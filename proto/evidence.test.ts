// proto/evidence.ts: the size helpers agree byte for byte with what grpc-js puts on the wire, and the loader
// options give the shapes the generated types promise.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodedBinarySize,
  encodedSampleSize,
  encodedSize,
  ingestService,
  repeatedFieldSize,
  varintSize,
} from "./evidence.ts";
import type { StackBatch } from "./evidence.ts";

const batch: StackBatch = {
  node: "node-a",
  agentId: "node-a/0123456789ab",
  seq: 300,
  window: { startUnixMs: 1_700_000_000_000, endUnixMs: 1_700_000_010_000 },
  samples: [
    {
      container: "host",
      count: 7,
      frames: [
        { kind: "KIND_NATIVE", buildId: "ab".repeat(20), fileOffset: 0x1234, symbol: "main", offset: 0 },
        { kind: "KIND_UNRESOLVED", unresolvedReason: "process gone" },
      ],
    },
    {
      container: "c".repeat(64),
      pod: "p",
      namespace: "ns",
      count: 1,
      frames: [{ kind: "KIND_JIT", symbol: "x" }],
    },
  ],
  binaries: [
    { buildId: "ab".repeat(20), path: "/bin/app", sections: [{ name: ".text", fileOffset: 1, size: 2 }] },
  ],
  hz: 99,
  droppedSamples: 3,
};

test("encodedSize equals the length of grpc-js's own serialization", () => {
  const wire = ingestService.StreamStacks.requestSerialize(batch);
  assert.equal(encodedSize(batch), wire.length);
});

test("a batch's size is its header plus repeatedFieldSize of each sample and binary", () => {
  const header = encodedSize({ ...batch, samples: [], binaries: [] });
  const parts =
    batch.samples!.reduce((s, x) => s + repeatedFieldSize(encodedSampleSize(x)), 0) +
    batch.binaries!.reduce((s, x) => s + repeatedFieldSize(encodedBinarySize(x)), 0);
  assert.equal(encodedSize(batch), header + parts);
});

test("varintSize matches protobuf's base-128 lengths", () => {
  assert.deepEqual(
    [0, 127, 128, 16_383, 16_384, 2 ** 32, Number.MAX_SAFE_INTEGER].map(varintSize),
    [1, 1, 2, 2, 3, 5, 8],
  );
});

test("decoding: camelCase, uint64 as numbers, enums as names, defaults, optional presence", () => {
  const decoded = ingestService.StreamStacks.requestDeserialize(
    ingestService.StreamStacks.requestSerialize(batch),
  );
  assert.equal(decoded.seq, 300);
  assert.equal(decoded.window?.startUnixMs, 1_700_000_000_000);
  const [native, unresolved] = decoded.samples[0]!.frames;
  assert.equal(native!.kind, "KIND_NATIVE");
  assert.equal(native!.fileOffset, 0x1234);
  assert.equal(native!.symbol, "main");
  assert.equal(native!.offset, 0);
  assert.equal(native!._offset, "offset", "offset 0 is present, not a default");
  assert.equal(unresolved!.symbol, undefined);
  assert.equal(unresolved!.buildId, "");
  assert.equal(unresolved!.fileOffset, 0);
  assert.deepEqual(decoded.samples[1]!.frames[0]!.kind, "KIND_JIT");
  assert.equal(decoded.binaries[0]!.sections[0]!.address, 0);
});

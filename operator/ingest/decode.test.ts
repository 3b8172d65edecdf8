import assert from "node:assert/strict";
import { test } from "node:test";
import { ingestService } from "../../proto/evidence.ts";
import type { StackBatch } from "../../proto/evidence.ts";
import { decodeStackBatch } from "./decode.ts";
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

// Wire test builders (samples, binaries, bodies, decoded batches) shared by the shipper and ingest tests and benches.
import type { Binary, Sample, StackBatch, StackBatch__Output } from "../evidence.ts";
import type { ShipBody } from "../../agent/ship/shipper.ts";

export function sample(i: number, count: number, frames = 3): Sample {
  return {
    container: "c".repeat(64),
    pod: `pod-${i % 7}`,
    namespace: "default",
    imageDigest: "sha256:" + "ab".repeat(32),
    containerName: "app",
    frames: Array.from({ length: frames }, (_, f) => ({
      kind: "KIND_NATIVE" as const,
      buildId: ((i + f) % 50).toString(16).padStart(40, "0"),
      fileOffset: 0x1000 + i * 16 + f,
      symbol: `fn_${i % 997}_${f}`,
      offset: f,
    })),
    count,
  };
}

export function binary(i: number): Binary {
  return {
    buildId: i.toString(16).padStart(40, "0"),
    path: `/usr/lib/lib${i}.so`,
    sections: [{ name: ".text", fileOffset: 4096, size: 65536, address: 4096 }],
  };
}

export function body(samples: Sample[], binaries: Binary[] = [], endMs = 1_700_000_010_000): ShipBody {
  return {
    window: { startUnixMs: endMs - 10_000, endUnixMs: endMs },
    samples,
    binaries,
    hz: 99,
    droppedSamples: 0,
  };
}

/** A fully populated decoded batch (as the server sees it), valid. */
export function decodedBatch(
  seq: number,
  agentId = "node-a/abc",
  endMs = 1_700_000_010_000,
): StackBatch__Output {
  const b: StackBatch = {
    node: "node-a",
    agentId,
    seq,
    window: { startUnixMs: endMs - 10_000, endUnixMs: endMs },
    samples: [sample(seq, 1 + (seq % 5)), sample(seq + 1, 2)],
    binaries: [binary(seq)],
    hz: 99,
    droppedSamples: 0,
  };
  return b as unknown as StackBatch__Output;
}

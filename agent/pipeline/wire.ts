// The agent's view of the wire messages (proto/stella/evidence/v1/evidence.proto), in the shape
// @grpc/proto-loader takes them: camelCase fields, uint64 as numbers, enums as their names.
// File offsets and millisecond timestamps stay far below 2^53, so numbers are exact.

export type FrameKind = "KIND_NATIVE" | "KIND_JIT" | "KIND_KERNEL" | "KIND_UNRESOLVED";

export interface WireFrame {
  kind: FrameKind;
  /** Lower-case hex GNU build id; "" when the file has none (and for non-native frames). */
  buildId: string;
  fileOffset: number;
  symbol?: string;
  offset?: number;
  unresolvedReason: string;
}

export interface WireSample {
  container: string;
  pod: string;
  namespace: string;
  imageDigest: string;
  containerName: string;
  /** Leaf first. */
  frames: WireFrame[];
  count: number;
}

export interface WireSection {
  name: string;
  fileOffset: number;
  size: number;
  address: number;
}

export interface WireBinary {
  buildId: string;
  path: string;
  sections: WireSection[];
}

export interface WireWindow {
  startUnixMs: number;
  endUnixMs: number;
}

/** One interval's worth of stacks, before the shipper gives it a seq and splits it to the message limit. */
export interface BatchBody {
  window: WireWindow;
  samples: WireSample[];
  binaries: WireBinary[];
  hz: number;
  droppedSamples: number;
}

// Splits one interval's body into StackBatch pieces that each encode to at most maxMessageBytes, so no
// message trips the operator's gRPC max receive message length (4 MiB by default in gRPC).
//
// Protobuf encodes a message as the concatenation of its fields, so a batch's size is exactly the size of its
// scalar fields plus, for every element of a repeated message field, tag + length varint + element
// (repeatedFieldSize). That lets us measure each sample and binary once and pack greedily, instead of
// re-encoding growing batches.
import type { Binary, Long, Sample, StackBatch, Window } from "../../proto/evidence.ts";
import {
  encodedBinarySize,
  encodedSampleSize,
  encodedSize,
  repeatedFieldSize,
} from "../../proto/evidence.ts";

/** One interval's stacks as the pipeline hands them over, before the shipper gives them seqs. */
export interface ShipBody {
  window: Window;
  samples: Sample[];
  binaries: Binary[];
  /** Sampling frequency per CPU, Hz. */
  hz: number;
  /** Samples dropped before sending (could not be attributed or resolved). */
  droppedSamples: number;
}

/** A piece of a body: becomes one StackBatch once it has a seq. */
export interface Piece {
  samples: Sample[];
  binaries: Binary[];
  /** The body's droppedSamples plus those dropped here for being too large, on the first piece only. */
  droppedSamples: number;
  /** Sum of `count` over `samples`. */
  sampleCount: number;
  /** An upper bound of the piece's encoded size when already known (saves encoding it again). */
  sizeBound?: number;
}

export interface SplitResult {
  pieces: Piece[];
  /** Samples that alone encode larger than the limit: dropped (`oversizeSampleCount` is the sum of their counts). */
  oversizeSamples: number;
  oversizeSampleCount: number;
  /** Binaries that alone encode larger than the limit: dropped. */
  oversizeBinaries: number;
}

/** A proto-loader uint64 input (number, decimal string or Long) as a number. */
export function uint64ToNumber(value: number | string | Long | undefined): number {
  if (value === undefined) return 0;
  if (typeof value === "number") return value;
  if (typeof value === "string") return Number(value);
  return value.toNumber();
}

export function sampleCountOf(samples: readonly Sample[]): number {
  let sum = 0;
  for (const s of samples) sum += uint64ToNumber(s.count);
  return sum;
}

/**
 * The size of a batch's fields other than samples and binaries, as an upper bound: seq and droppedSamples are
 * measured at 2^53 − 1 (an 8-byte varint), the largest value they can take as numbers.
 */
function headerBound(node: string, agentId: string, body: ShipBody): number {
  return encodedSize({
    node,
    agentId,
    seq: Number.MAX_SAFE_INTEGER,
    window: body.window,
    hz: body.hz,
    droppedSamples: Number.MAX_SAFE_INTEGER,
  });
}

/**
 * Splits `body` into pieces that each encode (with any seq) to at most `maxMessageBytes`. Binaries come first,
 * so they travel with the first piece (the proto requires a binary to arrive no later than the first sample
 * referring to it); then samples in their order. An empty body still yields one piece: it carries the window
 * and droppedSamples. A single sample or binary larger than the limit is dropped and counted.
 */
export function splitBody(
  node: string,
  agentId: string,
  body: ShipBody,
  maxMessageBytes: number,
): SplitResult {
  const result: SplitResult = { pieces: [], oversizeSamples: 0, oversizeSampleCount: 0, oversizeBinaries: 0 };
  const header = headerBound(node, agentId, body);
  const whole: StackBatch = {
    node,
    agentId,
    seq: Number.MAX_SAFE_INTEGER,
    window: body.window,
    samples: body.samples,
    binaries: body.binaries,
    hz: body.hz,
    droppedSamples: Number.MAX_SAFE_INTEGER,
  };
  // Fast path: the whole body fits (the common case). Its size with the largest seq and droppedSamples is
  // an upper bound of the real one (a few bytes over): the buffer accounts with it instead of encoding again.
  const wholeBytes = encodedSize(whole);
  if (wholeBytes <= maxMessageBytes) {
    result.pieces.push({
      samples: body.samples,
      binaries: body.binaries,
      droppedSamples: body.droppedSamples,
      sampleCount: sampleCountOf(body.samples),
      sizeBound: wholeBytes,
    });
    return result;
  }
  const room = maxMessageBytes - header;
  let current: Piece = { samples: [], binaries: [], droppedSamples: 0, sampleCount: 0 };
  let used = 0;
  const flush = (): void => {
    result.pieces.push(current);
    current = { samples: [], binaries: [], droppedSamples: 0, sampleCount: 0 };
    used = 0;
  };
  for (const binary of body.binaries) {
    const size = repeatedFieldSize(encodedBinarySize(binary));
    if (size > room) {
      result.oversizeBinaries++;
      continue;
    }
    if (used + size > room) flush();
    current.binaries.push(binary);
    used += size;
  }
  for (const sample of body.samples) {
    const size = repeatedFieldSize(encodedSampleSize(sample));
    if (size > room) {
      result.oversizeSamples++;
      result.oversizeSampleCount += uint64ToNumber(sample.count);
      continue;
    }
    if (used + size > room) flush();
    current.samples.push(sample);
    current.sampleCount += uint64ToNumber(sample.count);
    used += size;
  }
  if (used > 0 || result.pieces.length === 0) flush();
  const first = result.pieces[0];
  if (first) first.droppedSamples = body.droppedSamples + result.oversizeSampleCount;
  return result;
}

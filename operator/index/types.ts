// The hot-symbol index's contract, shared by ingest (which folds batches in), the VexStatement
// controller (which asks whether a vulnerable symbol ran) and the FuncProof controller (Observed).
import type { StackBatch__Output } from "../../proto/evidence.ts";

/** Where a symbol ran: the question a VexStatement asks. */
export interface SymbolQuery {
  /** Symbol name as in the symbol table (mangled for C++/Rust). */
  name: string;
  /** Only frames in these BuildIDs; empty or absent = any binary. */
  buildIds?: readonly string[];
  /** Only samples of containers running this image digest ("sha256:…"); absent = any. */
  imageDigest?: string;
  /** Window [sinceMs, untilMs), ms since the epoch (sample window end times). */
  sinceMs: number;
  untilMs: number;
}

export interface StackCount {
  /** Leaf first, frames joined by ";" (function names, "[buildid+0xoff]" where still unnamed). */
  stack: string;
  count: number;
}

export interface SymbolObservation {
  /** Samples whose stack contains the symbol (in any frame). */
  samples: number;
  /** All samples of the product (imageDigest, or everything when absent) in the window: the CPU-share base. */
  productSamples: number;
  /** BuildIDs the symbol was seen in, sorted. */
  buildIds: string[];
  /** "namespace/name" of pods where it ran, sorted ("" pods, i.e. host processes, are left out). */
  pods: string[];
  /** Nodes where it ran, sorted. */
  nodes: string[];
  /** Most frequent stacks through the symbol, heaviest first (at most 16). */
  topStacks: StackCount[];
  firstSeenMs?: number;
  lastSeenMs?: number;
}

export interface BuildIdObservation {
  buildId: string;
  samples: number;
  lastSeenMs: number;
  /** Sorted, bounded (at most 64 each). */
  pods: string[];
  nodes: string[];
}

/** Names a stripped frame from the build's symbols (FuncProof function ranges). */
export interface SymbolNamer {
  /** The function containing `vaddr` in the binary `buildId`, and the offset into it. */
  nameAt(buildId: string, vaddr: number): { symbol: string; offset: number } | undefined;
}

export interface HotSymbolIndex {
  /** Folds one acknowledged batch in. Idempotency is the caller's job (ingest de-duplicates by (agentId, seq)). */
  fold(batch: StackBatch__Output): void;
  query(q: SymbolQuery): SymbolObservation;
  /** Samples of a product in a window (does it run at all?); imageDigest absent = any. */
  productSamples(
    imageDigest: string | undefined,
    sinceMs: number,
    untilMs: number,
  ): { samples: number; lastSeenMs?: number };
  /** Where and when a BuildID was last seen executing (FuncProof status.observed). */
  buildId(buildId: string): BuildIdObservation | undefined;
  /** Drops everything older than `beforeMs` (retention). */
  prune(beforeMs: number): void;
  /** Forget all state (before a rebuild from the write-ahead log, e.g. after a new FuncProof names more frames). */
  clear(): void;
  readonly stats: {
    symbols: number;
    buckets: number;
    approxBytes: number;
    foldedBatches: number;
    foldedSamples: number;
  };
}

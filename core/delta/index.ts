/**
 * The delta engine's public API: content-defined chunking, Merkle roots over chunk ids, delta
 * creation, parsing and verified application. Format: docs/delta-format.md.
 */
export { type CdcParams, type Chunk, cdcBoundaries, chunk, DEFAULT_CDC, GEAR_SEED } from "./cdc.ts";
export { merkleRoot } from "./merkle.ts";
export {
  type ChangedChunk,
  createDelta,
  DEFAULT_PARAMS,
  type DeltaParams,
  type DeltaResult,
  type DeltaSummary,
} from "./create.ts";
export { type DeltaOp, type ParsedDelta, type ParseLimits, parseDelta } from "./format.ts";
export { type ApplyOptions, applyDelta, applyDeltaFile } from "./apply.ts";
export { DeltaError, type DeltaErrorCode } from "./errors.ts";

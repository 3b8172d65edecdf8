// Original file: proto/stella/evidence/v1/evidence.proto

import type { Long } from '@grpc/proto-loader';

// Original file: proto/stella/evidence/v1/evidence.proto

export const _stella_evidence_v1_Frame_Kind = {
  KIND_UNSPECIFIED: 'KIND_UNSPECIFIED',
  /**
   * Code in an ELF file mapped by the process: build_id + file_offset always, symbol + offset when known.
   */
  KIND_NATIVE: 'KIND_NATIVE',
  /**
   * JIT code named by /tmp/perf-PID.map: symbol + offset only.
   */
  KIND_JIT: 'KIND_JIT',
  KIND_KERNEL: 'KIND_KERNEL',
  /**
   * Could not be resolved (process gone, anonymous memory, …): only `unresolved_reason`.
   */
  KIND_UNRESOLVED: 'KIND_UNRESOLVED',
} as const;

export type _stella_evidence_v1_Frame_Kind =
  | 'KIND_UNSPECIFIED'
  | 0
  /**
   * Code in an ELF file mapped by the process: build_id + file_offset always, symbol + offset when known.
   */
  | 'KIND_NATIVE'
  | 1
  /**
   * JIT code named by /tmp/perf-PID.map: symbol + offset only.
   */
  | 'KIND_JIT'
  | 2
  | 'KIND_KERNEL'
  | 3
  /**
   * Could not be resolved (process gone, anonymous memory, …): only `unresolved_reason`.
   */
  | 'KIND_UNRESOLVED'
  | 4

export type _stella_evidence_v1_Frame_Kind__Output = typeof _stella_evidence_v1_Frame_Kind[keyof typeof _stella_evidence_v1_Frame_Kind]

export interface Frame {
  'kind'?: (_stella_evidence_v1_Frame_Kind);
  /**
   * Lower-case hex GNU build id; empty when the ELF file has none.
   */
  'buildId'?: (string);
  'fileOffset'?: (number | string | Long);
  /**
   * Function name; unset for stripped code (the operator names it from a FuncProof by build_id + file_offset).
   */
  'symbol'?: (string);
  /**
   * Bytes from the function's start.
   */
  'offset'?: (number | string | Long);
  'unresolvedReason'?: (string);
  '_symbol'?: "symbol";
  '_offset'?: "offset";
}

export interface Frame__Output {
  'kind': (_stella_evidence_v1_Frame_Kind__Output);
  /**
   * Lower-case hex GNU build id; empty when the ELF file has none.
   */
  'buildId': (string);
  'fileOffset': (number);
  /**
   * Function name; unset for stripped code (the operator names it from a FuncProof by build_id + file_offset).
   */
  'symbol'?: (string);
  /**
   * Bytes from the function's start.
   */
  'offset'?: (number);
  'unresolvedReason': (string);
  '_symbol'?: "symbol";
  '_offset'?: "offset";
}

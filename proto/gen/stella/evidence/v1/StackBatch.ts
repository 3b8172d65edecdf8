// Original file: proto/stella/evidence/v1/evidence.proto

import type { Window as _stella_evidence_v1_Window, Window__Output as _stella_evidence_v1_Window__Output } from '../../../stella/evidence/v1/Window.ts';
import type { Sample as _stella_evidence_v1_Sample, Sample__Output as _stella_evidence_v1_Sample__Output } from '../../../stella/evidence/v1/Sample.ts';
import type { Binary as _stella_evidence_v1_Binary, Binary__Output as _stella_evidence_v1_Binary__Output } from '../../../stella/evidence/v1/Binary.ts';
import type { Frame as _stella_evidence_v1_Frame, Frame__Output as _stella_evidence_v1_Frame__Output } from '../../../stella/evidence/v1/Frame.ts';
import type { Long } from '@grpc/proto-loader';

export interface StackBatch {
  /**
   * The Kubernetes node name (or the host name outside a cluster).
   */
  'node'?: (string);
  /**
   * Unique per agent process start ("<node>/<random>"): seq numbers restart with it.
   */
  'agentId'?: (string);
  /**
   * 1, 2, 3, … per agent_id; one seq per batch, never reused.
   */
  'seq'?: (number | string | Long);
  'window'?: (_stella_evidence_v1_Window | null);
  'samples'?: (_stella_evidence_v1_Sample)[];
  /**
   * Every binary referenced by a frame of this batch and not sent in an earlier batch of this agent_id.
   */
  'binaries'?: (_stella_evidence_v1_Binary)[];
  /**
   * Sampling frequency per CPU, Hz: count / hz = CPU seconds.
   */
  'hz'?: (number);
  /**
   * Samples the agent could not attribute or resolve at all in this window (dropped before sending).
   */
  'droppedSamples'?: (number | string | Long);
  /**
   * The batch's frame table: each distinct frame once, referenced by Sample.frame_ids (a function is on many
   * stacks, so this is ~5x smaller than frames inline, and the operator decodes each distinct frame once).
   */
  'frames'?: (_stella_evidence_v1_Frame)[];
}

export interface StackBatch__Output {
  /**
   * The Kubernetes node name (or the host name outside a cluster).
   */
  'node': (string);
  /**
   * Unique per agent process start ("<node>/<random>"): seq numbers restart with it.
   */
  'agentId': (string);
  /**
   * 1, 2, 3, … per agent_id; one seq per batch, never reused.
   */
  'seq': (number);
  'window': (_stella_evidence_v1_Window__Output | null);
  'samples': (_stella_evidence_v1_Sample__Output)[];
  /**
   * Every binary referenced by a frame of this batch and not sent in an earlier batch of this agent_id.
   */
  'binaries': (_stella_evidence_v1_Binary__Output)[];
  /**
   * Sampling frequency per CPU, Hz: count / hz = CPU seconds.
   */
  'hz': (number);
  /**
   * Samples the agent could not attribute or resolve at all in this window (dropped before sending).
   */
  'droppedSamples': (number);
  /**
   * The batch's frame table: each distinct frame once, referenced by Sample.frame_ids (a function is on many
   * stacks, so this is ~5x smaller than frames inline, and the operator decodes each distinct frame once).
   */
  'frames': (_stella_evidence_v1_Frame__Output)[];
}

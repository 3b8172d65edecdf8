// Original file: proto/stella/evidence/v1/evidence.proto

import type { Frame as _stella_evidence_v1_Frame, Frame__Output as _stella_evidence_v1_Frame__Output } from '../../../stella/evidence/v1/Frame.ts';
import type { Long } from '@grpc/proto-loader';

/**
 * One distinct stack of one container, seen `count` times in the window.
 */
export interface Sample {
  /**
   * Container id (64 hex) or "host" for processes outside any container.
   */
  'container'?: (string);
  'pod'?: (string);
  'namespace'?: (string);
  /**
   * "sha256:…" of the container's image, when the pod status names it.
   */
  'imageDigest'?: (string);
  /**
   * The container's name in its pod spec.
   */
  'containerName'?: (string);
  /**
   * Leaf first: frames[0] is the sampled instruction. Inline frames: agents before the frame table (the
   * operator still reads them); a sample has either frames or frame_ids, not both.
   */
  'frames'?: (_stella_evidence_v1_Frame)[];
  'count'?: (number | string | Long);
  /**
   * Leaf first: indices into StackBatch.frames.
   */
  'frameIds'?: (number)[];
}

/**
 * One distinct stack of one container, seen `count` times in the window.
 */
export interface Sample__Output {
  /**
   * Container id (64 hex) or "host" for processes outside any container.
   */
  'container': (string);
  'pod': (string);
  'namespace': (string);
  /**
   * "sha256:…" of the container's image, when the pod status names it.
   */
  'imageDigest': (string);
  /**
   * The container's name in its pod spec.
   */
  'containerName': (string);
  /**
   * Leaf first: frames[0] is the sampled instruction. Inline frames: agents before the frame table (the
   * operator still reads them); a sample has either frames or frame_ids, not both.
   */
  'frames': (_stella_evidence_v1_Frame__Output)[];
  'count': (number);
  /**
   * Leaf first: indices into StackBatch.frames.
   */
  'frameIds': (number)[];
}

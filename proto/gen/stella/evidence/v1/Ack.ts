// Original file: proto/stella/evidence/v1/evidence.proto

import type { Long } from '@grpc/proto-loader';

export interface Ack {
  'seq'?: (number | string | Long);
  /**
   * Non-empty: the operator refuses this batch for good (malformed: the reason says which field and
   * limit). The agent drops it, counts it and does not resend it. Empty: stored.
   */
  'rejected'?: (string);
}

export interface Ack__Output {
  'seq': (number);
  /**
   * Non-empty: the operator refuses this batch for good (malformed: the reason says which field and
   * limit). The agent drops it, counts it and does not resend it. Empty: stored.
   */
  'rejected': (string);
}

// Original file: proto/stella/evidence/v1/evidence.proto

import type { Long } from '@grpc/proto-loader';

export interface Ack {
  'seq'?: (number | string | Long);
}

export interface Ack__Output {
  'seq': (number);
}

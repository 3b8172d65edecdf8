// Original file: proto/stella/evidence/v1/evidence.proto

import type { Long } from '@grpc/proto-loader';

export interface Section {
  'name'?: (string);
  'fileOffset'?: (number | string | Long);
  'size'?: (number | string | Long);
  'address'?: (number | string | Long);
}

export interface Section__Output {
  'name': (string);
  'fileOffset': (number);
  'size': (number);
  'address': (number);
}

// Original file: proto/stella/evidence/v1/evidence.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Wall-clock sampling window, milliseconds since the Unix epoch, [start, end).
 */
export interface Window {
  'startUnixMs'?: (number | string | Long);
  'endUnixMs'?: (number | string | Long);
}

/**
 * Wall-clock sampling window, milliseconds since the Unix epoch, [start, end).
 */
export interface Window__Output {
  'startUnixMs': (number);
  'endUnixMs': (number);
}

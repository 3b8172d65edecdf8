// Original file: proto/stella/evidence/v1/evidence.proto

import type { Section as _stella_evidence_v1_Section, Section__Output as _stella_evidence_v1_Section__Output } from '../../../stella/evidence/v1/Section.ts';

export interface Binary {
  'buildId'?: (string);
  /**
   * Path inside the container (as /proc/PID/maps shows it).
   */
  'path'?: (string);
  'sections'?: (_stella_evidence_v1_Section)[];
}

export interface Binary__Output {
  'buildId': (string);
  /**
   * Path inside the container (as /proc/PID/maps shows it).
   */
  'path': (string);
  'sections': (_stella_evidence_v1_Section__Output)[];
}

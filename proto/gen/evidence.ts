import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Ack as _stella_evidence_v1_Ack, Ack__Output as _stella_evidence_v1_Ack__Output } from './stella/evidence/v1/Ack.ts';
import type { Binary as _stella_evidence_v1_Binary, Binary__Output as _stella_evidence_v1_Binary__Output } from './stella/evidence/v1/Binary.ts';
import type { Frame as _stella_evidence_v1_Frame, Frame__Output as _stella_evidence_v1_Frame__Output } from './stella/evidence/v1/Frame.ts';
import type { IngestClient as _stella_evidence_v1_IngestClient, IngestDefinition as _stella_evidence_v1_IngestDefinition } from './stella/evidence/v1/Ingest.ts';
import type { Sample as _stella_evidence_v1_Sample, Sample__Output as _stella_evidence_v1_Sample__Output } from './stella/evidence/v1/Sample.ts';
import type { Section as _stella_evidence_v1_Section, Section__Output as _stella_evidence_v1_Section__Output } from './stella/evidence/v1/Section.ts';
import type { StackBatch as _stella_evidence_v1_StackBatch, StackBatch__Output as _stella_evidence_v1_StackBatch__Output } from './stella/evidence/v1/StackBatch.ts';
import type { Window as _stella_evidence_v1_Window, Window__Output as _stella_evidence_v1_Window__Output } from './stella/evidence/v1/Window.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  stella: {
    evidence: {
      v1: {
        Ack: MessageTypeDefinition<_stella_evidence_v1_Ack, _stella_evidence_v1_Ack__Output>
        Binary: MessageTypeDefinition<_stella_evidence_v1_Binary, _stella_evidence_v1_Binary__Output>
        Frame: MessageTypeDefinition<_stella_evidence_v1_Frame, _stella_evidence_v1_Frame__Output>
        Ingest: SubtypeConstructor<typeof grpc.Client, _stella_evidence_v1_IngestClient> & { service: _stella_evidence_v1_IngestDefinition }
        Sample: MessageTypeDefinition<_stella_evidence_v1_Sample, _stella_evidence_v1_Sample__Output>
        Section: MessageTypeDefinition<_stella_evidence_v1_Section, _stella_evidence_v1_Section__Output>
        StackBatch: MessageTypeDefinition<_stella_evidence_v1_StackBatch, _stella_evidence_v1_StackBatch__Output>
        Window: MessageTypeDefinition<_stella_evidence_v1_Window, _stella_evidence_v1_Window__Output>
      }
    }
  }
}


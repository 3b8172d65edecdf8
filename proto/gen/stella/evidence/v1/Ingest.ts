// Original file: proto/stella/evidence/v1/evidence.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Ack as _stella_evidence_v1_Ack, Ack__Output as _stella_evidence_v1_Ack__Output } from '../../../stella/evidence/v1/Ack.ts';
import type { StackBatch as _stella_evidence_v1_StackBatch, StackBatch__Output as _stella_evidence_v1_StackBatch__Output } from '../../../stella/evidence/v1/StackBatch.ts';

export interface IngestClient extends grpc.Client {
  StreamStacks(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_stella_evidence_v1_StackBatch, _stella_evidence_v1_Ack__Output>;
  StreamStacks(options?: grpc.CallOptions): grpc.ClientDuplexStream<_stella_evidence_v1_StackBatch, _stella_evidence_v1_Ack__Output>;
  streamStacks(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_stella_evidence_v1_StackBatch, _stella_evidence_v1_Ack__Output>;
  streamStacks(options?: grpc.CallOptions): grpc.ClientDuplexStream<_stella_evidence_v1_StackBatch, _stella_evidence_v1_Ack__Output>;
  
}

export interface IngestHandlers extends grpc.UntypedServiceImplementation {
  StreamStacks: grpc.handleBidiStreamingCall<_stella_evidence_v1_StackBatch__Output, _stella_evidence_v1_Ack>;
  
}

export interface IngestDefinition extends grpc.ServiceDefinition {
  StreamStacks: MethodDefinition<_stella_evidence_v1_StackBatch, _stella_evidence_v1_Ack, _stella_evidence_v1_StackBatch__Output, _stella_evidence_v1_Ack__Output>
}

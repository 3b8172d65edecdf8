// The agent → operator wire contract at runtime: proto/stella/evidence/v1/evidence.proto loaded with
// @grpc/proto-loader, typed with the generated types in proto/gen/ (make proto). Shared by the agent (client)
// and the operator (server); see docs/wire.md for the contract in prose.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
// protobufjs is @grpc/proto-loader's own parser/encoder (a dependency of it, hoisted by npm): used here only to
// measure encoded sizes with the very encoder grpc-js serializes with.
import protobuf from "protobufjs";
import { StellaError } from "../core/errors.ts";
import type { ProtoGrpcType } from "./gen/evidence.ts";
import type { IngestClient as IngestClientType, IngestDefinition } from "./gen/stella/evidence/v1/Ingest.ts";

export type { IngestDefinition, IngestHandlers } from "./gen/stella/evidence/v1/Ingest.ts";
export type { StackBatch, StackBatch__Output } from "./gen/stella/evidence/v1/StackBatch.ts";
export type { Ack, Ack__Output } from "./gen/stella/evidence/v1/Ack.ts";
export type { Window, Window__Output } from "./gen/stella/evidence/v1/Window.ts";
export type { Sample, Sample__Output } from "./gen/stella/evidence/v1/Sample.ts";
export type { Frame, Frame__Output } from "./gen/stella/evidence/v1/Frame.ts";
export type { Binary, Binary__Output } from "./gen/stella/evidence/v1/Binary.ts";
export type { Section, Section__Output } from "./gen/stella/evidence/v1/Section.ts";
export type { Long } from "@grpc/proto-loader";
export { _stella_evidence_v1_Frame_Kind as FrameKind } from "./gen/stella/evidence/v1/Frame.ts";

import type { StackBatch } from "./gen/stella/evidence/v1/StackBatch.ts";
import type { Sample } from "./gen/stella/evidence/v1/Sample.ts";
import type { Binary } from "./gen/stella/evidence/v1/Binary.ts";

/** The .proto file, relative to the include directory. */
export const EVIDENCE_PROTO_FILE = "stella/evidence/v1/evidence.proto";

/**
 * The include directory holding the .proto sources: proto/ beside this file when run from source, two levels up
 * from the compiled dist/proto/ (tsc does not copy .proto files).
 */
export const PROTO_INCLUDE_DIR: string = (() => {
  const candidates = [new URL("./", import.meta.url), new URL("../../proto/", import.meta.url)];
  for (const dir of candidates) {
    if (existsSync(new URL(EVIDENCE_PROTO_FILE, dir))) return fileURLToPath(dir);
  }
  throw new StellaError("PROTO_NOT_FOUND", `${EVIDENCE_PROTO_FILE} not found under ${candidates.join(", ")}`);
})();

/**
 * proto-loader options, shared by client and server and mirrored by the flags in proto/gen.sh:
 * - keepCase false: fields in camelCase (`agentId`, `fileOffset`), the JavaScript convention; the wire is the same.
 * - longs Number: uint64 fields become numbers. Sequence numbers, counts, file offsets and millisecond
 *   timestamps stay far below 2^53, so they are exact; a value above Number.MAX_SAFE_INTEGER would lose
 *   precision (none of our fields can reach it).
 * - enums String: `Frame.kind` is its name ("KIND_NATIVE"), readable in logs and stable across renumbering.
 * - defaults true: decoded messages carry every scalar / repeated field (proto3 has no presence for them),
 *   so the operator need not test for undefined.
 * - oneofs true: proto3 `optional` fields (`symbol`, `offset`) are synthetic oneofs; the virtual `_symbol`
 *   field tells presence apart from a default value.
 */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_INCLUDE_DIR],
} satisfies protoLoader.Options;

const packageDefinition = protoLoader.loadSync(EVIDENCE_PROTO_FILE, LOADER_OPTIONS);
const grpcObject = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;

/** A client of the Ingest service (the type of `new IngestClient(…)`). */
export type IngestClient = IngestClientType;

/** The typed client constructor: `new IngestClient("host:port", credentials, channelOptions)`. */
export const IngestClient: new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => IngestClientType = grpcObject.stella.evidence.v1.Ingest;

/** The service definition for `server.addService(ingestService, handlers)`. */
export const ingestService: IngestDefinition = grpcObject.stella.evidence.v1.Ingest.service;

/** Full method path, for logs and interceptors. */
export const STREAM_STACKS_PATH = "/stella.evidence.v1.Ingest/StreamStacks";

// The same file parsed by protobufjs with the same camelCase conversion proto-loader applies, for sizes.
// evidence.proto imports nothing, so no include path resolution is needed.
const root = new protobuf.Root().loadSync(join(PROTO_INCLUDE_DIR, EVIDENCE_PROTO_FILE), { keepCase: false });
root.resolveAll();
const stackBatchType = root.lookupType("stella.evidence.v1.StackBatch");
const sampleType = root.lookupType("stella.evidence.v1.Sample");
const binaryType = root.lookupType("stella.evidence.v1.Binary");

/** Serialized size in bytes of a StackBatch, exactly as grpc-js would serialize it (fromObject + encode). */
export function encodedSize(batch: StackBatch): number {
  return stackBatchType.encode(stackBatchType.fromObject(batch)).finish().length;
}

/** Serialized size of one Sample on its own (add `repeatedFieldSize` for its cost inside a batch). */
export function encodedSampleSize(sample: Sample): number {
  return sampleType.encode(sampleType.fromObject(sample)).finish().length;
}

/** Serialized size of one Binary on its own (add `repeatedFieldSize` for its cost inside a batch). */
export function encodedBinarySize(binary: Binary): number {
  return binaryType.encode(binaryType.fromObject(binary)).finish().length;
}

/** Bytes of a base-128 varint holding `n` (n ≥ 0, n ≤ 2^53). */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/**
 * Bytes an embedded message of `messageSize` adds to its parent as one element of a repeated field with a
 * field number below 16: a one-byte tag, the length varint, the message (protobuf encoding, "Length-delimited
 * records"). Field sizes add up, so a batch's size is its header plus these.
 */
export function repeatedFieldSize(messageSize: number): number {
  return 1 + varintSize(messageSize) + messageSize;
}

// A real gRPC Ingest server on 127.0.0.1 for tests that need the batches themselves (the durable
// server in agent/ship/testing/ logs only summaries): it keeps every StackBatch (its frame table resolved into
// each sample's frames) and acks it at once.
import * as grpc from "@grpc/grpc-js";

import { ingestService, type IngestHandlers, type StackBatch__Output } from "../../proto/evidence.ts";
import { expandFrameTable } from "../../proto/frame-table.ts";

export interface CollectingIngest {
  port: number;
  batches: StackBatch__Output[];
  stop(): Promise<void>;
}

export async function startCollectingIngest(): Promise<CollectingIngest> {
  const batches: StackBatch__Output[] = [];
  const server = new grpc.Server();
  const handlers: IngestHandlers = {
    StreamStacks(call) {
      call.on("data", (b: StackBatch__Output) => {
        batches.push(expandFrameTable(b));
        call.write({ seq: b.seq });
      });
      call.on("end", () => {
        call.end();
      });
    },
  };
  server.addService(ingestService, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  return {
    port,
    batches,
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          resolve();
        });
      }),
  };
}

// An IngestServer in a process of its own, for crash tests (SIGKILL mid-stream, restart on the same WAL):
//
//   node operator/ingest/testing/ingest-process.ts --wal DIR --folds FILE [--port N] [--max-receive-bytes N]
//
// Its index records every folded batch as one JSON line {agentId, seq, count} appended to FILE (replayed ones
// included). Prints "listening <port>" once the WAL is replayed and the port bound (127.0.0.1).
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { StackBatch__Output } from "../../../proto/evidence.ts";
import type { HotSymbolIndex } from "../../index/types.ts";
import { IngestServer } from "../server.ts";

export interface FoldRecord {
  agentId: string;
  seq: number;
  count: number;
}

/** A HotSymbolIndex that only records what was folded (in memory, and as JSON lines when given a file). */
export class RecordingIndex implements HotSymbolIndex {
  readonly folded: FoldRecord[] = [];
  readonly #file: string | undefined;
  #samples = 0;

  constructor(file?: string) {
    this.#file = file;
  }

  fold(batch: StackBatch__Output): void {
    let count = 0;
    for (const s of batch.samples) count += s.count;
    const r: FoldRecord = { agentId: batch.agentId, seq: batch.seq, count };
    this.folded.push(r);
    this.#samples += batch.samples.length;
    if (this.#file !== undefined) appendFileSync(this.#file, JSON.stringify(r) + "\n");
  }
  query(): never {
    throw new Error("RecordingIndex: query not implemented");
  }
  productSamples(): { samples: number } {
    return { samples: 0 };
  }
  buildId(): undefined {
    return undefined;
  }
  prune(): void {
    // nothing kept to prune
  }
  clear(): void {
    this.folded.length = 0;
  }
  get stats(): HotSymbolIndex["stats"] {
    return {
      symbols: 0,
      buckets: 0,
      approxBytes: 0,
      foldedBatches: this.folded.length,
      foldedSamples: this.#samples,
    };
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      wal: { type: "string" },
      folds: { type: "string" },
      "max-receive-bytes": { type: "string" },
    },
  });
  if (values.wal === undefined || values.folds === undefined)
    throw new Error("--wal and --folds are required");
  const server = new IngestServer({
    address: `127.0.0.1:${values.port}`,
    tls: { insecure: true },
    walDir: values.wal,
    index: new RecordingIndex(values.folds),
    ...(values["max-receive-bytes"] === undefined
      ? {}
      : { maxReceiveMessageBytes: Number(values["max-receive-bytes"]) }),
  });
  const port = await server.start();
  process.stdout.write(`listening ${port}\n`);
  const stop = (): void => {
    void server.shutdown().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`ingest-process: ${String(err)}\n`);
    process.exit(1);
  });
}

// A durable Ingest server for tests: what the operator promises on the wire, without the operator.
// Each StackBatch is appended as one JSON line to a log file and fsync'd, de-duplicated by (agentId, seq) —
// the log is reloaded at start, so de-duplication survives a restart or a SIGKILL — and only then acked.
//
//   node agent/ship/testing/durable-ingest-server.ts --port N --log FILE
//        [--tls-dir DIR [--require-client-cert]] [--ack-delay-ms N] [--withhold-acks]
//        [--max-receive-bytes N] [--fail-streams N [--fail-code NAME]] [--unknown-ack]
//
// Prints "listening <port>" on stdout once bound (to 127.0.0.1). DIR holds ca.crt, server.crt, server.key.
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { ingestService } from "../../../proto/evidence.ts";
import type { Ack, IngestHandlers, StackBatch__Output } from "../../../proto/evidence.ts";

/** One line of the log. */
export interface IngestRecord {
  agentId: string;
  node: string;
  seq: number;
  /** Number of Sample entries (distinct stacks). */
  samples: number;
  /** Sum of their counts. */
  count: number;
  binaries: number;
  droppedSamples: number;
  /** Receive time, ms since the epoch. */
  t: number;
}

export interface DurableIngestServerOptions {
  /** 0 picks a free port. */
  port: number;
  host?: string;
  logFile: string;
  /** Directory with ca.crt, server.crt, server.key: serve TLS. */
  tlsDir?: string;
  /** With tlsDir: reject clients without a certificate signed by ca.crt (mTLS). */
  requireClientCert?: boolean;
  /** Delay each ack by this long (after the fsync). */
  ackDelayMs?: number;
  /** Store batches but never ack them. */
  withholdAcks?: boolean;
  /** The server's grpc.max_receive_message_length, bytes. */
  maxReceiveBytes?: number;
  /** Fail the first N streams at once with `failCode`. */
  failStreams?: number;
  failCode?: grpc.status;
  /** Send an Ack for a seq nobody sent at the start of each stream. */
  unknownAck?: boolean;
}

/** The seq the unknownAck option acknowledges. */
export const UNKNOWN_ACK_SEQ = 1_000_000_000;

export class DurableIngestServer {
  readonly options: DurableIngestServerOptions;
  /** Mutable while running, for tests that change behaviour mid-way. */
  ackDelayMs: number;
  withholdAcks: boolean;
  failStreams: number;
  readonly stats = { streams: 0, received: 0, duplicates: 0, stored: 0, acked: 0, failedStreams: 0 };
  readonly #seen = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #server: grpc.Server | undefined;
  #fd: number | undefined;
  #port = 0;

  constructor(options: DurableIngestServerOptions) {
    this.options = options;
    this.ackDelayMs = options.ackDelayMs ?? 0;
    this.withholdAcks = options.withholdAcks ?? false;
    this.failStreams = options.failStreams ?? 0;
  }

  get port(): number {
    return this.#port;
  }

  /** Every record in the log (reads the file). */
  static readLog(file: string): IngestRecord[] {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return [];
    }
    const records: IngestRecord[] = [];
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        records.push(JSON.parse(line) as IngestRecord);
      } catch {
        // A torn last line from a crash: that batch was never acked and will be resent.
      }
    }
    return records;
  }

  async start(): Promise<number> {
    const o = this.options;
    this.#fd = openSync(o.logFile, "a+");
    // Cut a torn last line (a crash mid-write) so the next record starts on a line of its own.
    const text = readFileSync(o.logFile, "utf8");
    if (text.length > 0 && !text.endsWith("\n")) {
      ftruncateSync(this.#fd, Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)));
    }
    for (const r of DurableIngestServer.readLog(o.logFile)) this.#seen.add(key(r.agentId, r.seq));

    const server = new grpc.Server({
      ...(o.maxReceiveBytes === undefined ? {} : { "grpc.max_receive_message_length": o.maxReceiveBytes }),
    });
    const handlers: IngestHandlers = {
      StreamStacks: (call) => {
        this.#onStream(call);
      },
    };
    server.addService(ingestService, handlers);
    const credentials =
      o.tlsDir === undefined
        ? grpc.ServerCredentials.createInsecure()
        : grpc.ServerCredentials.createSsl(
            readFileSync(join(o.tlsDir, "ca.crt")),
            [
              {
                cert_chain: readFileSync(join(o.tlsDir, "server.crt")),
                private_key: readFileSync(join(o.tlsDir, "server.key")),
              },
            ],
            o.requireClientCert ?? false,
          );
    this.#server = server;
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${o.host ?? "127.0.0.1"}:${o.port}`, credentials, (err, port) => {
        if (err) reject(err);
        else resolve(port);
      });
    });
    return this.#port;
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      server.forceShutdown();
    }
    if (this.#fd !== undefined) {
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    return Promise.resolve();
  }

  #onStream(call: grpc.ServerDuplexStream<StackBatch__Output, Ack>): void {
    this.stats.streams++;
    if (this.failStreams > 0) {
      this.failStreams--;
      this.stats.failedStreams++;
      const code = this.options.failCode ?? grpc.status.RESOURCE_EXHAUSTED;
      call.emit("error", { code, details: "test server: failing this stream on purpose" });
      return;
    }
    call.sendMetadata(new grpc.Metadata());
    if (this.options.unknownAck === true) call.write({ seq: UNKNOWN_ACK_SEQ });
    call.on("data", (batch: StackBatch__Output) => {
      this.#store(batch);
      if (this.withholdAcks) return;
      const ack = (): void => {
        if (call.cancelled || call.destroyed) return;
        call.write({ seq: batch.seq });
        this.stats.acked++;
      };
      if (this.ackDelayMs <= 0) ack();
      else {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          ack();
        }, this.ackDelayMs);
        this.#timers.add(t);
      }
    });
    call.on("end", () => call.end());
    call.on("error", () => undefined); // the client went away (cancelled): nothing to do
  }

  /** Appends the batch to the log and fsyncs, unless (agentId, seq) is already there. */
  #store(batch: StackBatch__Output): void {
    this.stats.received++;
    const k = key(batch.agentId, batch.seq);
    if (this.#seen.has(k)) {
      this.stats.duplicates++;
      return;
    }
    const fd = this.#fd;
    if (fd === undefined) throw new Error("durable-ingest-server: not started");
    const record: IngestRecord = {
      agentId: batch.agentId,
      node: batch.node,
      seq: batch.seq,
      samples: batch.samples.length,
      count: batch.samples.reduce((sum, s) => sum + s.count, 0),
      binaries: batch.binaries.length,
      droppedSamples: batch.droppedSamples,
      t: Date.now(),
    };
    writeSync(fd, JSON.stringify(record) + "\n");
    fsyncSync(fd);
    this.#seen.add(k);
    this.stats.stored++;
  }
}

function key(agentId: string, seq: number): string {
  return `${agentId}\u0000${seq}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      log: { type: "string" },
      "tls-dir": { type: "string" },
      "require-client-cert": { type: "boolean", default: false },
      "ack-delay-ms": { type: "string", default: "0" },
      "withhold-acks": { type: "boolean", default: false },
      "max-receive-bytes": { type: "string" },
      "fail-streams": { type: "string", default: "0" },
      "fail-code": { type: "string", default: "RESOURCE_EXHAUSTED" },
      "unknown-ack": { type: "boolean", default: false },
    },
  });
  if (values.log === undefined) throw new Error("--log FILE is required");
  const failCode = grpc.status[values["fail-code"] as keyof typeof grpc.status];
  if (typeof failCode !== "number")
    throw new Error(`--fail-code: unknown gRPC status ${values["fail-code"]}`);
  const server = new DurableIngestServer({
    port: Number(values.port),
    logFile: values.log,
    ...(values["tls-dir"] === undefined ? {} : { tlsDir: values["tls-dir"] }),
    requireClientCert: values["require-client-cert"],
    ackDelayMs: Number(values["ack-delay-ms"]),
    withholdAcks: values["withhold-acks"],
    ...(values["max-receive-bytes"] === undefined
      ? {}
      : { maxReceiveBytes: Number(values["max-receive-bytes"]) }),
    failStreams: Number(values["fail-streams"]),
    failCode,
    unknownAck: values["unknown-ack"],
  });
  const port = await server.start();
  process.stdout.write(`listening ${port}\n`);
  const stop = (): void => {
    void server.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`durable-ingest-server: ${String(err)}\n`);
    process.exit(1);
  });
}

// The operator's side of the agent → operator wire (docs/wire.md): a gRPC server for Ingest.StreamStacks that
// validates each StackBatch, de-duplicates it by (agentId, seq), logs it to the write-ahead log (fsync'd) and
// folds it into the hot-symbol index, and only then answers Ack{seq}.
//
// Per batch, in arrival order on its stream:
//   invalid           → Ack{seq, rejected: "<field>: <value>, limit <n>"}    (batches_total{result="rejected"})
//   already stored    → Ack{seq}, not logged or folded again                  (result="duplicate")
//   otherwise         → WAL append (write + fsync) → dedup mark → index.fold → Ack{seq}   (result="stored")
//
// Acks on a stream are written in the order its batches arrived. Batches of one stream are pipelined (up to
// `maxInflightPerStream` appends in flight at once, so they share group commits); a batch's ack waits for the
// acks of every earlier batch of that stream. A batch also in flight on another stream (a reconnect overtaking
// an append) waits for that append and is then acknowledged as a duplicate.
//
// On start the WAL is replayed into the de-duplication state and the index before the port is bound (`ready`).
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { Counter, Gauge, Registry } from "prom-client";
import { StellaError } from "../../core/errors.ts";
import { parseListenAddress } from "../../core/service/listen-address.ts";
import { componentLogger, silentLogger, untrusted } from "../../core/service/log.ts";
import type { Logger } from "../../core/service/log.ts";
import { counter, createRegistry, exponentialBuckets, gauge, histogram } from "../../core/service/metrics.ts";
import { ingestService } from "../../proto/evidence.ts";
import type { Ack, StackBatch__Output } from "../../proto/evidence.ts";
import { systemClock } from "../runtime/clock.ts";
import type { Clock } from "../runtime/clock.ts";
import type { HotSymbolIndex } from "../index/types.ts";
import { decodeStackBatch } from "./decode.ts";
import { SeqDedup } from "./dedup.ts";
import type { DedupOptions, DedupStats } from "./dedup.ts";
import { validateBatch } from "./validate.ts";
import { WriteAheadLog } from "./wal.ts";
import type { WalStats } from "./wal.ts";

export type IngestErrorCode = "INGEST_CONFIG" | "INGEST_TLS" | "INGEST_STATE" | "INGEST_BIND";

/** Plain-text HTTP/2: tests and loopback only. */
export interface IngestInsecureTls {
  insecure: true;
}

/** TLS with the operator's serving certificate; with clientCaFile, mTLS: every client must present a cert. */
export interface IngestSecureTls {
  insecure?: false;
  certFile: string;
  keyFile: string;
  /** PEM CA bundle the agents' client certificates must chain to; set ⇒ client certificates are required. */
  clientCaFile?: string;
}

export type IngestTls = IngestInsecureTls | IngestSecureTls;

export interface IngestServerOptions {
  /** "host:port", ":port" (all interfaces) or port 0 for any free port. Default ":9090". */
  address?: string;
  tls: IngestTls;
  /** gRPC max receive message length; larger messages fail the stream with RESOURCE_EXHAUSTED. Default 8 MiB. */
  maxReceiveMessageBytes?: number;
  /** Directory of the write-ahead log (a persistent volume). */
  walDir: string;
  /** WAL segment size before rotation. Default 64 MiB. */
  walSegmentBytes?: number;
  /** fsync each WAL group commit. Default true; false only for benchmarks (acks would not be durable). */
  walFsync?: boolean;
  index: HotSymbolIndex;
  logger?: Logger;
  registry?: Registry;
  clock?: Clock;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /** Batches of one stream past validation and not yet acknowledged before the stream is paused. Default 64. */
  maxInflightPerStream?: number;
  dedup?: DedupOptions;
  /** How long shutdown() waits for in-flight batches before cancelling the streams, ms. Default 10,000. */
  shutdownGraceMs?: number;
}

/** Defaults, in one place. */
export const INGEST_DEFAULTS = {
  address: ":9090",
  maxReceiveMessageBytes: 8 * 1024 * 1024,
  walSegmentBytes: 64 * 1024 * 1024,
  walFsync: true,
  maxInflightPerStream: 64,
  shutdownGraceMs: 10_000,
} as const;

export interface IngestStats {
  streams: number;
  stored: number;
  duplicates: number;
  rejected: number;
  /** Sum of sample counts stored (live, not replayed). */
  samples: number;
  replayed: number;
  /** Batches whose fold threw (they are stored and acknowledged; the error is logged). */
  foldErrors: number;
  /** Index rebuilds from the write-ahead log. */
  rebuilds: number;
  startedAtMs: number | undefined;
  wal: WalStats;
  dedup: DedupStats;
}

/** A request as our deserializer hands it over: the decoded batch and its wire bytes (logged as they are). */
interface Received {
  raw: Buffer;
  batch: StackBatch__Output;
}

interface StreamState {
  call: grpc.ServerDuplexStream<Received, Ack>;
  /** Settles after the last ack of this stream was written (acks are chained in arrival order). */
  tail: Promise<void>;
  inflight: number;
  paused: boolean;
  failed: boolean;
  closed: boolean;
}

/**
 * The service with our own deserializer: the fast decoder (decode.ts, equal to proto-loader's output), keeping the
 * received bytes so the WAL logs them as they are instead of re-encoding.
 */
const RAW_SERVICE: grpc.ServiceDefinition = {
  StreamStacks: {
    ...ingestService.StreamStacks,
    requestDeserialize: (buf: Buffer): Received => ({ raw: buf, batch: decodeStackBatch(buf) }),
  },
};

const noop = (): void => undefined;
const dedupKey = (agentId: string, seq: number): string => `${agentId}\u0000${seq}`;

function readPem(field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new StellaError("INGEST_TLS", `cannot read tls.${field} ${file}`, { cause });
  }
}

function serverCredentials(tls: IngestTls): grpc.ServerCredentials {
  if (tls.insecure === true) return grpc.ServerCredentials.createInsecure();
  const cert = readPem("certFile", tls.certFile);
  const key = readPem("keyFile", tls.keyFile);
  const ca = tls.clientCaFile === undefined ? null : readPem("clientCaFile", tls.clientCaFile);
  try {
    return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
  } catch (cause) {
    throw new StellaError("INGEST_TLS", "invalid TLS material", { cause });
  }
}

export class IngestServer {
  readonly #address: string;
  readonly #tls: IngestTls;
  readonly #maxReceive: number;
  readonly #maxInflight: number;
  readonly #graceMs: number;
  readonly #index: HotSymbolIndex;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  readonly #wal: WriteAheadLog;
  readonly #dedup: SeqDedup;
  readonly #streams = new Set<StreamState>();
  /** Appends in flight by (agentId, seq): a concurrent resend waits for them instead of logging twice. */
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #m: {
    batches: Counter<"result">;
    samples: Counter;
    streams: Gauge;
    replayed: Counter;
  };
  readonly #stats = {
    stored: 0,
    duplicates: 0,
    rejected: 0,
    samples: 0,
    replayed: 0,
    foldErrors: 0,
    rebuilds: 0,
  };
  #rebuild: Promise<number> | undefined;
  /** While the index is rebuilt: batches stored meanwhile, folded after the reread. */
  #held: StackBatch__Output[] | undefined;
  #server: grpc.Server | undefined;
  #port = 0;
  #ready = false;
  #state: "new" | "starting" | "serving" | "closing" | "closed" = "new";
  #startedAtMs: number | undefined;
  #shutdown: Promise<void> | undefined;
  readonly #onAbort = (): void => void this.shutdown();

  constructor(options: IngestServerOptions) {
    this.#address = options.address ?? INGEST_DEFAULTS.address;
    parseListenAddress(this.#address); // throws INVALID_ADDRESS early
    this.#tls = options.tls;
    if (this.#tls.insecure !== true && (!this.#tls.certFile || !this.#tls.keyFile)) {
      throw new StellaError("INGEST_CONFIG", "ingest tls: certFile and keyFile are required unless insecure");
    }
    this.#maxReceive = options.maxReceiveMessageBytes ?? INGEST_DEFAULTS.maxReceiveMessageBytes;
    this.#maxInflight = options.maxInflightPerStream ?? INGEST_DEFAULTS.maxInflightPerStream;
    this.#graceMs = options.shutdownGraceMs ?? INGEST_DEFAULTS.shutdownGraceMs;
    for (const [field, v] of [
      ["maxReceiveMessageBytes", this.#maxReceive],
      ["maxInflightPerStream", this.#maxInflight],
    ] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) {
        throw new StellaError(
          "INGEST_CONFIG",
          `ingest option ${field}: must be a positive integer, got ${v}`,
        );
      }
    }
    this.#index = options.index;
    this.#log = componentLogger(options.logger ?? silentLogger(), "ingest");
    this.#clock = options.clock ?? systemClock;
    this.#signal = options.signal;
    const registry = options.registry ?? createRegistry({ defaultMetrics: false });
    const fsync = histogram(registry, {
      name: "stella_operator_ingest_wal_fsync_seconds",
      help: "Duration of one WAL group commit (write + fsync).",
      buckets: exponentialBuckets(0.0001, 2, 16),
    });
    this.#m = {
      batches: counter(registry, {
        name: "stella_operator_ingest_batches_total",
        help: "StackBatch messages received, by result (stored, duplicate, rejected).",
        labelNames: ["result"],
      }),
      samples: counter(registry, {
        name: "stella_operator_ingest_samples_total",
        help: "Samples (sum of counts) stored.",
      }),
      streams: gauge(registry, { name: "stella_operator_ingest_streams", help: "Open ingest streams." }),
      replayed: counter(registry, {
        name: "stella_operator_ingest_replayed_batches_total",
        help: "Batches replayed from the WAL at start.",
      }),
    };
    this.#wal = new WriteAheadLog({
      dir: options.walDir,
      segmentBytes: options.walSegmentBytes ?? INGEST_DEFAULTS.walSegmentBytes,
      fsync: options.walFsync ?? INGEST_DEFAULTS.walFsync,
      logger: componentLogger(this.#log, "wal"),
      onSync: (seconds) => {
        fsync.observe(seconds);
      },
    });
    const wal = this.#wal;
    const walBytes: Gauge = gauge(registry, {
      name: "stella_operator_ingest_wal_bytes",
      help: "Bytes in the ingest write-ahead log.",
      collect: () => {
        walBytes.set(wal.stats.bytes);
      },
    });
    this.#dedup = new SeqDedup(options.dedup);
  }

  /** True once the WAL is replayed and the port is bound, until shutdown begins. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The bound port (useful with port 0). 0 before start(). */
  get port(): number {
    return this.#port;
  }

  get stats(): IngestStats {
    return {
      ...this.#stats,
      streams: this.#streams.size,
      startedAtMs: this.#startedAtMs,
      wal: this.#wal.stats,
      dedup: this.#dedup.stats,
    };
  }

  /** Replays the WAL into the de-duplication state and the index, then binds and serves. Returns the port. */
  async start(): Promise<number> {
    if (this.#state !== "new") throw new StellaError("INGEST_STATE", `ingest server is ${this.#state}`);
    this.#state = "starting";
    const credentials = serverCredentials(this.#tls);
    const t0 = this.#clock.now();
    const replayed = await this.#wal.replay((batch) => {
      if (this.#dedup.has(batch.agentId, batch.seq)) return;
      this.#dedup.mark(batch.agentId, batch.seq);
      this.#fold(batch);
    });
    this.#stats.replayed += replayed;
    this.#m.replayed.inc(replayed);
    this.#log.info(
      { replayed, tornRecords: this.#wal.stats.tornRecords, ms: this.#clock.now() - t0 },
      "ingest WAL replayed",
    );
    const server = new grpc.Server({ "grpc.max_receive_message_length": this.#maxReceive });
    server.addService(RAW_SERVICE, {
      StreamStacks: (call: grpc.ServerDuplexStream<Received, Ack>) => {
        this.#onStream(call);
      },
    });
    const { host, port } = parseListenAddress(this.#address);
    const bindTo = `${host === undefined ? "0.0.0.0" : host.includes(":") ? `[${host}]` : host}:${port}`;
    try {
      this.#port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(bindTo, credentials, (err, p) => {
          if (err) reject(err);
          else resolve(p);
        });
      });
    } catch (cause) {
      await this.#wal.close();
      this.#state = "closed";
      throw new StellaError("INGEST_BIND", `cannot bind ingest to ${bindTo}`, { cause });
    }
    this.#server = server;
    this.#state = "serving";
    this.#startedAtMs = this.#clock.now();
    this.#ready = true;
    this.#log.info({ address: bindTo, port: this.#port, tls: this.#tls.insecure !== true }, "ingest serving");
    if (this.#signal?.aborted) this.#onAbort();
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    return this.#port;
  }

  /**
   * Ordered stop: refuse new streams and stop reading, let in-flight appends finish and their acks go out,
   * end the streams (UNAVAILABLE: agents reconnect elsewhere or later and resend what was not acked), stop the
   * gRPC server, close the WAL. Idempotent.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#doShutdown();
    return this.#shutdown;
  }

  async #doShutdown(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const wasServing = this.#state === "serving";
    this.#state = "closing";
    this.#ready = false;
    if (wasServing) {
      for (const st of this.#streams) st.call.pause();
      const cancel = { fn: noop };
      const grace = new Promise<void>((resolve) => {
        cancel.fn = this.#clock.setTimeout(resolve, this.#graceMs);
      });
      await Promise.race([Promise.all([...this.#streams].map((st) => st.tail)), grace]);
      cancel.fn();
      for (const st of this.#streams) this.#fail(st, grpc.status.UNAVAILABLE, "operator shutting down");
      const server = this.#server;
      if (server !== undefined) {
        await Promise.race([
          new Promise<void>((resolve) => {
            server.tryShutdown(() => {
              resolve();
            });
          }),
          new Promise<void>((resolve) => this.#clock.setTimeout(resolve, 1000)),
        ]);
        server.forceShutdown();
      }
    }
    await this.#wal.close();
    this.#state = "closed";
    this.#log.info({ ...this.#stats }, "ingest stopped");
  }

  /** Drops WAL segments whose newest batch window ended before beforeMs (retention). */
  compact(beforeMs: number): Promise<number> {
    return this.#wal.compact(beforeMs);
  }

  #onStream(call: grpc.ServerDuplexStream<Received, Ack>): void {
    if (this.#state !== "serving") {
      call.emit("error", { code: grpc.status.UNAVAILABLE, details: "operator shutting down" });
      return;
    }
    const st: StreamState = {
      call,
      tail: Promise.resolve(),
      inflight: 0,
      paused: false,
      failed: false,
      closed: false,
    };
    this.#streams.add(st);
    this.#m.streams.set(this.#streams.size);
    const peer = call.getPeer();
    this.#log.debug({ peer }, "ingest stream opened");
    call.sendMetadata(new grpc.Metadata());
    const close = (): void => {
      if (st.closed) return;
      st.closed = true;
      this.#streams.delete(st);
      this.#m.streams.set(this.#streams.size);
    };
    call.on("data", (m: Received) => {
      this.#onBatch(st, m);
    });
    call.on("end", () => {
      // The agent half-closed: finish its acks, then end our side cleanly.
      void st.tail.then(() => {
        if (!st.failed && !call.cancelled && !call.destroyed) call.end();
        close();
      });
    });
    call.on("error", (err: unknown) => {
      this.#log.debug({ err, peer }, "ingest stream error");
      close();
    });
    call.on("cancelled", close);
    call.on("close", close);
  }

  #onBatch(st: StreamState, m: Received): void {
    if (this.#state !== "serving" || st.failed) return; // not acked: the agent resends it
    const b = m.batch;
    let ack: Promise<Ack>;
    const reason = validateBatch(b);
    if (reason !== undefined) {
      this.#stats.rejected++;
      this.#m.batches.inc({ result: "rejected" });
      this.#log.warn(
        untrusted({ agentId: b.agentId.slice(0, 253), node: b.node.slice(0, 253), seq: b.seq, reason }),
        "rejected a malformed batch",
      );
      ack = Promise.resolve({ seq: b.seq, rejected: reason });
    } else if (this.#dedup.has(b.agentId, b.seq)) {
      this.#countDuplicate();
      ack = Promise.resolve({ seq: b.seq });
    } else {
      const key = dedupKey(b.agentId, b.seq);
      const pending = this.#inflight.get(key);
      if (pending !== undefined) {
        ack = pending.then(() => {
          this.#countDuplicate();
          return { seq: b.seq };
        });
      } else {
        const stored = this.#wal.append(b, m.raw).then(
          () => {
            this.#inflight.delete(key);
            this.#dedup.mark(b.agentId, b.seq);
            this.#fold(b);
            let count = 0;
            for (const s of b.samples) count += s.count;
            this.#stats.stored++;
            this.#stats.samples += count;
            this.#m.batches.inc({ result: "stored" });
            this.#m.samples.inc(count);
          },
          (err: unknown) => {
            this.#inflight.delete(key);
            throw err;
          },
        );
        stored.catch(noop); // handled through `ack` below; avoid an unhandled rejection meanwhile
        this.#inflight.set(key, stored);
        ack = stored.then(() => ({ seq: b.seq }));
      }
    }
    ack.catch(noop);
    st.inflight++;
    if (st.inflight >= this.#maxInflight && !st.paused) {
      st.paused = true;
      st.call.pause();
    }
    st.tail = st.tail.then(() =>
      ack.then(
        (a) => {
          this.#settled(st);
          if (st.failed || st.call.cancelled || st.call.destroyed) return;
          st.call.write(a);
        },
        (err: unknown) => {
          this.#settled(st);
          this.#log.error({ err }, "ingest: storing a batch failed; failing the stream");
          this.#fail(st, grpc.status.UNAVAILABLE, "operator could not store the batch");
        },
      ),
    );
  }

  #settled(st: StreamState): void {
    st.inflight--;
    if (st.paused && st.inflight <= this.#maxInflight / 2 && this.#state === "serving") {
      st.paused = false;
      st.call.resume();
    }
  }

  #countDuplicate(): void {
    this.#stats.duplicates++;
    this.#m.batches.inc({ result: "duplicate" });
  }

  /**
   * Clears the index and folds the whole write-ahead log into it again (e.g. a newly verified FuncProof
   * names frames folded unnamed). Batches stored meanwhile are folded after the reread, so each counts once.
   * Concurrent calls share one rebuild.
   */
  rebuildIndex(): Promise<number> {
    this.#rebuild ??= (async () => {
      const held: StackBatch__Output[] = [];
      this.#held = held;
      try {
        this.#index.clear();
        const n = await this.#wal.reread((b) => {
          this.#fold(b, true);
        });
        this.#stats.rebuilds++;
        return n;
      } finally {
        this.#held = undefined;
        for (const b of held) this.#fold(b, true);
        this.#rebuild = undefined;
      }
    })();
    return this.#rebuild;
  }

  #fold(batch: StackBatch__Output, direct = false): void {
    if (!direct && this.#held) {
      this.#held.push(batch);
      return;
    }
    try {
      this.#index.fold(batch);
    } catch (err) {
      // The batch is durable in the WAL; a fold bug must not turn into endless resends.
      this.#stats.foldErrors++;
      this.#log.error({ err, ...untrusted({ agentId: batch.agentId, seq: batch.seq }) }, "index fold failed");
    }
  }

  #fail(st: StreamState, code: grpc.status, details: string): void {
    if (st.failed || st.closed) return;
    st.failed = true;
    if (!st.call.cancelled && !st.call.destroyed) st.call.emit("error", { code, details });
  }
}

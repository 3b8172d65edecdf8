// The agent's shipper: sends StackBatch messages to the operator over one bidi gRPC stream
// (Ingest.StreamStacks, proto/stella/evidence/v1/evidence.proto; docs/wire.md) and keeps every batch until
// the operator acknowledges it.
//
// - enqueue() gives each piece of a body the next seq (1, 2, 3, … per agentId) and keeps it in a bounded
//   buffer of unacknowledged batches; when the buffer is full the OLDEST batches are dropped and counted.
// - One stream at a time. On (re)connect every unacknowledged batch is resent in seq order, then new ones as
//   they come; the operator de-duplicates by (agentId, seq), so a resend never counts twice.
// - A stream that ends or fails is reopened after an exponential backoff with jitter; an ack resets it.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { StellaError } from "../../core/errors.ts";
import { encodedSize, IngestClient } from "../../proto/evidence.ts";
import { tabulate } from "../../proto/frame-table.ts";
import type { Binary, Sample } from "../../proto/evidence.ts";
import type { Ack__Output, IngestClient as IngestClientType, StackBatch } from "../../proto/evidence.ts";
import { Backoff, DEFAULT_BACKOFF } from "./backoff.ts";
import type { BackoffOptions } from "./backoff.ts";
import { sampleCountOf, splitBody } from "./split.ts";
import type { ShipBody } from "./split.ts";

export type { ShipBody } from "./split.ts";
export type { BackoffOptions } from "./backoff.ts";

/** Plain-text gRPC: only for tests and for a loopback/sidecar operator. */
export interface InsecureTls {
  insecure: true;
}

/** TLS verifying the operator against caFile; with certFile + keyFile also a client certificate (mTLS). */
export interface SecureTls {
  insecure?: false;
  /** PEM bundle of the CA(s) that sign the operator's serving certificate. */
  caFile: string;
  /** PEM client certificate chain, for mTLS; needs keyFile. */
  certFile?: string;
  /** PEM private key of certFile. */
  keyFile?: string;
  /** Name to verify the serving certificate against instead of the target's host. */
  serverNameOverride?: string;
}

export type ShipperTls = InsecureTls | SecureTls;

/** The part of a pino logger the shipper uses (a pino Logger fits). */
export interface ShipperLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Waits `ms`, rejecting when `signal` aborts. Tests pass a shorter one. */
export type DelayFn = (ms: number, signal: AbortSignal) => Promise<void>;

export interface ShipperOptions {
  /** The operator's ingest endpoint, "host:port". */
  target: string;
  /** The Kubernetes node name (or host name). */
  node: string;
  /** Unique per agent start; seqs restart with it. Default `${node}/${12 random hex}`. */
  agentId?: string;
  tls: ShipperTls;
  /** Bound of the unacknowledged buffer, in encoded bytes. Default 64 MiB. */
  maxBufferBytes?: number;
  /** Largest encoded StackBatch sent; bodies are split below it. Default 4 MiB (gRPC's default receive limit). */
  maxMessageBytes?: number;
  backoff?: Partial<BackoffOptions>;
  delayFn?: DelayFn;
  /** Source of jitter, [0, 1). */
  random?: () => number;
  logger?: ShipperLogger;
  /** Aborting it shuts the shipper down without waiting for acks. */
  signal?: AbortSignal;
  /** Extra gRPC channel options (keepalive, …), merged over the shipper's. */
  channelOptions?: grpc.ChannelOptions;
  /** How long shutdown() waits for the operator to close a half-closed idle stream, ms. Default 1000. */
  closeGraceMs?: number;
}

export interface ShipperStats {
  /** Batches (StackBatch messages, after splitting) given a seq. */
  enqueued: number;
  /** First transmissions of a batch. */
  sent: number;
  /** Retransmissions of a batch on a later stream. */
  resent: number;
  /** Batches acknowledged (and released). enqueued = acked + rejected + droppedBatches + bufferBatches. */
  acked: number;
  /** Batches the operator refused for good (Ack.rejected set): released, not resent. */
  rejected: number;
  /** Unacknowledged batches dropped because the buffer was full (oldest first). */
  droppedBatches: number;
  /** Samples (sum of `count`) in dropped batches plus samples dropped for being larger than maxMessageBytes. */
  droppedSamples: number;
  /** Encoded bytes of dropped batches. */
  droppedBytes: number;
  /** Single samples (stack entries) dropped because one alone exceeds maxMessageBytes. */
  oversizeSamples: number;
  /** Single binaries dropped because one alone exceeds maxMessageBytes. */
  oversizeBinaries: number;
  /** Encoded bytes of unacknowledged batches. Never above maxBufferBytes. */
  bufferBytes: number;
  bufferBatches: number;
  /** Streams opened after a previous one ended or failed. */
  reconnects: number;
  /** Streams that ended with a gRPC error status (connection failures included). */
  streamErrors: number;
  /** Streams the operator failed because a message exceeded its receive limit. */
  rejectedTooLarge: number;
  /** Acks naming a seq not in the buffer (already acked, dropped, or never sent): ignored. */
  unknownAcks: number;
  /** A stream is open and the operator has answered on it. */
  connected: boolean;
}

/** Defaults, in one place. */
export const SHIPPER_DEFAULTS = {
  maxBufferBytes: 64 * 1024 * 1024,
  maxMessageBytes: 4 * 1024 * 1024,
  backoff: DEFAULT_BACKOFF,
  closeGraceMs: 1000,
  /** Smallest maxMessageBytes accepted: room for the header and a few frames. */
  minMessageBytes: 1024,
} as const;

export type ShipperErrorCode = "SHIPPER_CONFIG" | "SHIPPER_TLS" | "SHIPPER_CLOSED" | "SHIPPER_STATE";

const noop = (): void => undefined;
const SILENT_LOGGER: ShipperLogger = { debug: noop, info: noop, warn: noop, error: noop };

const defaultDelay: DelayFn = (ms, signal) => sleep(ms, undefined, { signal });

interface Entry {
  batch: StackBatch & { seq: number };
  bytes: number;
  sampleCount: number;
  writes: number;
}

interface ActiveStream {
  call: grpc.ClientDuplexStream<StackBatch, Ack__Output>;
  /** Next seq to write on this stream (seqs below it were written or are gone). */
  nextSeq: number;
  waitingDrain: boolean;
  ended: boolean;
  halfClosed: boolean;
  error?: grpc.ServiceError;
  done: Promise<void>;
}

interface Resolved {
  target: string;
  node: string;
  agentId: string;
  tls: ShipperTls;
  maxBufferBytes: number;
  maxMessageBytes: number;
  backoff: BackoffOptions;
  delayFn: DelayFn;
  random: () => number;
  logger: ShipperLogger;
  signal: AbortSignal | undefined;
  channelOptions: grpc.ChannelOptions;
  closeGraceMs: number;
}

function configError(field: string, message: string): StellaError<ShipperErrorCode> {
  return new StellaError("SHIPPER_CONFIG", `shipper option ${field}: ${message}`);
}

function positiveInt(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw configError(field, `must be a positive integer, got ${value}`);
  return value;
}

/** Validates options and fills defaults; throws SHIPPER_CONFIG naming the field. */
export function resolveShipperOptions(options: ShipperOptions): Resolved {
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s/]+):\d{1,5}$/.test(options.target)) {
    throw configError("target", `must be "host:port", got ${JSON.stringify(options.target)}`);
  }
  if (options.node === "") throw configError("node", "must not be empty");
  const agentId = options.agentId ?? `${options.node}/${randomBytes(6).toString("hex")}`;
  if (agentId === "") throw configError("agentId", "must not be empty");
  const maxBufferBytes = positiveInt(
    "maxBufferBytes",
    options.maxBufferBytes ?? SHIPPER_DEFAULTS.maxBufferBytes,
  );
  const maxMessageBytes = positiveInt(
    "maxMessageBytes",
    options.maxMessageBytes ?? SHIPPER_DEFAULTS.maxMessageBytes,
  );
  if (maxMessageBytes < SHIPPER_DEFAULTS.minMessageBytes) {
    throw configError("maxMessageBytes", `must be at least ${SHIPPER_DEFAULTS.minMessageBytes}`);
  }
  if (maxMessageBytes > maxBufferBytes) {
    throw configError("maxMessageBytes", `must not exceed maxBufferBytes (${maxBufferBytes})`);
  }
  const backoff: BackoffOptions = { ...SHIPPER_DEFAULTS.backoff, ...options.backoff };
  positiveInt("backoff.initialMs", backoff.initialMs);
  positiveInt("backoff.maxMs", backoff.maxMs);
  if (backoff.maxMs < backoff.initialMs) throw configError("backoff.maxMs", "must be ≥ backoff.initialMs");
  if (!(backoff.multiplier >= 1)) throw configError("backoff.multiplier", "must be ≥ 1");
  if (!(backoff.jitter >= 0 && backoff.jitter <= 1)) throw configError("backoff.jitter", "must be in [0, 1]");
  const tls = options.tls;
  if (tls.insecure !== true) {
    if (!tls.caFile) throw configError("tls.caFile", "is required unless tls.insecure is true");
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      throw configError("tls.certFile", "certFile and keyFile go together (mTLS)");
    }
  }
  return {
    target: options.target,
    node: options.node,
    agentId,
    tls,
    maxBufferBytes,
    maxMessageBytes,
    backoff,
    delayFn: options.delayFn ?? defaultDelay,
    random: options.random ?? Math.random,
    logger: options.logger ?? SILENT_LOGGER,
    signal: options.signal,
    channelOptions: options.channelOptions ?? {},
    closeGraceMs: options.closeGraceMs ?? SHIPPER_DEFAULTS.closeGraceMs,
  };
}

function readPem(field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new StellaError("SHIPPER_TLS", `cannot read tls.${field} ${file}`, { cause });
  }
}

function credentialsFor(tls: ShipperTls): grpc.ChannelCredentials {
  if (tls.insecure === true) return grpc.credentials.createInsecure();
  const ca = readPem("caFile", tls.caFile);
  const cert = tls.certFile === undefined ? null : readPem("certFile", tls.certFile);
  const key = tls.keyFile === undefined ? null : readPem("keyFile", tls.keyFile);
  try {
    return grpc.credentials.createSsl(ca, key, cert);
  } catch (cause) {
    throw new StellaError("SHIPPER_TLS", "invalid TLS material", { cause });
  }
}

const statusName = (code: number): string => grpc.status[code] ?? String(code);

export class Shipper {
  readonly agentId: string;
  readonly #o: Resolved;
  readonly #backoff: Backoff;
  /** Unacknowledged batches by seq; Map order is seq order (seqs only grow, resends keep their entry). */
  readonly #entries = new Map<number, Entry>();
  readonly #abort = new AbortController();
  readonly #idleWaiters = new Set<{ resolve: () => void; reject: (err: unknown) => void }>();
  readonly #stats: ShipperStats = {
    enqueued: 0,
    sent: 0,
    resent: 0,
    acked: 0,
    rejected: 0,
    droppedBatches: 0,
    droppedSamples: 0,
    droppedBytes: 0,
    oversizeSamples: 0,
    oversizeBinaries: 0,
    bufferBytes: 0,
    bufferBatches: 0,
    reconnects: 0,
    streamErrors: 0,
    rejectedTooLarge: 0,
    unknownAcks: 0,
    connected: false,
  };
  #nextSeq = 1;
  #client: IngestClientType | undefined;
  #stream: ActiveStream | undefined;
  #loop: Promise<void> | undefined;
  #closing = false;
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  #dropping = false;
  readonly #onAbort = (): void => void this.shutdown({ flushTimeoutMs: 0 });

  constructor(options: ShipperOptions) {
    this.#o = resolveShipperOptions(options);
    this.agentId = this.#o.agentId;
    this.#backoff = new Backoff(this.#o.backoff, this.#o.random);
  }

  /** A snapshot of the counters (plain numbers, for metrics). */
  get stats(): Readonly<ShipperStats> {
    return { ...this.#stats, bufferBatches: this.#entries.size };
  }

  get maxMessageBytes(): number {
    return this.#o.maxMessageBytes;
  }

  /** Opens the stream (and keeps reopening it) until shutdown(). Reads TLS files now: errors are SHIPPER_TLS. */
  start(): void {
    if (this.#loop !== undefined || this.#closing) {
      throw new StellaError("SHIPPER_STATE", "shipper already started or shut down");
    }
    const o = this.#o;
    const credentials = credentialsFor(o.tls);
    const channelOptions: grpc.ChannelOptions = {
      // The channel's own reconnect backoff (default 1 s … 120 s) must not outlast ours, or a stream opened
      // after the operator is back would still fail fast for up to two minutes.
      "grpc.initial_reconnect_backoff_ms": o.backoff.initialMs,
      "grpc.max_reconnect_backoff_ms": o.backoff.maxMs,
      ...(o.tls.insecure !== true && o.tls.serverNameOverride !== undefined
        ? {
            "grpc.ssl_target_name_override": o.tls.serverNameOverride,
            "grpc.default_authority": o.tls.serverNameOverride,
          }
        : {}),
      ...o.channelOptions,
    };
    this.#client = new IngestClient(o.target, credentials, channelOptions);
    if (o.signal?.aborted) {
      this.#onAbort();
      return;
    }
    o.signal?.addEventListener("abort", this.#onAbort, { once: true });
    o.logger.info(
      { target: o.target, agentId: this.agentId, tls: o.tls.insecure !== true },
      "shipper started",
    );
    this.#loop = this.#run();
  }

  /**
   * Gives each piece of `body` the next seq and buffers it for sending. Returns the seqs assigned (one per
   * piece; several when the body encodes larger than maxMessageBytes). May be called before start(): batches wait
   * in the buffer. Throws SHIPPER_CLOSED after shutdown().
   */
  enqueue(body: ShipBody): number[] {
    if (this.#closing) throw new StellaError("SHIPPER_CLOSED", "shipper is shut down");
    const o = this.#o;
    // Frames go in the batch's frame table (docs/wire.md). The common case: the whole body fits in one message.
    const whole = tabulated(this.#header(0, body, body.droppedSamples), body.samples, body.binaries);
    const wholeBytes = encodedSize({ ...whole, seq: Number.MAX_SAFE_INTEGER });
    if (wholeBytes <= o.maxMessageBytes) {
      return this.#buffer([{ batch: whole, bytes: wholeBytes, sampleCount: sampleCountOf(body.samples) }]);
    }
    // Too large: pieces are cut by their inline size, which the table form does not exceed but for degenerate
    // frames (a 1-byte frame behind a 3-byte index): such a piece goes inline.
    const split = splitBody(o.node, this.agentId, body, o.maxMessageBytes);
    if (split.oversizeSamples > 0 || split.oversizeBinaries > 0) {
      this.#stats.oversizeSamples += split.oversizeSamples;
      this.#stats.oversizeBinaries += split.oversizeBinaries;
      this.#stats.droppedSamples += split.oversizeSampleCount;
      o.logger.warn(
        {
          oversizeSamples: split.oversizeSamples,
          oversizeBinaries: split.oversizeBinaries,
          maxMessageBytes: o.maxMessageBytes,
        },
        "dropped stacks or binaries larger than the message limit",
      );
    }
    return this.#buffer(
      split.pieces.map((piece) => {
        const inline = {
          ...this.#header(0, body, piece.droppedSamples),
          samples: piece.samples,
          binaries: piece.binaries,
        };
        const batch = tabulated(inline, piece.samples, piece.binaries);
        const bytes = encodedSize({ ...batch, seq: Number.MAX_SAFE_INTEGER });
        return bytes <= o.maxMessageBytes
          ? { batch, bytes, sampleCount: piece.sampleCount }
          : { batch: inline, bytes: piece.sizeBound ?? encodedSize(inline), sampleCount: piece.sampleCount };
      }),
    );
  }

  /** The batch fields other than samples, binaries and frames. */
  #header(seq: number, body: ShipBody, droppedSamples: number): Entry["batch"] {
    return {
      node: this.#o.node,
      agentId: this.agentId,
      seq,
      window: body.window,
      hz: body.hz,
      droppedSamples,
    };
  }

  /** Gives each batch the next seq and holds it (bytes: its encoded size, measured with the largest seq). */
  #buffer(batches: { batch: Entry["batch"]; bytes: number; sampleCount: number }[]): number[] {
    const seqs: number[] = [];
    for (const { batch, bytes, sampleCount } of batches) {
      const seq = this.#nextSeq++;
      batch.seq = seq;
      this.#makeRoom(bytes);
      this.#entries.set(seq, { batch, bytes, sampleCount, writes: 0 });
      this.#stats.bufferBytes += bytes;
      this.#stats.enqueued++;
      seqs.push(seq);
    }
    this.#pump();
    return seqs;
  }

  /** Resolves when no batch is waiting for an ack; rejects with SHIPPER_CLOSED if shut down first. */
  waitIdle(): Promise<void> {
    if (this.#entries.size === 0) return Promise.resolve();
    if (this.#stopping) return Promise.reject(new StellaError("SHIPPER_CLOSED", "shipper is shut down"));
    return new Promise((resolve, reject) => this.#idleWaiters.add({ resolve, reject }));
  }

  /** Waits up to `timeoutMs` for every batch to be acknowledged; true if the buffer emptied. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.#entries.size === 0) return true;
    const ac = new AbortController();
    try {
      await Promise.race([
        this.waitIdle(),
        sleep(timeoutMs, undefined, { signal: ac.signal }).then(() => undefined),
      ]);
    } catch {
      // SHIPPER_CLOSED: report whether the buffer is empty below.
    } finally {
      ac.abort(); // clears the timer
    }
    return this.#entries.size === 0;
  }

  /**
   * Stops accepting batches, waits up to flushTimeoutMs (default 5000) for outstanding acks, then closes the
   * stream and the channel. Batches still unacknowledged then are lost (logged). Idempotent.
   */
  shutdown(options: { flushTimeoutMs?: number } = {}): Promise<void> {
    this.#shutdown ??= this.#doShutdown(options.flushTimeoutMs ?? 5000);
    return this.#shutdown;
  }

  async #doShutdown(flushTimeoutMs: number): Promise<void> {
    this.#closing = true;
    const o = this.#o;
    o.signal?.removeEventListener("abort", this.#onAbort);
    if (this.#loop !== undefined && flushTimeoutMs > 0) await this.flush(flushTimeoutMs);
    this.#stopping = true;
    this.#abort.abort(new StellaError("SHIPPER_CLOSED", "shipper is shut down"));
    const stream = this.#stream;
    if (stream !== undefined && !stream.ended) {
      if (this.#entries.size === 0) {
        // Nothing outstanding: half-close and let the operator end the call cleanly.
        stream.halfClosed = true;
        stream.call.end();
        const ac = new AbortController();
        await Promise.race([
          stream.done,
          sleep(o.closeGraceMs, undefined, { signal: ac.signal }).catch(noop),
        ]);
        ac.abort();
      }
      if (!stream.ended) stream.call.cancel();
    }
    await this.#loop;
    this.#client?.close();
    this.#stats.connected = false;
    const unacked = this.#entries.size;
    if (unacked > 0) {
      o.logger.warn(
        { unackedBatches: unacked, unackedBytes: this.#stats.bufferBytes },
        "shipper shut down with unacknowledged batches",
      );
    }
    const err = new StellaError("SHIPPER_CLOSED", `shipper shut down with ${unacked} unacknowledged batches`);
    for (const w of this.#idleWaiters) w.reject(err);
    this.#idleWaiters.clear();
    o.logger.info({ ...this.stats }, "shipper stopped");
  }

  /** Drops the oldest unacknowledged batches until `bytes` more fit under maxBufferBytes. */
  #makeRoom(bytes: number): void {
    const max = this.#o.maxBufferBytes;
    while (this.#stats.bufferBytes + bytes > max) {
      const oldest = this.#entries.values().next();
      if (oldest.done) break;
      const entry = oldest.value;
      this.#entries.delete(entry.batch.seq);
      this.#stats.bufferBytes -= entry.bytes;
      this.#stats.droppedBatches++;
      this.#stats.droppedSamples += entry.sampleCount;
      this.#stats.droppedBytes += entry.bytes;
      if (!this.#dropping) {
        // Once per episode (until the next ack), not per batch.
        this.#dropping = true;
        this.#o.logger.warn(
          { seq: entry.batch.seq, maxBufferBytes: max },
          "send buffer full: dropping the oldest unacknowledged batches",
        );
      }
    }
  }

  async #run(): Promise<void> {
    let first = true;
    while (!this.#stopping) {
      if (!first) this.#stats.reconnects++;
      first = false;
      const stream = this.#open();
      await stream.done;
      if (this.#stopping) break;
      const delayMs = this.#backoff.next();
      this.#logStreamEnd(stream, delayMs);
      try {
        await this.#o.delayFn(delayMs, this.#abort.signal);
      } catch (err) {
        if (this.#abort.signal.aborted) break; // shutdown
        // A broken injected delayFn must not turn into a tight reconnect loop.
        this.#o.logger.error({ err }, "delayFn failed; using the default delay");
        try {
          await defaultDelay(delayMs, this.#abort.signal);
        } catch {
          break;
        }
      }
    }
  }

  #open(): ActiveStream {
    const client = this.#client;
    if (client === undefined) throw new StellaError("SHIPPER_STATE", "shipper not started");
    const call = client.streamStacks();
    const first = this.#entries.keys().next();
    let markDone = noop;
    const stream: ActiveStream = {
      call,
      nextSeq: first.done ? this.#nextSeq : first.value,
      waitingDrain: false,
      ended: false,
      halfClosed: false,
      done: new Promise<void>((resolve) => (markDone = resolve)),
    };
    this.#stream = stream;
    call.on("metadata", () => {
      if (!stream.ended) this.#stats.connected = true;
    });
    // Acks count whichever stream they arrive on, even after it ended: the operator has stored the batch.
    call.on("data", (ack: Ack__Output) => {
      this.#onAck(ack);
    });
    call.on("error", (err: grpc.ServiceError) => {
      stream.error = err;
    });
    call.on("drain", () => {
      stream.waitingDrain = false;
      this.#pump();
    });
    call.on("status", (status: grpc.StatusObject) => {
      stream.ended = true;
      if (status.code !== grpc.status.OK) this.#stats.streamErrors++;
      if (this.#stream === stream) {
        this.#stream = undefined;
        this.#stats.connected = false;
      }
      markDone();
    });
    this.#pump();
    return stream;
  }

  /** Writes batches not yet written on the current stream, in seq order, until gRPC asks us to wait. */
  #pump(): void {
    const stream = this.#stream;
    if (stream === undefined || stream.ended || stream.halfClosed || stream.waitingDrain) return;
    while (stream.nextSeq < this.#nextSeq) {
      const entry = this.#entries.get(stream.nextSeq++);
      if (entry === undefined) continue; // acked or dropped meanwhile
      if (entry.writes === 0) this.#stats.sent++;
      else this.#stats.resent++;
      entry.writes++;
      if (!stream.call.write(entry.batch)) {
        stream.waitingDrain = true;
        return;
      }
    }
  }

  #onAck(ack: Ack__Output): void {
    const entry = this.#entries.get(ack.seq);
    if (entry === undefined) {
      this.#stats.unknownAcks++;
      this.#o.logger.debug({ seq: ack.seq }, "ack for a seq not in the buffer: ignored");
      return;
    }
    this.#entries.delete(ack.seq);
    this.#stats.bufferBytes -= entry.bytes;
    if (ack.rejected !== "") {
      // Refused for good (malformed): resending would be refused again.
      this.#stats.rejected++;
      this.#o.logger.warn({ seq: ack.seq, reason: ack.rejected }, "the operator rejected a batch; dropped");
    } else this.#stats.acked++;
    this.#dropping = false;
    this.#backoff.reset();
    if (this.#stream !== undefined && !this.#stream.ended) this.#stats.connected = true;
    if (this.#entries.size === 0) {
      for (const w of this.#idleWaiters) w.resolve();
      this.#idleWaiters.clear();
    }
  }

  #logStreamEnd(stream: ActiveStream, delayMs: number): void {
    const log = this.#o.logger;
    const unacked = this.#entries.size;
    const err = stream.error;
    if (err === undefined) {
      log.info({ delayMs, unacked }, "ingest stream closed by the operator; reconnecting");
      return;
    }
    const fields = { err, grpcCode: statusName(err.code), delayMs, unacked };
    if (err.code === grpc.status.RESOURCE_EXHAUSTED && /larger than max/i.test(err.details)) {
      this.#stats.rejectedTooLarge++;
      log.error(
        { ...fields, maxMessageBytes: this.#o.maxMessageBytes },
        "the operator rejected a message larger than its max receive message length: " +
          "set the shipper's maxMessageBytes below the operator's limit (or raise the limit)",
      );
    } else if (err.code === grpc.status.UNAVAILABLE) {
      log.warn(fields, "ingest server unavailable; reconnecting");
    } else {
      log.error(fields, "ingest stream failed; reconnecting");
    }
  }
}

/** A batch with `samples` in frame-table form. */
function tabulated(header: Entry["batch"], samples: Sample[], binaries: Binary[]): Entry["batch"] {
  const t = tabulate(samples);
  return { ...header, samples: t.samples, frames: t.frames, binaries };
}

// The ingest write-ahead log: every stored StackBatch, in arrival order, in a directory (a volume in the
// cluster), so an operator restart rebuilds its de-duplication state and hot-symbol index without losing a
// batch it acknowledged.
//
// DURABILITY RULE: a batch is acknowledged to its agent only after its record is on disk — `append()` resolves
// after the write AND the fsync (fdatasync) covering it have completed. A crash before that loses only batches
// nobody acknowledged; the agent still holds them and resends them after it reconnects.
//
// Layout: segments `wal-<16-digit index>.log`, written in index order, one open for appends at a time. A
// segment is a sequence of records:
//
//   u32 LE  length of the payload (bytes)
//   u32 LE  CRC-32 (zlib) of the payload
//   payload: the StackBatch, protobuf-encoded exactly as on the wire
//
// Group commit: appends that arrive while a write+fsync is in flight are queued and go to disk together in
// the next single writev + fsync, so a burst of N batches costs ~2 fsyncs, not N.
//
// Replay reads every intact record in order. A torn or corrupt record (short header, impossible length, short
// payload, CRC mismatch, undecodable payload) ends its segment: the segment is truncated there, the loss is
// counted (`stats.tornRecords`, `stats.truncatedBytes`) and logged, and replay goes on with the next segment
// (only the last segment can be torn by a crash; damage inside an older one is media corruption and must not
// hide the intact, acknowledged segments after it).
//
// Retention: `compact(beforeMs)` deletes whole closed segments whose newest batch window ended before beforeMs.
import { crc32 } from "node:zlib";
import { mkdir, open, readdir, rm, stat, truncate } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { StellaError } from "../../core/errors.ts";
import { ingestService } from "../../proto/evidence.ts";
import { decodeStackBatch } from "./decode.ts";
import type { StackBatch, StackBatch__Output } from "../../proto/evidence.ts";

export type WalErrorCode = "WAL_CLOSED" | "WAL_STATE" | "WAL_IO" | "WAL_CONFIG";

/** The part of a pino logger the WAL uses. */
export interface WalLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface WalOptions {
  dir: string;
  /** Start a new segment once the current one holds this many bytes. Default 64 MiB. */
  segmentBytes?: number;
  /** fsync each group commit (default true). false only for benchmarks: acknowledged batches may be lost. */
  fsync?: boolean;
  /** Largest payload replay accepts; a larger length field is treated as corruption. Default 64 MiB. */
  maxRecordBytes?: number;
  logger?: WalLogger;
  /** Called after each group commit's fsync with its duration (seconds), bytes and records. */
  onSync?: (seconds: number, bytes: number, records: number) => void;
}

export const WAL_DEFAULTS = {
  segmentBytes: 64 * 1024 * 1024,
  fsync: true,
  maxRecordBytes: 64 * 1024 * 1024,
} as const;

export const RECORD_HEADER_BYTES = 8;

export interface WalStats {
  segments: number;
  /** Bytes in all segments. */
  bytes: number;
  /** Records appended since open. */
  appended: number;
  /** Group commits (write + fsync) since open. */
  commits: number;
  /** Records replayed. */
  replayed: number;
  /** Torn/corrupt records cut off by replay. */
  tornRecords: number;
  /** Bytes cut off by replay. */
  truncatedBytes: number;
  /** Segments deleted by compact(). */
  compactedSegments: number;
}

interface Segment {
  index: number;
  path: string;
  bytes: number;
  records: number;
  /** Newest window end (ms) of the batches in it; 0 when empty. */
  maxWindowEndMs: number;
}

interface Pending {
  buf: Buffer;
  windowEndMs: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const noop = (): void => undefined;
const SILENT: WalLogger = { info: noop, warn: noop, error: noop };
const SEGMENT_NAME = /^wal-(\d{16})\.log$/;
const segmentName = (index: number): string => `wal-${String(index).padStart(16, "0")}.log`;

const serialize = ingestService.StreamStacks.requestSerialize;

/** The protobuf encoding of a batch, exactly as grpc-js would put it on the wire. */
export function encodeBatch(batch: StackBatch): Buffer {
  return serialize(batch);
}

/** Decodes a record payload with the same options as the gRPC server (camelCase, longs as numbers, defaults). */
export function decodeBatch(payload: Buffer): StackBatch__Output {
  return decodeStackBatch(payload);
}

/** One framed record: header + payload. */
export function frameRecord(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

export class WriteAheadLog {
  readonly dir: string;
  readonly #segmentBytes: number;
  readonly #fsync: boolean;
  readonly #maxRecordBytes: number;
  readonly #log: WalLogger;
  readonly #onSync: WalOptions["onSync"];
  readonly #segments: Segment[] = [];
  #fh: FileHandle | undefined;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #state: "new" | "replayed" | "open" | "closed" = "new";
  readonly #stats: WalStats = {
    segments: 0,
    bytes: 0,
    appended: 0,
    commits: 0,
    replayed: 0,
    tornRecords: 0,
    truncatedBytes: 0,
    compactedSegments: 0,
  };

  constructor(options: WalOptions) {
    this.dir = options.dir;
    this.#segmentBytes = options.segmentBytes ?? WAL_DEFAULTS.segmentBytes;
    this.#fsync = options.fsync ?? WAL_DEFAULTS.fsync;
    this.#maxRecordBytes = options.maxRecordBytes ?? WAL_DEFAULTS.maxRecordBytes;
    this.#log = options.logger ?? SILENT;
    this.#onSync = options.onSync;
    if (!Number.isSafeInteger(this.#segmentBytes) || this.#segmentBytes <= 0) {
      throw new StellaError("WAL_CONFIG", `wal segmentBytes must be a positive integer`);
    }
  }

  get stats(): Readonly<WalStats> {
    return {
      ...this.#stats,
      segments: this.#segments.length,
      bytes: this.#segments.reduce((s, seg) => s + seg.bytes, 0),
    };
  }

  /**
   * Reads every intact record in order, calling `fn` with each batch (and its window end), truncating torn or
   * corrupt tails. Must be called once, before the first append (it also opens the log for appending).
   */
  async replay(fn: (batch: StackBatch__Output) => void): Promise<number> {
    if (this.#state !== "new") throw new StellaError("WAL_STATE", "wal replay() must come first, once");
    await mkdir(this.dir, { recursive: true });
    const names = (await readdir(this.dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
    let replayed = 0;
    for (const name of names) {
      const index = Number(SEGMENT_NAME.exec(name)?.[1]);
      const path = join(this.dir, name);
      const seg: Segment = { index, path, bytes: 0, records: 0, maxWindowEndMs: 0 };
      const fh = await open(path, "r");
      let data: Buffer;
      try {
        data = await fh.readFile();
      } finally {
        await fh.close();
      }
      let off = 0;
      let torn: string | undefined;
      while (off < data.length) {
        if (data.length - off < RECORD_HEADER_BYTES) {
          torn = "short header";
          break;
        }
        const len = data.readUInt32LE(off);
        const crc = data.readUInt32LE(off + 4);
        if (len > this.#maxRecordBytes) {
          torn = `record length ${len} above ${this.#maxRecordBytes}`;
          break;
        }
        if (data.length - off - RECORD_HEADER_BYTES < len) {
          torn = "short payload";
          break;
        }
        const payload = data.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + len);
        if (crc32(payload) !== crc) {
          torn = "CRC mismatch";
          break;
        }
        let batch: StackBatch__Output;
        try {
          batch = decodeBatch(payload);
        } catch {
          torn = "undecodable payload";
          break;
        }
        off += RECORD_HEADER_BYTES + len;
        seg.records++;
        seg.maxWindowEndMs = Math.max(seg.maxWindowEndMs, batch.window?.endUnixMs ?? 0);
        replayed++;
        fn(batch);
      }
      if (torn !== undefined) {
        const cut = data.length - off;
        this.#stats.tornRecords++;
        this.#stats.truncatedBytes += cut;
        this.#log.warn(
          { segment: name, offset: off, truncatedBytes: cut, reason: torn },
          "wal: torn or corrupt record; truncating the segment there",
        );
        await truncate(path, off);
      }
      seg.bytes = off;
      // An empty segment (a start that stored nothing, or one torn at its first record) is dropped.
      if (off === 0) await rm(path, { force: true });
      else this.#segments.push(seg);
    }
    this.#stats.replayed += replayed;
    // Appends go to a fresh segment: a replayed segment is never appended to, so its bytes stay as verified.
    await this.#openSegment((this.#segments.at(-1)?.index ?? 0) + 1);
    this.#state = "open";
    this.#log.info(
      { segments: this.#segments.length, records: replayed, tornRecords: this.#stats.tornRecords },
      "wal replayed",
    );
    return replayed;
  }

  /**
   * Appends one batch and resolves once its record is written and fsync'd (group commit). `encoded` may pass
   * the batch's wire bytes as received, saving a re-encode; they must decode to `batch`.
   */
  append(batch: StackBatch__Output | StackBatch, encoded?: Uint8Array): Promise<void> {
    if (this.#state !== "open") {
      return Promise.reject(
        new StellaError(this.#state === "closed" ? "WAL_CLOSED" : "WAL_STATE", `wal is ${this.#state}`),
      );
    }
    const buf = frameRecord(encoded ?? encodeBatch(batch));
    const endMs = batch.window?.endUnixMs;
    const windowEndMs = typeof endMs === "number" ? endMs : Number(endMs ?? 0);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ buf, windowEndMs, resolve, reject });
      this.#flushing ??= this.#flushLoop();
    });
  }

  /** Writes queued records in groups until the queue is empty. */
  async #flushLoop(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue;
        this.#queue = [];
        try {
          await this.#commit(group);
          for (const p of group) p.resolve();
        } catch (cause) {
          const err = new StellaError("WAL_IO", "wal write failed", { cause });
          this.#log.error({ err }, "wal: write or fsync failed");
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #commit(group: Pending[]): Promise<void> {
    let bytes = 0;
    for (const p of group) bytes += p.buf.length;
    let seg = this.#segments.at(-1);
    if (seg === undefined || this.#fh === undefined) throw new StellaError("WAL_STATE", "no open segment");
    if (seg.bytes > 0 && seg.bytes + bytes > this.#segmentBytes) {
      await this.#openSegment(seg.index + 1);
      seg = this.#segments.at(-1);
      if (seg === undefined || this.#fh === undefined) throw new StellaError("WAL_STATE", "no open segment");
    }
    const fh = this.#fh;
    const start = process.hrtime.bigint();
    // writev may write partially; loop until every byte is out.
    let bufs = group.map((p) => p.buf);
    let position = seg.bytes;
    while (bufs.length > 0) {
      const { bytesWritten } = await fh.writev(bufs, position);
      position += bytesWritten;
      let left = bytesWritten;
      while (bufs.length > 0 && left >= (bufs[0]?.length ?? 0)) {
        left -= bufs[0]?.length ?? 0;
        bufs = bufs.slice(1);
      }
      if (left > 0 && bufs[0] !== undefined) bufs = [bufs[0].subarray(left), ...bufs.slice(1)];
    }
    if (this.#fsync) await fh.datasync();
    seg.bytes = position;
    seg.records += group.length;
    for (const p of group) seg.maxWindowEndMs = Math.max(seg.maxWindowEndMs, p.windowEndMs);
    this.#stats.appended += group.length;
    this.#stats.commits++;
    this.#onSync?.(Number(process.hrtime.bigint() - start) / 1e9, bytes, group.length);
  }

  async #openSegment(index: number): Promise<void> {
    const previous = this.#fh;
    const path = join(this.dir, segmentName(index));
    this.#fh = await open(path, "wx");
    this.#segments.push({ index, path, bytes: 0, records: 0, maxWindowEndMs: 0 });
    await previous?.close();
    // The new file's directory entry must be durable before records in it are acknowledged.
    if (this.#fsync) await syncDir(this.dir);
  }

  /**
   * Reads every committed record again, in order (the log is the index's source of truth: after a new
   * FuncProof names more frames, the index is rebuilt from it). Only bytes committed when the call starts
   * are read, so a caller that holds back folds of later appends until this resolves counts each once.
   */
  async reread(fn: (batch: StackBatch__Output) => void): Promise<number> {
    if (this.#state !== "open") throw new StellaError("WAL_STATE", "wal reread() needs an open log");
    const snapshot = this.#segments.map((seg) => ({ path: seg.path, bytes: seg.bytes }));
    let n = 0;
    for (const seg of snapshot) {
      if (seg.bytes === 0) continue;
      const fh = await open(seg.path, "r");
      let data: Buffer;
      try {
        data = Buffer.alloc(seg.bytes);
        await fh.read(data, 0, seg.bytes, 0);
      } catch (err) {
        // Compacted away meanwhile: its batches are past retention anyway.
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      } finally {
        await fh.close();
      }
      let off = 0;
      while (off + RECORD_HEADER_BYTES <= data.length) {
        const len = data.readUInt32LE(off);
        const payload = data.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + len);
        if (payload.length !== len || crc32(payload) !== data.readUInt32LE(off + 4)) break;
        off += RECORD_HEADER_BYTES + len;
        fn(decodeBatch(payload));
        n++;
      }
    }
    return n;
  }

  /**
   * Deletes closed segments whose newest batch window ended before `beforeMs` (the open segment is kept).
   * Returns the number deleted. Their batches' (agentId, seq) leave the de-duplication state rebuilt at the
   * next replay; retention must therefore be far longer than any agent keeps an unacknowledged batch.
   */
  async compact(beforeMs: number): Promise<number> {
    if (this.#state !== "open") throw new StellaError("WAL_STATE", `wal is ${this.#state}`);
    const open = this.#segments.at(-1);
    const doomed = this.#segments.filter((s) => s !== open && s.maxWindowEndMs < beforeMs);
    for (const s of doomed) {
      await rm(s.path, { force: true });
      this.#segments.splice(this.#segments.indexOf(s), 1);
      this.#stats.compactedSegments++;
    }
    if (doomed.length > 0) {
      if (this.#fsync) await syncDir(this.dir);
      this.#log.info({ segments: doomed.length, beforeMs }, "wal compacted");
    }
    return doomed.length;
  }

  /** Waits for queued appends to reach disk, then closes the file. Later appends reject with WAL_CLOSED. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    while (this.#flushing !== undefined) await this.#flushing;
    await this.#fh?.close();
    this.#fh = undefined;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Sum of segment file sizes on disk (for tests and tools). */
export async function walDiskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const n of await readdir(dir)) if (SEGMENT_NAME.test(n)) total += (await stat(join(dir, n))).size;
  return total;
}

/**
 * delta.bin: encoding and hostile-input parsing. Byte layout in docs/delta-format.md.
 * Parsing checks every length against the file, the caps and the other fields before it allocates or
 * decompresses anything, and every op against the base size, the target size and the data areas.
 */
import { crc32, constants as zc, zstdCompressSync, zstdDecompressSync } from "node:zlib";

import { type CdcParams, validateCdcParams } from "./cdc.ts";
import { DeltaError } from "./errors.ts";
import { ByteReader, ByteWriter } from "./varint.ts";

export const MAGIC = Uint8Array.of(0x89, 0x53, 0x44, 0x45, 0x4c, 0x54, 0x41, 0x0a); // "\x89SDELTA\n"
export const VERSION = 1;
export const CODEC_ZSTD = 1;
export const HEADER_SIZE = 184;
export const CHUNK_ENTRY_SIZE = 48;
/** The literal area is compressed with the base as a raw-content zstd dictionary. */
export const LIT_DICT_BASE = 1;
/** ADD-rel bytes are differences from x86-64 rel32-predicted base bytes (rel32.ts). */
export const PREDICT_X86_REL32 = 1;

/** Op kinds. `add-rel` is ADD with its bytes stored as differences from base[offset…] (mod 256). */
export type DeltaOp =
  | { op: "copy-chunk"; chunk: number }
  | { op: "copy-range"; offset: number; length: number }
  | { op: "add"; length: number }
  | { op: "add-rel"; offset: number; length: number };

const TAG = { "copy-chunk": 0, "copy-range": 1, add: 2, "add-rel": 3 } as const;

/**
 * A run of consecutive whole base chunks, named by the SHA-256 of their concatenated raw ids: one
 * table entry per run instead of 32 bytes per chunk, and apply still recomputes and checks every id.
 */
export interface ChunkRef {
  /** SHA-256(id[index] || … || id[index + count − 1]), ids as raw 32-byte digests. */
  idsDigest: Uint8Array;
  /** Index of the first chunk in the base's CDC chunk list. */
  index: number;
  count: number;
  /** Total bytes of the run. */
  length: number;
}

/** What an op stream copies and adds, counted (the delta summary and the manifest's `ops` share it). */
export interface OpCounts {
  /** COPY chunk ops; each copies a run of consecutive whole base chunks. */
  copyChunkOps: number;
  /** Base chunks copied whole by those ops. */
  copiedChunks: number;
  copyRangeOps: number;
  /** ADD ops of both kinds (literal and relative). */
  addOps: number;
  /** ADD ops whose bytes are differences from an aligned base range. */
  addRelOps: number;
  /** Bytes produced by COPY ops (chunks and ranges). */
  copiedBytes: number;
  /** Bytes produced by ADD ops of both kinds. */
  addedBytes: number;
  /** Of addedBytes, those from ADD-rel. */
  addRelBytes: number;
}

export function countOps(ops: readonly DeltaOp[], chunks: readonly ChunkRef[]): OpCounts {
  const n: OpCounts = {
    copyChunkOps: 0,
    copiedChunks: 0,
    copyRangeOps: 0,
    addOps: 0,
    addRelOps: 0,
    copiedBytes: 0,
    addedBytes: 0,
    addRelBytes: 0,
  };
  for (const op of ops) {
    switch (op.op) {
      case "copy-chunk":
        n.copyChunkOps++;
        n.copiedChunks += chunks[op.chunk]?.count ?? 0;
        n.copiedBytes += chunks[op.chunk]?.length ?? 0;
        break;
      case "copy-range":
        n.copyRangeOps++;
        n.copiedBytes += op.length;
        break;
      case "add":
        n.addOps++;
        n.addedBytes += op.length;
        break;
      case "add-rel":
        n.addOps++;
        n.addRelOps++;
        n.addedBytes += op.length;
        n.addRelBytes += op.length;
        break;
    }
  }
  return n;
}

export interface DeltaModel {
  cdc: CdcParams;
  zstdLevel: number;
  literalDict: 0 | 1;
  /** 0: ADD-rel is relative to the raw base bytes; 1: to the x86-64 rel32 prediction. */
  predictor: 0 | 1;
  baseSize: number;
  targetSize: number;
  baseSha256: Uint8Array;
  targetSha256: Uint8Array;
  chunks: ChunkRef[];
  ops: DeltaOp[];
}

/** A parsed delta: the model plus its still-compressed literal area (it needs the base to decode). */
export interface ParsedDelta extends DeltaModel {
  literalRawSize: number;
  literalCompressed: Uint8Array;
  diff: Uint8Array;
  sizes: { ops: number; literal: number; diff: number };
}

export interface ParseLimits {
  /** Largest target accepted. Default 2 GiB. */
  maxOutputBytes?: number;
  /** Largest total of ADD and ADD-rel bytes accepted. Default: maxOutputBytes. */
  maxAddBytes?: number;
  /** Most ops accepted. Default 2^26. */
  maxOps?: number;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 2 ** 31;
export const DEFAULT_MAX_OPS = 2 ** 26;

function zstd(data: Uint8Array, level: number, dict?: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  return zstdCompressSync(data, {
    params: {
      [zc.ZSTD_c_compressionLevel]: level,
      [zc.ZSTD_c_windowLog]: 27,
      [zc.ZSTD_c_checksumFlag]: 1,
      [zc.ZSTD_c_contentSizeFlag]: 1,
    },
    ...(dict === undefined ? {} : { dictionary: dict }),
  });
}

/** Decompresses exactly `raw` bytes or throws DELTA_MALFORMED; never produces more than `raw`. */
export function unzstd(comp: Uint8Array, raw: number, where: string, dict?: Uint8Array): Uint8Array {
  if (raw === 0) {
    if (comp.length !== 0)
      throw new DeltaError("DELTA_MALFORMED", `${where}: data present for an empty area`);
    return new Uint8Array(0);
  }
  let out: Uint8Array;
  try {
    out = zstdDecompressSync(comp, {
      maxOutputLength: raw,
      ...(dict === undefined ? {} : { dictionary: dict }),
    });
  } catch (err) {
    throw new DeltaError(
      "DELTA_MALFORMED",
      `${where}: zstd data does not decompress to the declared ${raw} bytes (${(err as Error).message})`,
      { cause: err },
    );
  }
  if (out.length !== raw) {
    throw new DeltaError(
      "DELTA_MALFORMED",
      `${where}: decompressed to ${out.length} bytes, header says ${raw}`,
    );
  }
  return out;
}

/** Serialises ops: tag = length·4 + kind (copy-chunk: index·4), offsets zigzag-relative to a cursor. */
function encodeOps(ops: DeltaOp[]): Uint8Array {
  const w = new ByteWriter();
  let cursor = 0;
  for (const o of ops) {
    if (o.op === "copy-chunk") {
      w.uvarint(o.chunk * 4 + TAG["copy-chunk"]);
      continue;
    }
    w.uvarint(o.length * 4 + TAG[o.op]);
    if (o.op !== "add") {
      w.svarint(o.offset - cursor);
      cursor = o.offset + o.length;
    }
  }
  return w.bytes();
}

export interface EncodedDelta {
  bin: Uint8Array;
  literalCompressedSize: number;
  diffCompressedSize: number;
}

/** delta.bin bytes for `m` with the given raw literal and diff areas. */
export function encodeDelta(
  m: DeltaModel,
  literal: Uint8Array,
  diff: Uint8Array,
  base: Uint8Array,
  /** Tests only: op stream bytes to use instead of encoding m.ops (hostile-input cases). */
  opsOverride?: Uint8Array,
): EncodedDelta {
  const opsRaw = opsOverride ?? encodeOps(m.ops);
  const opsComp = zstd(opsRaw, m.zstdLevel);
  const litComp = zstd(literal, m.zstdLevel, m.literalDict === LIT_DICT_BASE ? base : undefined);
  const diffComp = zstd(diff, m.zstdLevel);
  const table = Buffer.alloc(m.chunks.length * CHUNK_ENTRY_SIZE);
  m.chunks.forEach((c, i) => {
    table.set(c.idsDigest, i * CHUNK_ENTRY_SIZE);
    table.writeUInt32LE(c.index, i * CHUNK_ENTRY_SIZE + 32);
    table.writeUInt32LE(c.count, i * CHUNK_ENTRY_SIZE + 36);
    table.writeBigUInt64LE(BigInt(c.length), i * CHUNK_ENTRY_SIZE + 40);
  });

  const h = Buffer.alloc(HEADER_SIZE);
  h.set(MAGIC, 0);
  h[8] = VERSION;
  h[9] = CODEC_ZSTD;
  h[10] = m.literalDict;
  h[11] = 1; // gear table id
  h.writeUInt32LE(m.cdc.minSize, 12);
  h.writeUInt32LE(m.cdc.avgSize, 16);
  h.writeUInt32LE(m.cdc.maxSize, 20);
  h[24] = m.cdc.normLevel;
  h[25] = m.zstdLevel;
  h[26] = m.predictor;
  h.writeBigUInt64LE(BigInt(m.baseSize), 28);
  h.writeBigUInt64LE(BigInt(m.targetSize), 36);
  h.set(m.baseSha256, 44);
  h.set(m.targetSha256, 76);
  h.writeUInt32LE(m.chunks.length, 108);
  h.writeUInt32LE(m.ops.length, 112);
  const lens = [opsRaw.length, opsComp.length, literal.length, litComp.length, diff.length, diffComp.length];
  lens.forEach((v, i) => h.writeBigUInt64LE(BigInt(v), 116 + 8 * i));
  h.writeUInt32LE(crc32(table), 164);
  h.writeUInt32LE(crc32(opsComp), 168);
  h.writeUInt32LE(crc32(litComp), 172);
  h.writeUInt32LE(crc32(diffComp), 176);
  h.writeUInt32LE(crc32(h.subarray(0, 180)), 180);
  const bin = Buffer.concat([h, table, opsComp, litComp, diffComp]);
  return {
    bin: new Uint8Array(bin.buffer, bin.byteOffset, bin.length),
    literalCompressedSize: litComp.length,
    diffCompressedSize: diffComp.length,
  };
}

/**
 * Parses and validates delta.bin named `name` (for messages). Everything that can be checked without
 * the base is checked here; applyDelta checks the rest (base digest, chunk ids, the result).
 */
export function parseDelta(bin: Uint8Array, name: string, limits: ParseLimits = {}): ParsedDelta {
  const maxOut = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const maxAdd = limits.maxAddBytes ?? maxOut;
  const maxOps = limits.maxOps ?? DEFAULT_MAX_OPS;
  const bad = (
    field: string,
    why: string,
    code: "DELTA_MALFORMED" | "DELTA_TOO_LARGE" = "DELTA_MALFORMED",
  ): never => {
    throw new DeltaError(code, `${name}: ${field}: ${why}`);
  };
  if (bin.length < HEADER_SIZE)
    bad("header", `file is ${bin.length} bytes, shorter than the ${HEADER_SIZE}-byte header`);
  const h = Buffer.from(bin.buffer, bin.byteOffset, HEADER_SIZE);
  for (let i = 0; i < MAGIC.length; i++)
    if (h[i] !== MAGIC[i]) bad("magic", "not a Stella delta (bad magic bytes)");
  const headerCrc = h.readUInt32LE(180);
  if (crc32(h.subarray(0, 180)) !== headerCrc) {
    throw new DeltaError(
      "DELTA_CHECKSUM",
      `${name}: header: CRC-32 mismatch (header bytes 0-179 are corrupted)`,
    );
  }
  if (h[8] !== VERSION) bad("version", `unsupported version ${h[8]}, this reader supports ${VERSION}`);
  if (h[9] !== CODEC_ZSTD) bad("codec", `unknown codec ${h[9]}, only 1 (zstd) is defined`);
  if (h[10] !== 0 && h[10] !== LIT_DICT_BASE) bad("literal_dict", `unknown value ${h[10]}, expected 0 or 1`);
  if (h[11] !== 1) bad("gear_table", `unknown gear table ${h[11]}, only 1 is defined`);
  if (h[26] !== 0 && h[26] !== PREDICT_X86_REL32) bad("predictor", `unknown value ${h[26]}, expected 0 or 1`);
  if (h[27] !== 0) bad("reserved", "byte 27 must be zero");
  const cdc: CdcParams = {
    minSize: h.readUInt32LE(12),
    avgSize: h.readUInt32LE(16),
    maxSize: h.readUInt32LE(20),
    normLevel: h[24] ?? 0,
  };
  try {
    validateCdcParams(cdc, `${name}: cdc`);
  } catch (err) {
    throw new DeltaError("DELTA_MALFORMED", (err as Error).message);
  }
  const u64 = (off: number, field: string): number => {
    const v = h.readBigUInt64LE(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(field, `${v} exceeds 2^53-1`);
    return Number(v);
  };
  const baseSize = u64(28, "base_size");
  const targetSize = u64(36, "target_size");
  if (targetSize > maxOut)
    bad("target_size", `${targetSize} bytes exceeds the output cap of ${maxOut}`, "DELTA_TOO_LARGE");
  const chunkCount = h.readUInt32LE(108);
  const opCount = h.readUInt32LE(112);
  if (opCount > maxOps) bad("op_count", `${opCount} exceeds the cap of ${maxOps}`, "DELTA_TOO_LARGE");
  if (opCount > targetSize)
    bad("op_count", `${opCount} ops cannot build ${targetSize} bytes (each op writes at least one)`);
  if (chunkCount > opCount) bad("chunk_count", `${chunkCount} exceeds op_count ${opCount}`);
  const opsRaw = u64(116, "ops_raw");
  const opsComp = u64(124, "ops_zstd");
  const litRaw = u64(132, "lit_raw");
  const litComp = u64(140, "lit_zstd");
  const diffRaw = u64(148, "diff_raw");
  const diffComp = u64(156, "diff_zstd");
  if (opsRaw > opCount * 16) bad("ops_raw", `${opsRaw} bytes is more than 16 per op for ${opCount} ops`);
  if (litRaw + diffRaw > targetSize)
    bad("lit_raw+diff_raw", `${litRaw + diffRaw} exceeds target_size ${targetSize}`);
  if (litRaw + diffRaw > maxAdd) {
    bad(
      "lit_raw+diff_raw",
      `${litRaw + diffRaw} ADD bytes exceeds the ADD cap of ${maxAdd}`,
      "DELTA_TOO_LARGE",
    );
  }
  const tableLen = chunkCount * CHUNK_ENTRY_SIZE;
  const total = HEADER_SIZE + tableLen + opsComp + litComp + diffComp;
  if (bin.length !== total) {
    bad("length", `file is ${bin.length} bytes, header declares ${total} (truncated or trailing data)`);
  }
  let at = HEADER_SIZE;
  const section = (len: number, crcOff: number, field: string): Uint8Array => {
    const s = bin.subarray(at, at + len);
    at += len;
    if (crc32(s) !== h.readUInt32LE(crcOff)) {
      throw new DeltaError("DELTA_CHECKSUM", `${name}: ${field}: CRC-32 mismatch (section corrupted)`);
    }
    return s;
  };
  const table = section(tableLen, 164, "chunk table");
  const opsZ = section(opsComp, 168, "op stream");
  const literalCompressed = section(litComp, 172, "ADD literal area");
  const diffZ = section(diffComp, 176, "ADD diff area");

  const chunks: ChunkRef[] = [];
  const tv = Buffer.from(table.buffer, table.byteOffset, table.length);
  for (let i = 0; i < chunkCount; i++) {
    const o = i * CHUNK_ENTRY_SIZE;
    const index = tv.readUInt32LE(o + 32);
    const count = tv.readUInt32LE(o + 36);
    const length = Number(tv.readBigUInt64LE(o + 40));
    if (count === 0 || length < count || length > count * cdc.maxSize || length > baseSize) {
      bad(
        `chunk table[${i}]`,
        `run of ${count} chunks, ${length} bytes: not within [count, count*max_size=${count * cdc.maxSize}] and base_size ${baseSize}`,
      );
    }
    chunks.push({ idsDigest: table.slice(o, o + 32), index, count, length });
  }

  const opsBytes = unzstd(opsZ, opsRaw, `${name}: op stream`);
  const ops = parseOps(opsBytes, opCount, { name, baseSize, targetSize, chunks, litRaw, diffRaw });
  const diff = unzstd(diffZ, diffRaw, `${name}: ADD diff area`);
  return {
    cdc,
    zstdLevel: h[25] ?? 0,
    literalDict: h[10] as 0 | 1,
    predictor: h[26] as 0 | 1,
    baseSize,
    targetSize,
    baseSha256: bin.slice(44, 76),
    targetSha256: bin.slice(76, 108),
    chunks,
    ops,
    literalRawSize: litRaw,
    literalCompressed,
    diff,
    sizes: { ops: opsComp, literal: litComp, diff: diffComp },
  };
}

interface OpBounds {
  name: string;
  baseSize: number;
  targetSize: number;
  chunks: ChunkRef[];
  litRaw: number;
  diffRaw: number;
}

/** Decodes exactly `count` ops and checks each against the base, the output and the data areas. */
function parseOps(bytes: Uint8Array, count: number, b: OpBounds): DeltaOp[] {
  const r = new ByteReader(bytes, `${b.name}: op stream`);
  const ops: DeltaOp[] = [];
  let out = 0;
  let lit = 0;
  let diff = 0;
  let cursor = 0;
  const fail = (i: number, why: string): never => {
    throw new DeltaError("DELTA_OUT_OF_RANGE", `${b.name}: op ${i}: ${why}`);
  };
  for (let i = 0; i < count; i++) {
    if (r.done)
      throw new DeltaError("DELTA_MALFORMED", `${b.name}: op stream: ends after ${i} of ${count} ops`);
    const tag = r.uvarint();
    const kind = tag % 4;
    const v = (tag - kind) / 4;
    if (kind === 0) {
      const c = b.chunks[v];
      if (c === undefined)
        return fail(i, `COPY chunk #${v} but the chunk table has ${b.chunks.length} entries`);
      out += c.length;
      ops.push({ op: "copy-chunk", chunk: v });
    } else {
      if (v === 0) throw new DeltaError("DELTA_MALFORMED", `${b.name}: op ${i}: zero length`);
      if (out + v > b.targetSize) fail(i, `writes up to byte ${out + v}, past target_size ${b.targetSize}`);
      out += v;
      if (kind === 2) {
        if (lit + v > b.litRaw)
          fail(i, `ADD of ${v} bytes overruns the literal area (${b.litRaw - lit} left)`);
        lit += v;
        ops.push({ op: "add", length: v });
        continue;
      }
      const offset = cursor + r.svarint();
      if (offset < 0 || offset + v > b.baseSize) {
        fail(i, `base range [${offset}, ${offset + v}) outside the base (base_size ${b.baseSize})`);
      }
      cursor = offset + v;
      if (kind === 3) {
        if (diff + v > b.diffRaw)
          fail(i, `ADD-rel of ${v} bytes overruns the diff area (${b.diffRaw - diff} left)`);
        diff += v;
        ops.push({ op: "add-rel", offset, length: v });
      } else ops.push({ op: "copy-range", offset, length: v });
    }
    if (out > b.targetSize) fail(i, `writes up to byte ${out}, past target_size ${b.targetSize}`);
  }
  if (!r.done)
    throw new DeltaError(
      "DELTA_MALFORMED",
      `${b.name}: op stream: ${bytes.length - r.pos} bytes after the last op`,
    );
  if (out !== b.targetSize) fail(count, `ops write ${out} bytes, target_size is ${b.targetSize}`);
  if (lit !== b.litRaw || diff !== b.diffRaw) {
    throw new DeltaError(
      "DELTA_MALFORMED",
      `${b.name}: ops use ${lit}/${diff} literal/diff bytes, areas hold ${b.litRaw}/${b.diffRaw}`,
    );
  }
  return ops;
}

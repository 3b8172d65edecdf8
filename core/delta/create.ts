/**
 * createDelta: the smallest COPY/ADD op list we can find greedily, deterministic in (base, target,
 * params). Two passes: whole CDC chunks of the target that exist in the base become COPY chunk; the
 * runs of changed chunks in between are matched byte by byte against the whole base (match.ts),
 * exact stretches becoming COPY base-range, approximate ones ADD-rel (differences from the base, or
 * for x86-64 ELF from the base with its references remapped through the ops: rel32.ts), the rest ADD.
 */
import { createHash } from "node:crypto";

import { type CdcParams, chunk, DEFAULT_CDC, validateCdcParams } from "./cdc.ts";
import { DeltaError } from "./errors.ts";
import {
  type ChunkRef,
  countOps,
  type DeltaOp,
  type OpCounts,
  encodeDelta,
  LIT_DICT_BASE,
  PREDICT_X86_REL32,
} from "./format.ts";
import { elfLayout, isX86Elf, opsOffsetMap, predict } from "./rel32.ts";
import { buildIndex, type MatchIndex, matchRegion } from "./match.ts";

export interface DeltaParams {
  cdc: CdcParams;
  codec: "zstd";
  /** zstd level for all three compressed sections. */
  level: number;
  /**
   * Aligned stretches with at least this many equal bytes in a row become COPY base-range; shorter
   * ones stay inside ADD-rel as zero differences. Why 256: on libcrypto 32 gives 212 KB, 256 gives
   * 196 KB (fewer ops; zstd squeezes the zero runs anyway) while a small edit stays a small ADD.
   */
  minCopyRun: number;
  /** Hash-chain candidates per lookup in the byte matcher. */
  maxChain: number;
  /** Base positions indexed by the byte matcher at most; beyond, the index stride grows. */
  maxIndexEntries: number;
  /** "auto": ADD-rel bytes are differences from rel32-predicted bytes when the base is x86-64 ELF. */
  rel32: "auto" | "off";
  /**
   * Bases up to this size are the zstd dictionary of the literal area (0: never). Off by default:
   * on libcrypto it saves ~0.8 KB for ~1.5 s at level 19, since the byte matcher already took the matches.
   */
  maxDictBytes: number;
}

export const DEFAULT_PARAMS: Readonly<DeltaParams> = Object.freeze({
  cdc: DEFAULT_CDC,
  codec: "zstd",
  level: 19,
  minCopyRun: 256,
  maxChain: 16,
  maxIndexEntries: 1 << 22,
  rel32: "auto",
  maxDictBytes: 0,
});

export interface DeltaSummary extends OpCounts {
  /** Bytes that differ from the base: literal ADD bytes plus the non-zero differences of ADD-rel. */
  changedBytes: number;
  /** Compressed size of the ADD areas (literal + diff) in delta.bin. */
  addedBytesCompressed: number;
  codec: string;
}

export interface ChangedChunk {
  id: string;
  offset: number;
  length: number;
}

export interface DeltaResult {
  bin: Uint8Array;
  summary: DeltaSummary;
  /** Target chunks whose id is not among the base's, by offset. */
  changedChunks: ChangedChunk[];
  baseDigest: string;
  targetDigest: string;
  /** Everything needed to reproduce `bin` from the same inputs. */
  params: DeltaParams;
}

function sha256(d: Uint8Array): Buffer {
  return createHash("sha256").update(d).digest();
}

function checkParams(p: DeltaParams): void {
  validateCdcParams(p.cdc);
  const bad = (f: string, v: unknown, lim: string): never => {
    throw new DeltaError("DELTA_INVALID_PARAMS", `delta params: ${f} must be ${lim}, got ${String(v)}`);
  };
  if (p.codec !== "zstd") bad("codec", p.codec, '"zstd"');
  if (!Number.isInteger(p.level) || p.level < 1 || p.level > 22)
    bad("level", p.level, "an integer in [1, 22]");
  if (!Number.isInteger(p.minCopyRun) || p.minCopyRun < 1)
    bad("minCopyRun", p.minCopyRun, "a positive integer");
  if (!Number.isInteger(p.maxChain) || p.maxChain < 1 || p.maxChain > 4096)
    bad("maxChain", p.maxChain, "in [1, 4096]");
  if (!Number.isInteger(p.maxIndexEntries) || p.maxIndexEntries < 1 || p.maxIndexEntries > 1 << 26) {
    bad("maxIndexEntries", p.maxIndexEntries, "in [1, 67108864]");
  }
  if (p.rel32 !== "auto" && p.rel32 !== "off") bad("rel32", p.rel32, '"auto" or "off"');
  if (!Number.isSafeInteger(p.maxDictBytes) || p.maxDictBytes < 0)
    bad("maxDictBytes", p.maxDictBytes, ">= 0");
}

/** Collects ops and the two ADD areas, merging neighbours of the same kind. */
class OpBuilder {
  ops: DeltaOp[] = [];
  lit: Uint8Array[] = [];

  copyChunk(index: number): void {
    this.ops.push({ op: "copy-chunk", chunk: index });
  }

  copyRange(offset: number, length: number): void {
    const last = this.ops.at(-1);
    if (last?.op === "copy-range" && last.offset + last.length === offset) last.length += length;
    else this.ops.push({ op: "copy-range", offset, length });
  }

  add(bytes: Uint8Array): void {
    const last = this.ops.at(-1);
    if (last?.op === "add") last.length += bytes.length;
    else this.ops.push({ op: "add", length: bytes.length });
    this.lit.push(bytes);
  }

  /** The difference bytes are computed once all ops exist (the rel32 predictor reads them all). */
  addRel(offset: number, length: number): void {
    const last = this.ops.at(-1);
    if (last?.op === "add-rel" && last.offset + last.length === offset) last.length += length;
    else this.ops.push({ op: "add-rel", offset, length });
  }
}

/**
 * Emits target[t, t+len) aligned with base[b, …): runs of ≥ minCopyRun equal bytes as COPY
 * base-range, the stretches between them as ADD-rel (their zero differences compress to nearly nothing).
 */
function emitAligned(
  ob: OpBuilder,
  base: Uint8Array,
  target: Uint8Array,
  t: number,
  b: number,
  len: number,
  minRun: number,
): void {
  let segStart = 0; // start of the pending ADD-rel stretch
  let i = 0;
  const flushRel = (end: number): void => {
    if (end > segStart) ob.addRel(b + segStart, end - segStart);
  };
  while (i < len) {
    if (target[t + i] !== base[b + i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < len && target[t + j] === base[b + j]) j++;
    if (j - i >= minRun) {
      flushRel(i);
      ob.copyRange(b + i, j - i);
      segStart = j;
    }
    i = j;
  }
  flushRel(len);
}

/**
 * The diff area: for each ADD-rel op, target bytes minus the predicted bytes (the base bytes, or with
 * rel32 the base bytes with mapped displacements). `changedRel` counts bytes unlike the raw base.
 */
function diffArea(
  base: Uint8Array,
  target: Uint8Array,
  ops: DeltaOp[],
  table: ChunkRef[],
  chunkStarts: number[],
  rel32: boolean,
): { diff: Uint8Array; changedRel: number } {
  const map = rel32 ? opsOffsetMap(ops, table, chunkStarts) : undefined;
  const layout = elfLayout(base);
  const parts: Uint8Array[] = [];
  let changedRel = 0;
  let t = 0;
  for (const o of ops) {
    if (o.op === "copy-chunk") {
      t += table[o.chunk]?.length ?? 0;
      continue;
    }
    if (o.op === "add-rel") {
      const pred =
        map === undefined
          ? base.subarray(o.offset, o.offset + o.length)
          : predict(base, o.offset, o.length, t, map, layout);
      const d = new Uint8Array(o.length);
      for (let k = 0; k < d.length; k++) {
        const tb = target[t + k] ?? 0;
        d[k] = (tb - (pred[k] ?? 0)) & 0xff;
        if (tb !== base[o.offset + k]) changedRel++;
      }
      parts.push(d);
    }
    t += o.length;
  }
  return { diff: concat(parts), changedRel };
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

/** Builds the delta that turns `base` into `target`. */
export function createDelta(
  base: Uint8Array,
  target: Uint8Array,
  params: Partial<DeltaParams> = {},
): DeltaResult {
  const p: DeltaParams = { ...DEFAULT_PARAMS, ...params, cdc: { ...DEFAULT_PARAMS.cdc, ...params.cdc } };
  checkParams(p);
  const baseChunks = chunk(base, p.cdc);
  const targetChunks = chunk(target, p.cdc);
  // First base chunk with each id: deterministic, and the one COPY chunk refers to.
  const inBase = new Map<string, number>();
  baseChunks.forEach((c, i) => {
    if (!inBase.has(c.id)) inBase.set(c.id, i);
  });

  const ob = new OpBuilder();
  const tableIndex = new Map<string, number>();
  const table: ChunkRef[] = [];
  const changedChunks: ChangedChunk[] = [];
  let index: MatchIndex | undefined;
  let changed = 0;
  let alignment = 0; // base position − target position after the last copied chunk

  const matchGap = (from: number, to: number): void => {
    const mp = { maxChain: p.maxChain, maxIndexEntries: p.maxIndexEntries };
    index ??= buildIndex(base, mp);
    for (const c of matchRegion(index, target, from, to, alignment, mp)) {
      if (c.diffLen > 0) emitAligned(ob, base, target, c.tpos, c.bpos, c.diffLen, p.minCopyRun);
      if (c.extraLen > 0) {
        const s = c.tpos + c.diffLen;
        ob.add(target.subarray(s, s + c.extraLen));
        changed += c.extraLen;
      }
    }
  };

  // Runs of target chunks that are consecutive base chunks become one COPY chunk op each.
  let run: { first: number; count: number } | undefined;
  const flushRun = (): void => {
    if (run === undefined) return;
    const key = `${run.first}:${run.count}`;
    let ti = tableIndex.get(key);
    if (ti === undefined) {
      ti = table.length;
      tableIndex.set(key, ti);
      const cs = baseChunks.slice(run.first, run.first + run.count);
      table.push({
        idsDigest: createHash("sha256")
          .update(Buffer.from(cs.map((c) => c.id).join(""), "hex"))
          .digest(),
        index: run.first,
        count: run.count,
        length: cs.reduce((n, c) => n + c.length, 0),
      });
    }
    ob.copyChunk(ti);
    run = undefined;
  };
  let gapStart = -1;
  for (const tc of targetChunks) {
    const bi = inBase.get(tc.id);
    if (bi === undefined) {
      flushRun();
      changedChunks.push({ id: tc.id, offset: tc.offset, length: tc.length });
      if (gapStart < 0) gapStart = tc.offset;
      continue;
    }
    if (gapStart >= 0) matchGap(gapStart, tc.offset);
    gapStart = -1;
    if (run !== undefined && run.first + run.count === bi) run.count++;
    else {
      flushRun();
      run = { first: bi, count: 1 };
    }
    const bc = baseChunks[bi];
    if (bc !== undefined) alignment = bc.offset + bc.length - (tc.offset + tc.length);
  }
  flushRun();
  if (gapStart >= 0) matchGap(gapStart, target.length);

  const baseSha = sha256(base);
  const targetSha = sha256(target);
  // A base starting with zstd's dictionary magic would be parsed as a formatted dictionary, not raw content.
  const dictOk =
    base.length > 0 &&
    base.length <= p.maxDictBytes &&
    !(base[0] === 0x37 && base[1] === 0xa4 && base[2] === 0x30 && base[3] === 0xec);
  const literal = concat(ob.lit);
  const rel32 = p.rel32 === "auto" && isX86Elf(base);
  const starts = table.map((c) => baseChunks[c.index]?.offset ?? 0);
  const { diff, changedRel } = diffArea(base, target, ob.ops, table, starts, rel32);
  changed += changedRel;
  const enc = encodeDelta(
    {
      cdc: p.cdc,
      zstdLevel: p.level,
      literalDict: dictOk && literal.length > 0 ? LIT_DICT_BASE : 0,
      predictor: rel32 ? PREDICT_X86_REL32 : 0,
      baseSize: base.length,
      targetSize: target.length,
      baseSha256: baseSha,
      targetSha256: targetSha,
      chunks: table,
      ops: ob.ops,
    },
    literal,
    diff,
    base,
  );

  const summary: DeltaSummary = {
    ...countOps(ob.ops, table),
    changedBytes: changed,
    addedBytesCompressed: enc.literalCompressedSize + enc.diffCompressedSize,
    codec: "zstd",
  };
  return {
    bin: enc.bin,
    summary,
    changedChunks,
    baseDigest: `sha256:${baseSha.toString("hex")}`,
    targetDigest: `sha256:${targetSha.toString("hex")}`,
    params: p,
  };
}

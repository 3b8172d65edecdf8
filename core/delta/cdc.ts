/**
 * Content-defined chunking: FastCDC (Xia et al., USENIX ATC 2016) with a 64-bit gear hash and
 * normalised chunking. A boundary depends only on the bytes just before it, so an insertion shifts
 * the chunks after it without changing them: identical regions get identical chunk ids.
 *
 * Gear hash: fp = (fp << 1) XOR GEAR[byte] on 64 bits (two uint32 halves; XOR instead of FastCDC's
 * add so that no carry crosses the halves). Bit k of fp depends on the last k + 1 bytes, so testing
 * only the top bits of the high half gives a 50–64 byte effective window (the seed's 48–64 B).
 * Masks: `bits = log2(avg)`; before `avg` bytes the stricter mask has `bits + level` top bits set,
 * after it the looser one has `bits - level` (normalisation level 2 by default).
 */
import { createHash } from "node:crypto";

import { DeltaError } from "./errors.ts";

export interface CdcParams {
  /** Smallest chunk (except the last). Default 2 KiB. */
  minSize: number;
  /** Target average, a power of two. Default 8 KiB. */
  avgSize: number;
  /** Largest chunk. Default 64 KiB. */
  maxSize: number;
  /** Normalisation level (0–3). Default 2. */
  normLevel: number;
}

export interface Chunk {
  offset: number;
  length: number;
  /** Lower-case hex SHA-256 of the chunk's bytes. */
  id: string;
}

export const DEFAULT_CDC: Readonly<CdcParams> = Object.freeze({
  minSize: 2048,
  avgSize: 8192,
  maxSize: 65536,
  normLevel: 2,
});

/** The seed of the gear table; recorded in delta.bin as gear table id 1. */
export const GEAR_SEED = "stella-fastcdc-gear-v1";

/**
 * GEAR_HI[i] / GEAR_LO[i] are the first / second big-endian uint32 of SHA-256(GEAR_SEED || byte i).
 * Fixed and reproducible anywhere, unlike a random table.
 */
function gearTable(): { hi: Uint32Array; lo: Uint32Array } {
  const hi = new Uint32Array(256);
  const lo = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const d = createHash("sha256").update(GEAR_SEED).update(Uint8Array.of(i)).digest();
    hi[i] = d.readUInt32BE(0);
    lo[i] = d.readUInt32BE(4);
  }
  return { hi, lo };
}

const GEAR = gearTable();

/** Throws DELTA_INVALID_PARAMS unless min ≤ avg ≤ max hold and avg is a power of two in 256 B–4 MiB. */
export function validateCdcParams(p: CdcParams, where = "CDC parameters"): void {
  const bad = (field: string, why: string): never => {
    throw new DeltaError("DELTA_INVALID_PARAMS", `${where}: ${field} ${why}`);
  };
  for (const f of ["minSize", "avgSize", "maxSize", "normLevel"] as const) {
    if (!Number.isSafeInteger(p[f]) || p[f] < 0) bad(f, `must be a non-negative integer, got ${p[f]}`);
  }
  if (p.avgSize < 256 || p.avgSize > 4 << 20 || (p.avgSize & (p.avgSize - 1)) !== 0) {
    bad("avgSize", `must be a power of two between 256 and 4194304, got ${p.avgSize}`);
  }
  if (p.minSize < 64 || p.minSize > p.avgSize)
    bad("minSize", `must be in [64, avgSize=${p.avgSize}], got ${p.minSize}`);
  if (p.maxSize < p.avgSize || p.maxSize > 16 << 20) {
    bad("maxSize", `must be in [avgSize=${p.avgSize}, 16777216], got ${p.maxSize}`);
  }
  if (p.normLevel > 3) bad("normLevel", `must be at most 3, got ${p.normLevel}`);
}

/** A mask of the top `n` bits of a uint32 (n ≤ 31 here since avg ≤ 2^22 and level ≤ 3). */
function topBits(n: number): number {
  return n <= 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
}

/**
 * Chunk boundaries as end offsets (exclusive), ascending; the last equals data.length.
 * Empty input gives no chunks.
 */
export function cdcBoundaries(data: Uint8Array, params: CdcParams = DEFAULT_CDC): number[] {
  validateCdcParams(params);
  const { minSize, avgSize, maxSize, normLevel } = params;
  const bits = Math.round(Math.log2(avgSize));
  const maskS = topBits(bits + normLevel);
  const maskL = topBits(bits - normLevel);
  const gh = GEAR.hi;
  const gl = GEAR.lo;
  const n = data.length;
  const ends: number[] = [];
  let start = 0;
  while (start < n) {
    const remaining = n - start;
    if (remaining <= minSize) {
      ends.push(n);
      break;
    }
    const limit = start + Math.min(remaining, maxSize);
    const normal = start + Math.min(remaining, avgSize);
    let hi = 0;
    let lo = 0;
    let i = start + minSize;
    let end = limit;
    // Two loops instead of a mask choice per byte: this is the hot path.
    for (; i < normal; i++) {
      const b = data[i] ?? 0;
      hi = ((hi << 1) | (lo >>> 31)) ^ (gh[b] ?? 0);
      lo = (lo << 1) ^ (gl[b] ?? 0);
      if ((hi & maskS) === 0) {
        end = i + 1;
        break;
      }
    }
    if (i >= normal) {
      for (; i < limit; i++) {
        const b = data[i] ?? 0;
        hi = ((hi << 1) | (lo >>> 31)) ^ (gh[b] ?? 0);
        lo = (lo << 1) ^ (gl[b] ?? 0);
        if ((hi & maskL) === 0) {
          end = i + 1;
          break;
        }
      }
    }
    ends.push(end);
    start = end;
  }
  return ends;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Chunks of `data` with their SHA-256 ids, in order. */
export function chunk(data: Uint8Array, params: CdcParams = DEFAULT_CDC): Chunk[] {
  const out: Chunk[] = [];
  let start = 0;
  for (const end of cdcBoundaries(data, params)) {
    out.push({ offset: start, length: end - start, id: sha256Hex(data.subarray(start, end)) });
    start = end;
  }
  return out;
}

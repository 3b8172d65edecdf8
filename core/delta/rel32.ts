/**
 * Executable-aware prediction for ADD-rel on x86-64 (the idea of Courgette/Zucchini, kept inside the
 * COPY/ADD vocabulary). When code moves, the bytes that change are the rel32 branch displacements and
 * RIP-relative disp32s whose targets moved by a different amount than the instruction. The ops
 * themselves say where every base range went in the target, so both create and apply can predict the
 * new displacement: decode the base instructions of an ADD-rel range, map each reference's base
 * destination through the op list, and store the target bytes as differences from that prediction
 * instead of from the raw base bytes. A wrong prediction costs only compression, never correctness:
 * both sides compute the same prediction from the base and the ops alone.
 */
import { decodeX86 } from "../disasm/x86-64.ts";
import type { ChunkRef, DeltaOp } from "./format.ts";

/** True when `base` is an ELF64 x86-64 file (then "auto" turns prediction on). */
export function isX86Elf(base: Uint8Array): boolean {
  return (
    base.length >= 64 &&
    base[0] === 0x7f &&
    base[1] === 0x45 &&
    base[2] === 0x4c &&
    base[3] === 0x46 &&
    base[4] === 2 &&
    base[18] === 0x3e &&
    base[19] === 0
  );
}

/**
 * Where base offsets went in the target, from the ops that read the base (segments sorted by base
 * start, then target start). An offset inside a segment maps through it (checking the 8 segments
 * starting last at or before it, latest first); otherwise through the nearer of the segments just
 * before and just after it, extrapolating that segment's shift.
 */
export class OffsetMap {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;
  private readonly shifts: Float64Array;

  /** `segs`: [baseStart, targetStart, length] triples, any order. */
  constructor(segs: [number, number, number][]) {
    segs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.starts = Float64Array.from(segs, (s) => s[0]);
    this.ends = Float64Array.from(segs, (s) => s[0] + s[2]);
    this.shifts = Float64Array.from(segs, (s) => s[1] - s[0]);
  }

  /** Target offset predicted for base offset `x`, or -1 when there are no segments. */
  map(x: number): number {
    const n = this.starts.length;
    if (n === 0) return -1;
    let lo = 0;
    let hi = n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.starts[mid] ?? 0) <= x) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    for (let i = found; i >= 0 && i > found - 8; i--) {
      if (x < (this.ends[i] ?? 0)) return x + (this.shifts[i] ?? 0);
    }
    if (found < 0) return x + (this.shifts[0] ?? 0);
    if (found === n - 1) return x + (this.shifts[found] ?? 0);
    const before = x - (this.ends[found] ?? 0);
    const after = (this.starts[found + 1] ?? 0) - x;
    return x + (this.shifts[before <= after ? found : found + 1] ?? 0);
  }
}

/** Where the base keeps code and the .eh_frame_hdr search table, from its program headers. */
export interface ElfLayout {
  /** File ranges [start, end) of executable PT_LOAD segments. */
  exec: [number, number][];
  /** File offset and size of PT_GNU_EH_FRAME (.eh_frame_hdr), if any. */
  ehHdr?: [number, number];
  /** .eh_frame FDE fields, ascending: pc_begin (pcrel int32) and CIE pointer (backwards offset). */
  fdePcBegin: number[];
  fdeCiePtr: number[];
}

/**
 * FDE field positions in .eh_frame, found from .eh_frame_hdr's eh_frame_ptr (pcrel sdata4, as GCC and
 * clang emit); pc_begin is assumed pcrel sdata4 too. Stops at the terminator or anything odd.
 */
function fdeFields(base: Uint8Array, dv: DataView, h: number, out: ElfLayout): void {
  if (h + 8 > base.length || base[h] !== 1 || base[h + 1] !== 0x1b) return;
  let p = h + 4 + dv.getInt32(h + 4, true);
  for (let n = 0; n < 1 << 20 && p >= 0 && p + 16 <= base.length; n++) {
    const len = dv.getUint32(p, true);
    if (len === 0 || len === 0xffffffff || len > base.length - p - 4) return;
    if (dv.getUint32(p + 4, true) !== 0) {
      out.fdeCiePtr.push(p + 4);
      out.fdePcBegin.push(p + 8);
    }
    p += 4 + len;
  }
}

const PT_LOAD = 1;
const PT_GNU_EH_FRAME = 0x6474e550;

/** Program headers of an ELF64 little-endian base; bad or absent headers give an empty layout. */
export function elfLayout(base: Uint8Array): ElfLayout {
  const out: ElfLayout = { exec: [], fdePcBegin: [], fdeCiePtr: [] };
  if (!isX86Elf(base)) return out;
  const dv = new DataView(base.buffer, base.byteOffset, base.length);
  const phoff = Number(dv.getBigUint64(32, true));
  const entsize = dv.getUint16(54, true);
  const num = dv.getUint16(56, true);
  if (entsize < 56 || phoff + entsize * num > base.length) return out;
  for (let i = 0; i < num; i++) {
    const p = phoff + i * entsize;
    const type = dv.getUint32(p, true);
    const flags = dv.getUint32(p + 4, true);
    const off = Number(dv.getBigUint64(p + 8, true));
    const size = Number(dv.getBigUint64(p + 32, true));
    if (off > base.length || size > base.length - off) continue;
    if (type === PT_LOAD && (flags & 1) !== 0) out.exec.push([off, off + size]);
    if (type === PT_GNU_EH_FRAME) out.ehHdr = [off, size];
  }
  if (out.ehHdr !== undefined) fdeFields(base, dv, out.ehHdr[0], out);
  return out;
}

/**
 * The predicted target bytes for base[b, b+len) written at target offset `t`, from the base bytes:
 * - in executable segments, every rel32 branch / RIP-relative disp32 wholly inside the range gets the
 *   displacement its mapped destination implies (instructions decoded linearly from the range start;
 *   x86 decoding resynchronises within a few instructions);
 * - elsewhere, 8-aligned qwords that look like in-file addresses (relocation addends, .data.rel.ro
 *   pointers) become their mapped value;
 * - the .eh_frame_hdr binary-search table (int32 pairs relative to its start) is remapped likewise,
 *   and so are the .eh_frame FDEs' pc_begin and CIE pointer fields.
 */
export function predict(
  base: Uint8Array,
  b: number,
  len: number,
  t: number,
  map: OffsetMap,
  layout: ElfLayout,
): Uint8Array {
  const out = new Uint8Array(base.subarray(b, b + len)); // a copy: Buffer#slice would be a view
  const end = b + len;
  const dv = new DataView(out.buffer, out.byteOffset, out.length);
  const tOf = (x: number): number => t + (x - b);
  let inExec = false;
  for (const [s, e] of layout.exec) {
    if (e <= b || s >= end) continue;
    inExec ||= s <= b && e >= end;
    for (let q = Math.max(b, s); q < Math.min(end, e);) {
      const insn = decodeX86(base, q);
      const next = q + insn.length;
      const off = insn.relSize === 4 ? insn.relOffset : insn.ripDispOffset;
      if (off >= 0 && q + off + 4 <= end) {
        const f = q + off - b;
        const mapped = map.map(next + dv.getInt32(f, true));
        const v = mapped - tOf(next);
        if (mapped >= 0 && v >= -0x80000000 && v <= 0x7fffffff) dv.setInt32(f, v, true);
      }
      q = next;
    }
  }
  if (!inExec) {
    const limit = base.length + 0x10000;
    for (let q = (b + 7) & ~7; q + 8 <= end; q += 8) {
      if (layout.exec.some(([s, e]) => q >= s && q < e)) continue;
      const f = q - b;
      if (dv.getUint32(f + 4, true) !== 0) continue;
      const v = dv.getUint32(f, true);
      if (v < 0x1000 || v >= limit) continue;
      const mapped = map.map(v);
      if (mapped >= 0 && mapped <= 0xffffffff) dv.setUint32(f, mapped, true);
    }
  }
  const eh = layout.ehHdr;
  if (eh !== undefined) {
    const [h, size] = eh;
    const mh = map.map(h);
    const bdv = new DataView(base.buffer, base.byteOffset, base.length);
    let q = h + 12; // after version, encodings, eh_frame_ptr and fde_count
    if (q < b) q += Math.ceil((b - q) / 4) * 4;
    for (const stop = Math.min(end, h + size); mh >= 0 && q + 4 <= stop; q += 4) {
      const mapped = map.map(h + bdv.getInt32(q, true));
      const v = mapped - mh;
      if (mapped >= 0 && v >= -0x80000000 && v <= 0x7fffffff) dv.setInt32(q - b, v, true);
    }
  }
  // .eh_frame: pc_begin = target - field position; CIE pointer = field position - CIE start.
  const bdv = new DataView(base.buffer, base.byteOffset, base.length);
  const inOp = (xs: number[]): number[] => xs.slice(lowerBound(xs, b), lowerBound(xs, end - 3));
  for (const q of inOp(layout.fdePcBegin)) {
    const mapped = map.map(q + bdv.getInt32(q, true));
    const v = mapped - tOf(q);
    if (mapped >= 0 && v >= -0x80000000 && v <= 0x7fffffff) dv.setInt32(q - b, v, true);
  }
  for (const q of inOp(layout.fdeCiePtr)) {
    const mapped = map.map(q - bdv.getUint32(q, true));
    const v = tOf(q) - mapped;
    if (mapped >= 0 && v >= 0 && v <= 0xffffffff) dv.setUint32(q - b, v, true);
  }
  return out;
}

/** First index of sorted `xs` with xs[i] >= x. */
function lowerBound(xs: number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((xs[mid] ?? 0) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The OffsetMap of an op list: COPY chunk runs (at `chunkStarts` in the base), COPY ranges, ADD-rel. */
export function opsOffsetMap(ops: DeltaOp[], table: ChunkRef[], chunkStarts: number[]): OffsetMap {
  const segs: [number, number, number][] = [];
  let t = 0;
  for (const o of ops) {
    if (o.op === "copy-chunk") {
      const len = table[o.chunk]?.length ?? 0;
      segs.push([chunkStarts[o.chunk] ?? 0, t, len]);
      t += len;
      continue;
    }
    if (o.op !== "add") segs.push([o.offset, t, o.length]);
    t += o.length;
  }
  return new OffsetMap(segs);
}

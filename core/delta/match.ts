/**
 * Byte-granular matching of a target region against the whole base, after bsdiff (Percival 2003):
 * find long exact matches, then extend each alignment *approximately* forwards and backwards while
 * at least half the bytes agree. In executables, code that moved keeps its bytes except the
 * relative offsets, so an aligned region's byte differences (target - base) are mostly zeros and
 * compress far better than the raw bytes. bsdiff finds matches with a suffix array; here a hash
 * index of 8-byte grams at a fixed stride of the base does it, with a bounded candidate chain,
 * which is linear-time to build and deterministic.
 */

/** Bytes per indexed gram: shorter matches are left to the ADD area's compressor. */
const GRAM = 8;

export interface MatchParams {
  /** Candidates examined per lookup (longest match wins). */
  maxChain: number;
  /** At most this many base positions are indexed; the stride grows with the base beyond it. */
  maxIndexEntries: number;
}

export const DEFAULT_MATCH: Readonly<MatchParams> = Object.freeze({ maxChain: 16, maxIndexEntries: 1 << 23 });

export interface MatchIndex {
  base: Uint8Array;
  stride: number;
  shift: number;
  head: Int32Array;
  next: Int32Array;
}

/** One step: target[tpos, tpos+diffLen) aligned with base[bpos, …), then extraLen unmatched bytes. */
export interface Control {
  tpos: number;
  bpos: number;
  diffLen: number;
  extraLen: number;
}

function gramHash(d: Uint8Array, p: number, shift: number): number {
  const lo = (d[p] ?? 0) | ((d[p + 1] ?? 0) << 8) | ((d[p + 2] ?? 0) << 16) | ((d[p + 3] ?? 0) << 24);
  const hi = (d[p + 4] ?? 0) | ((d[p + 5] ?? 0) << 8) | ((d[p + 6] ?? 0) << 16) | ((d[p + 7] ?? 0) << 24);
  let h = Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 13), 0x85ebca77);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  return h >>> shift;
}

/** Hash chains over the base's grams at positions 0, stride, 2·stride, … (later positions first). */
export function buildIndex(base: Uint8Array, params: MatchParams = DEFAULT_MATCH): MatchIndex {
  const positions = Math.max(0, base.length - GRAM + 1);
  const stride = Math.max(1, Math.ceil(positions / params.maxIndexEntries));
  const entries = Math.ceil(positions / stride);
  let bits = 10;
  while (bits < 24 && 1 << bits < entries) bits++;
  const shift = 32 - bits;
  const head = new Int32Array(1 << bits).fill(-1);
  const next = new Int32Array(entries);
  for (let e = 0; e < entries; e++) {
    const h = gramHash(base, e * stride, shift);
    next[e] = head[h] ?? 0;
    head[h] = e;
  }
  return { base, stride, shift, head, next };
}

/** Longest match cap: long enough to skip big identical runs quickly, small enough to bound work. */
const MAX_MATCH = 1 << 16;

/**
 * Controls covering target[from, to) exactly, in order. `startOffset` is the alignment
 * (base position − target position) assumed at `from`, e.g. where the previous copied chunk ended.
 */
export function matchRegion(
  idx: MatchIndex,
  target: Uint8Array,
  from: number,
  to: number,
  startOffset: number,
  params: MatchParams = DEFAULT_MATCH,
): Control[] {
  const old = idx.base;
  const oldsize = old.length;
  const { head, next, stride, shift } = idx;
  const maxChain = params.maxChain;
  const out: Control[] = [];

  let lastpos = Math.min(Math.max(from + startOffset, 0), oldsize);
  let lastoffset = lastpos - from;
  let lastscan = from;
  let scan = from;
  let len = 0;
  let pos = 0;

  const matchLen = (bp: number, tp: number): number => {
    const lim = Math.min(oldsize - bp, to - tp, MAX_MATCH);
    let l = 0;
    while (l < lim && old[bp + l] === target[tp + l]) l++;
    return l;
  };

  // Longest match at target[s…]: the current alignment plus up to maxChain indexed candidates.
  // Ties go to the candidate nearest the current alignment (smaller offsets in the op stream).
  const search = (s: number): void => {
    len = 0;
    pos = 0;
    const want = s + lastoffset;
    if (want >= 0 && want < oldsize) {
      len = matchLen(want, s);
      pos = want;
    }
    if (to - s < GRAM || oldsize < GRAM) return;
    let e = head[gramHash(target, s, shift)] ?? 0;
    for (let c = 0; e >= 0 && c < maxChain; c++, e = next[e] ?? 0) {
      const p = e * stride;
      if (p === want) continue;
      const l = matchLen(p, s);
      if (l > len || (l === len && l > 0 && Math.abs(p - want) < Math.abs(pos - want))) {
        len = l;
        pos = p;
      }
    }
  };

  while (scan < to) {
    let oldscore = 0;
    let scsc = (scan += len);
    for (; scan < to; scan++) {
      search(scan);
      for (; scsc < scan + len; scsc++) {
        const o = scsc + lastoffset;
        if (o >= 0 && o < oldsize && old[o] === target[scsc]) oldscore++;
      }
      if ((len === oldscore && len !== 0) || len > oldscore + 8) break;
      const o = scan + lastoffset;
      if (o >= 0 && o < oldsize && old[o] === target[scan]) oldscore--;
    }
    if (len === oldscore && scan < to) continue;
    if (scan > to) scan = to;

    // Forward extension of the previous alignment: maximise 2·matches − length.
    let s = 0;
    let sf = 0;
    let lenf = 0;
    for (let i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
      if (old[lastpos + i] === target[lastscan + i]) s++;
      i++;
      if (s * 2 - i > sf * 2 - lenf) {
        sf = s;
        lenf = i;
      }
    }
    // Backward extension of the new match.
    let lenb = 0;
    if (scan < to) {
      s = 0;
      let sb = 0;
      for (let i = 1; scan >= lastscan + i && pos >= i; i++) {
        if (old[pos - i] === target[scan - i]) s++;
        if (s * 2 - i > sb * 2 - lenb) {
          sb = s;
          lenb = i;
        }
      }
    }
    // Where they overlap, split at the point that keeps the most matches.
    if (lastscan + lenf > scan - lenb) {
      const overlap = lastscan + lenf - (scan - lenb);
      s = 0;
      let ss = 0;
      let lens = 0;
      for (let i = 0; i < overlap; i++) {
        if (target[lastscan + lenf - overlap + i] === old[lastpos + lenf - overlap + i]) s++;
        if (target[scan - lenb + i] === old[pos - lenb + i]) s--;
        if (s > ss) {
          ss = s;
          lens = i + 1;
        }
      }
      lenf += lens - overlap;
      lenb -= lens;
    }
    const extraLen = scan - lenb - (lastscan + lenf);
    if (lenf > 0 || extraLen > 0) out.push({ tpos: lastscan, bpos: lastpos, diffLen: lenf, extraLen });
    if (scan >= to) break;
    lastscan = scan - lenb;
    lastpos = pos - lenb;
    lastoffset = pos - scan;
  }
  return out;
}

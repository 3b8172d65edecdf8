/**
 * The position-independent ("normalised") form of AArch64 code (little-endian A64, 4-byte words):
 * the PC-relative immediates are zeroed so that a function normalises to the same bytes wherever it
 * and what it refers to were placed.
 *
 * Masked fields:
 * - B, BL: imm26.
 * - B.cond, BC.cond, CBZ, CBNZ: imm19.
 * - TBZ, TBNZ: imm14.
 * - ADR, ADRP: immlo and immhi.
 * - LDR (literal, GPR and SIMD&FP), LDRSW (literal), PRFM (literal): imm19.
 * - The :lo12: half of an ADRP pair: the imm12 of `ADD Xd, Xn, #imm` (64-bit, unshifted) and of a
 *   load/store with unsigned offset (`LDR/STR/LDRB/.../PRFM [Xn, #imm]`, GPR or SIMD&FP) whose base
 *   Xn holds an ADRP result. Compilers schedule the pair apart, so this is tracked per register over
 *   a linear scan rather than only for the next word: ADRP Xd marks Xd; an instruction that may write a
 *   register clears its mark (its Rd/Rt field, Rt2 of a pair load, Rn of a writeback, x0-x18 and x30
 *   after BL/BLR); branches leave the marks alone, so a page held across a block boundary is still
 *   seen. The scan knows no control flow: a mark can be stale where paths merge (the cost is a masked
 *   struct offset, i.e. a lost sensitivity, never an unstable hash for code that did not change).
 */

// Field masks.
const IMM26 = 0x03ffffff;
const IMM19 = 0x00ffffe0;
const IMM14 = 0x0007ffe0;
const ADR_IMM = 0x60ffffe0;
const IMM12 = 0x003ffc00;
/** x0-x18 and x30: what a call may clobber, per AAPCS64. */
const CALLER_SAVED = 0x4007ffff;

/** Returns a masked copy of `code`; a trailing partial word (length not a multiple of 4) is copied as is. */
export function normalizeAarch64(code: Uint8Array): Uint8Array {
  const out = new Uint8Array(code);
  const n = code.length & ~3;
  let pages = 0; // bit r set: Xr holds the result of an ADRP
  for (let i = 0; i < n; i += 4) {
    const w =
      (code[i] ?? 0) | ((code[i + 1] ?? 0) << 8) | ((code[i + 2] ?? 0) << 16) | ((code[i + 3] ?? 0) << 24);
    let clear = 0;
    const rd = w & 31;
    const rn = (w >>> 5) & 31;
    if ((w & 0x1f000000) === 0x10000000) {
      // ADR / ADRP
      clear = ADR_IMM;
      if (w < 0) pages |= 1 << rd;
      else pages &= ~(1 << rd);
    } else if ((w & 0x7c000000) === 0x14000000) {
      // B / BL
      clear = IMM26;
      if (w < 0) pages &= ~CALLER_SAVED;
    } else if ((w & 0xff000000) === 0x54000000 || (w & 0x7e000000) === 0x34000000) {
      clear = IMM19; // B.cond / BC.cond, CBZ / CBNZ
    } else if ((w & 0x7e000000) === 0x36000000) {
      clear = IMM14; // TBZ / TBNZ
    } else if ((w & 0x3b000000) === 0x18000000) {
      // LDR / LDRSW / PRFM (literal)
      clear = IMM19;
      if ((w & 0x04000000) === 0) pages &= ~(1 << rd);
    } else if ((w & 0xffc00000) === (0x91000000 | 0) && (pages >>> rn) & 1) {
      // ADD Xd, Xn, #:lo12:sym
      clear = IMM12;
      pages &= ~(1 << rd);
    } else if ((w & 0x3b000000) === 0x39000000) {
      // Load/store, unsigned immediate offset: [Xn, #:lo12:sym] when Xn holds a page.
      if ((pages >>> rn) & 1) clear = IMM12;
      if ((w & 0x04000000) === 0 && (w & 0x00c00000) !== 0) pages &= ~(1 << rd); // GPR load writes Rt
    } else if ((w & 0x1c000000) === 0x14000000) {
      // Other branches, exception generation, system: BLR / BLRAA... clobber the caller-saved registers.
      if ((w & 0xfeff0000) === (0xd63f0000 | 0)) pages &= ~CALLER_SAVED;
      else if ((w & 0xffe00000) === (0xd5200000 | 0)) pages &= ~(1 << rd); // MRS, SYSL
    } else if ((w & 0x0a000000) === 0x08000000) {
      // Other loads and stores: Rt, Rt2 of pairs, Rn on writeback may change.
      pages &= ~(1 << rd);
      if ((w & 0x38000000) === 0x28000000) {
        pages &= ~(1 << ((w >>> 10) & 31)); // LDP/STP/LDNP...
        if ((w & 0x00800000) !== 0) pages &= ~(1 << rn); // pre/post-index
      } else if ((w & 0x3b200000) === 0x38000000 && (w & 0x400) !== 0) {
        pages &= ~(1 << rn); // LDR/STR imm9 pre/post-index
      }
    } else if (
      (w & 0x0e000000) !== 0x0e000000 ||
      (w & 0x5f20fc00) === 0x1e200000 ||
      (w & 0x9fe08400) === 0x0e000400
    ) {
      // Integer data processing (Rd is bits 0-4), FP<->integer conversions, SIMD copies (UMOV...):
      // the scalar and vector FP/SIMD rest writes V registers only.
      pages &= ~(1 << rd);
    }
    if (clear !== 0) {
      const m = w & ~clear;
      out[i] = m & 0xff;
      out[i + 1] = (m >>> 8) & 0xff;
      out[i + 2] = (m >>> 16) & 0xff;
      out[i + 3] = (m >>> 24) & 0xff;
    }
  }
  return out;
}

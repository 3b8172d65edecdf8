/**
 * x86-64 instruction-length decoding, and the position-independent ("normalised") form of a run of code:
 * the rel8/rel32 targets of direct branches and the disp32 of RIP-relative operands are zeroed, so a
 * function normalises to the same bytes wherever it and the code and data it refers to were placed.
 *
 * Table-driven and allocation-free per instruction: `decodeCore` reports through module-level
 * variables. Lengths follow GNU objdump (binutils 2.40, default AMD64 semantics) byte for byte on
 * everything objdump does not print as `(bad)`, including its prefix quirks (see `decodeCore`).
 *
 * Masked: rel8/rel32 of CALL E8, JMP E9/EB, Jcc 70-7F / 0F 80-8F, LOOPcc/JRCXZ E0-E3, XBEGIN C7 F8, and
 * the disp32 of ModRM mod=00 rm=101 (RIP- or, under 67, EIP-relative) in legacy, VEX, EVEX and XOP
 * encodings. Not masked, by choice: absolute disp32/imm32/moffs64 operands. Position-independent code
 * (every shared object and PIE) reaches code and data only RIP-relatively, and in non-PIC code an
 * absolute 32-bit operand is indistinguishable from a constant, so masking those would hide real changes.
 * Also not masked: rel16 branches (66-prefixed without REX.W; compilers never emit them).
 */

// Per-opcode flags.
const M = 1; // ModRM (plus SIB/displacement) follows the opcode
const I8 = 2; // imm8
const IZ = 4; // imm16 under 66, else imm32 (REX.W keeps imm32)
const I16 = 8; // imm16
const R8 = 16; // rel8
const RZ = 32; // rel32 (rel16 under 66 without REX.W)
const BAD = 64; // invalid in 64-bit mode
const SPEC = 128; // decoded case by case in `decodeCore`

// Prefix kinds.
const P66 = 1;
const P67 = 2;
const PF2 = 4;
const PF3 = 8;
const PSEG = 16; // segment overrides and LOCK: no effect on length
const PREX = 32;
const PFWAIT = 64;

const MAX_LEN = 15;

function table(entries: [number, number, number][]): Uint8Array {
  const t = new Uint8Array(256);
  for (const [lo, hi, f] of entries) t.fill(f, lo, hi + 1);
  return t;
}

/** Legacy prefixes as objdump's `ckprefix` sees them (FWAIT 9B included). */
const PREFIX = table([
  [0x26, 0x26, PSEG],
  [0x2e, 0x2e, PSEG],
  [0x36, 0x36, PSEG],
  [0x3e, 0x3e, PSEG],
  [0x40, 0x4f, PREX],
  [0x64, 0x65, PSEG],
  [0x66, 0x66, P66],
  [0x67, 0x67, P67],
  [0x9b, 0x9b, PFWAIT],
  [0xf0, 0xf0, PSEG],
  [0xf2, 0xf2, PF2],
  [0xf3, 0xf3, PF3],
]);

/** One-byte opcode map (prefix bytes never reach it). */
const ONE = table([
  [0x00, 0x3f, M], // ALU r/m forms; the imm forms and the holes are set below
  [0x50, 0x5f, 0],
  [0x60, 0x61, BAD],
  [0x62, 0x62, SPEC], // EVEX
  [0x63, 0x63, M],
  [0x68, 0x68, IZ],
  [0x69, 0x69, M | IZ],
  [0x6a, 0x6a, I8],
  [0x6b, 0x6b, M | I8],
  [0x6c, 0x6f, 0],
  [0x70, 0x7f, R8],
  [0x80, 0x80, M | I8],
  [0x81, 0x81, M | IZ],
  [0x82, 0x82, BAD],
  [0x83, 0x83, M | I8],
  [0x84, 0x8e, M],
  [0x8f, 0x8f, SPEC], // POP r/m or XOP
  [0x90, 0x9f, 0],
  [0x9a, 0x9a, BAD],
  [0xa0, 0xa3, SPEC], // moffs
  [0xa4, 0xa7, 0],
  [0xa8, 0xa8, I8],
  [0xa9, 0xa9, IZ],
  [0xaa, 0xaf, 0],
  [0xb0, 0xb7, I8],
  [0xb8, 0xbf, SPEC], // MOV r, imm32/imm64
  [0xc0, 0xc1, M | I8],
  [0xc2, 0xc2, I16],
  [0xc3, 0xc3, 0],
  [0xc4, 0xc7, SPEC], // VEX3, VEX2, group 11
  [0xc8, 0xc8, I16 | I8], // ENTER
  [0xc9, 0xc9, 0],
  [0xca, 0xca, I16],
  [0xcb, 0xcc, 0],
  [0xcd, 0xcd, I8],
  [0xce, 0xce, BAD],
  [0xcf, 0xcf, 0],
  [0xd0, 0xd3, M],
  [0xd4, 0xd6, BAD],
  [0xd7, 0xd7, 0],
  [0xd8, 0xdf, M],
  [0xe0, 0xe3, R8],
  [0xe4, 0xe7, I8],
  [0xe8, 0xe9, RZ],
  [0xea, 0xea, BAD],
  [0xeb, 0xeb, R8],
  [0xec, 0xf5, 0],
  [0xf6, 0xf7, SPEC], // group 3: TEST has an immediate
  [0xf8, 0xfd, 0],
  [0xfe, 0xff, SPEC], // groups 4/5: some /r are invalid
]);
for (let op = 0; op < 0x40; op += 8) {
  ONE[op + 4] = I8;
  ONE[op + 5] = IZ;
  ONE[op + 6] = BAD; // PUSH/POP seg, DAA/DAS/AAA/AAS: invalid in 64-bit mode
  ONE[op + 7] = BAD;
}
ONE[0x0f] = SPEC; // two-byte escape

/** Two-byte map 0F xx (0F 38 and 0F 3A are escapes to the tables below). */
const TWO = table([
  [0x00, 0x03, M],
  [0x04, 0x04, BAD],
  [0x05, 0x09, 0],
  [0x0a, 0x0a, BAD],
  [0x0b, 0x0b, 0],
  [0x0c, 0x0c, BAD],
  [0x0d, 0x0d, M],
  [0x0e, 0x0e, 0],
  [0x0f, 0x0f, M | I8], // 3DNow!: the trailing byte is the opcode
  [0x10, 0x1f, M],
  [0x20, 0x23, SPEC], // MOV to/from CR/DR: ModRM is always a register form
  [0x24, 0x27, BAD],
  [0x28, 0x2f, M],
  [0x30, 0x35, 0],
  [0x36, 0x36, BAD],
  [0x37, 0x37, 0],
  [0x38, 0x3a, SPEC],
  [0x39, 0x39, BAD],
  [0x3b, 0x3f, BAD],
  [0x40, 0x6f, M],
  [0x70, 0x73, M | I8],
  [0x74, 0x76, M],
  [0x77, 0x77, 0],
  [0x78, 0x78, SPEC], // VMREAD, or EXTRQ/INSERTQ with two imm8
  [0x79, 0x79, M],
  [0x7a, 0x7b, BAD],
  [0x7c, 0x7f, M],
  [0x80, 0x8f, RZ],
  [0x90, 0x9f, M],
  [0xa0, 0xa2, 0],
  [0xa3, 0xa3, M],
  [0xa4, 0xa4, M | I8],
  [0xa5, 0xa5, M],
  [0xa6, 0xa7, M], // VIA PadLock (the ModRM byte selects the operation)
  [0xa8, 0xaa, 0],
  [0xab, 0xab, M],
  [0xac, 0xac, M | I8],
  [0xad, 0xb9, M],
  [0xba, 0xba, M | I8],
  [0xbb, 0xc1, M],
  [0xc2, 0xc2, M | I8],
  [0xc3, 0xc3, M],
  [0xc4, 0xc6, M | I8],
  [0xc7, 0xc7, M],
  [0xc8, 0xcf, 0],
  [0xd0, 0xff, M],
]);

/** Opcodes assigned (under some mandatory prefix) in the legacy 0F 38 and 0F 3A maps. */
const MAP38 = table([
  [0x00, 0x0b, M],
  [0x10, 0x10, M],
  [0x14, 0x15, M],
  [0x17, 0x17, M],
  [0x1c, 0x1e, M],
  [0x20, 0x25, M],
  [0x28, 0x2b, M],
  [0x30, 0x35, M],
  [0x37, 0x41, M],
  [0x80, 0x82, M],
  [0xc8, 0xcd, M],
  [0xcf, 0xcf, M],
  [0xd8, 0xdf, M],
  [0xf0, 0xf1, M],
  [0xf5, 0xf6, M],
  [0xf8, 0xfc, M],
]);
const MAP3A = table([
  [0x08, 0x0f, M | I8],
  [0x14, 0x17, M | I8],
  [0x20, 0x22, M | I8],
  [0x40, 0x42, M | I8],
  [0x44, 0x44, M | I8],
  [0x60, 0x63, M | I8],
  [0xcc, 0xcc, M | I8],
  [0xce, 0xcf, M | I8],
  [0xdf, 0xdf, M | I8],
  [0xf0, 0xf0, M | I8],
]);

/** VEX/EVEX map 1 (0F): the opcodes that take an imm8. */
const VEX1 = new Uint8Array(256).fill(M);
for (const op of [0x70, 0x71, 0x72, 0x73, 0xc2, 0xc4, 0xc5, 0xc6]) VEX1[op] = M | I8;

// Results of the last `decodeCore`, relative to the instruction start.
let outRelOff = -1;
let outRelSize: 0 | 1 | 4 = 0;
let outRipOff = -1;
let outValid = true;

/** The length of a ModRM-addressed operand (ModRM, SIB, displacement) starting at `p`. */
function modrmLength(code: Uint8Array, p: number, end: number, start: number): number {
  const m = p < end ? (code[p] ?? 0) : 0;
  const mod = m >> 6;
  if (mod === 3) return 1;
  const rm = m & 7;
  if (rm === 4) {
    // SIB; base 101 with mod 00 means disp32 and no base register.
    if (mod === 0) {
      const sib = p + 1 < end ? (code[p + 1] ?? 0) : 0;
      return (sib & 7) === 5 ? 6 : 2;
    }
    return mod === 1 ? 3 : 6;
  }
  if (mod === 0) {
    if (rm === 5) {
      outRipOff = p + 1 - start;
      return 5;
    }
    return 1;
  }
  return mod === 1 ? 2 : 5;
}

function invalid(start: number, end: number): number {
  outRelOff = -1;
  outRelSize = 0;
  outRipOff = -1;
  outValid = false;
  return Math.min(1, end - start);
}

/**
 * Decodes the instruction at `start` (bytes at or past `end` are not read) and returns its length;
 * the masked fields and validity are left in `outRelOff`/`outRelSize`/`outRipOff`/`outValid`.
 * Invalid encodings decode as length 1; a truncated instruction as the bytes that remain.
 */
function decodeCore(code: Uint8Array, start: number, end: number): number {
  outRelOff = -1;
  outRelSize = 0;
  outRipOff = -1;
  outValid = true;

  // Prefixes, with objdump's rules: a REX followed by any prefix stands alone together with the
  // prefixes before it; so does a run of 14 prefixes; FWAIT (9B) absorbs the prefixes before it and
  // merges with a following x87 opcode (D8-DF), else is a 1-byte instruction plus those prefixes.
  let p = start;
  let pfx = 0;
  let rex = 0;
  let npfx = 0; // prefixes other than FWAIT
  let fwait = -1; // npfx when the last FWAIT was seen
  let op: number;
  for (;;) {
    op = p < end ? (code[p] ?? 0) : 0;
    const kind = PREFIX[op] ?? 0;
    if (kind === 0) break;
    if (rex !== 0) {
      outValid = false;
      return npfx;
    }
    p++;
    if (kind === PFWAIT) {
      if (npfx > 0 || fwait >= 0) {
        fwait = npfx;
        op = p < end ? (code[p] ?? 0) : 0;
        break;
      }
      fwait = 0;
    } else {
      if (kind === PREX) rex = op;
      else pfx |= kind;
      npfx++;
    }
    if (p - start >= MAX_LEN - 1) {
      outValid = false;
      return npfx;
    }
  }
  if (fwait >= 0 && (op < 0xd8 || op > 0xdf)) {
    // FWAIT followed by something else: the FWAIT (and the prefixes before it) is the instruction.
    return Math.min(fwait + 1, end - start);
  }

  let f: number;
  let pos = p + 1; // just past the opcode byte(s)
  let extra = 0; // immediate bytes beyond what `f` says
  if (op === 0x0f) {
    const op2 = p + 1 < end ? (code[p + 1] ?? 0) : 0;
    pos = p + 2;
    f = TWO[op2] ?? 0;
    if (f & SPEC) {
      if (op2 === 0x38 || op2 === 0x3a) {
        const op3 = p + 2 < end ? (code[p + 2] ?? 0) : 0;
        pos = p + 3;
        f = (op2 === 0x38 ? MAP38[op3] : MAP3A[op3]) ?? 0;
        if (f === 0) f = BAD;
      } else if (op2 === 0x78) {
        f = M;
        if (pfx & (P66 | PF2)) extra = 2;
      } else {
        f = 0; // 0F 20-23: the ModRM byte never has memory forms
        extra = 1;
      }
    }
  } else {
    f = ONE[op] ?? 0;
    if (f & SPEC) {
      const b1 = p + 1 < end ? (code[p + 1] ?? 0) : 0;
      const reg = (b1 >> 3) & 7;
      switch (op) {
        case 0x62: {
          // EVEX: 62 P0 P1 P2 opcode ModRM; the map is P0[2:0].
          const map = b1 & 7;
          const evop = p + 4 < end ? (code[p + 4] ?? 0) : 0;
          pos = p + 5;
          if (map === 1) f = VEX1[evop] ?? M;
          else if (map === 2 || map === 5 || map === 6) f = M;
          else if (map === 3) f = M | I8;
          else f = BAD;
          break;
        }
        case 0xc5: {
          // VEX2: C5 [R vvvv L pp] opcode, map 0F.
          const vop = p + 2 < end ? (code[p + 2] ?? 0) : 0;
          pos = p + 3;
          f = vop === 0x77 ? 0 : (VEX1[vop] ?? M);
          break;
        }
        case 0xc4: {
          // VEX3: C4 [RXB mmmmm] [W vvvv L pp] opcode.
          const map = b1 & 0x1f;
          const vop = p + 3 < end ? (code[p + 3] ?? 0) : 0;
          pos = p + 4;
          if (map === 1) f = vop === 0x77 ? 0 : (VEX1[vop] ?? M);
          else if (map === 2) f = M;
          else if (map === 3) f = M | I8;
          else f = BAD;
          break;
        }
        case 0x8f: {
          if (reg === 0) {
            f = M; // POP r/m64
            break;
          }
          // XOP: 8F [RXB mmmmm] [W vvvv L pp] opcode; maps 8 (imm8), 9, 0A (imm32).
          const map = b1 & 0x1f;
          pos = p + 4;
          if (map === 8) f = M | I8;
          else if (map === 9) f = M;
          else if (map === 10) {
            f = M;
            extra = 4;
          } else f = BAD;
          break;
        }
        case 0xc6:
          f = reg === 0 || b1 === 0xf8 ? M | I8 : BAD; // MOV r/m8, imm8; XABORT imm8
          break;
        case 0xc7:
          f = reg === 0 ? M | IZ : b1 === 0xf8 ? M | RZ : BAD; // MOV r/m, imm32; XBEGIN rel32
          break;
        case 0xf6:
          f = reg < 2 ? M | I8 : M;
          break;
        case 0xf7:
          f = reg < 2 ? M | IZ : M;
          break;
        case 0xfe:
          f = reg < 2 ? M : BAD;
          break;
        case 0xff:
          f = reg < 7 ? M : BAD;
          break;
        default:
          if (op < 0xa4) {
            f = 0; // A0-A3: MOV with a 64-bit absolute address (32-bit under 67)
            extra = pfx & P67 ? 4 : 8;
          } else {
            f = 0; // B8-BF: MOV r, imm (imm64 under REX.W)
            extra = rex & 8 ? 8 : pfx & P66 ? 2 : 4;
          }
      }
    }
  }
  if (f & BAD) return invalid(start, end);

  if (f & M) pos += modrmLength(code, pos, end, start);
  if (f & (I8 | I16 | IZ)) {
    if (f & I8) pos += 1;
    if (f & I16) pos += 2;
    if (f & IZ) pos += rex & 8 || !(pfx & P66) ? 4 : 2;
  } else if (f & R8) {
    outRelOff = pos - start;
    outRelSize = 1;
    pos += 1;
  } else if (f & RZ) {
    if (pfx & P66 && !(rex & 8))
      pos += 2; // rel16: left unmasked
    else {
      outRelOff = pos - start;
      outRelSize = 4;
      pos += 4;
    }
  }
  pos += extra;

  const len = pos - start;
  if (len > MAX_LEN) return invalid(start, end);
  if (pos > end) {
    // Truncated by the end of the buffer: nothing to mask.
    outRelOff = -1;
    outRelSize = 0;
    outRipOff = -1;
    outValid = false;
    return end - start;
  }
  return len;
}

function checkOffset(code: Uint8Array, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset >= code.length) {
    throw new RangeError(`x86 decode offset ${offset} is outside the code (length ${code.length})`);
  }
}

/** Length (1..15) of the instruction at `offset`; never throws for any byte content. */
export function x86InsnLength(code: Uint8Array, offset: number): number {
  checkOffset(code, offset);
  return decodeCore(code, offset, code.length);
}

export interface X86Insn {
  offset: number;
  length: number;
  /** Offset of the rel8/rel32 branch displacement within the instruction, -1 when absent. */
  relOffset: number;
  relSize: 0 | 1 | 4;
  /** Offset of the RIP-relative disp32 within the instruction, -1 when absent. */
  ripDispOffset: number;
  /** False for invalid, truncated or prefix-only encodings (still a length, still advancing). */
  valid: boolean;
}

/** The instruction at `offset`, as a fresh object (use `normalizeX86` for bulk work). */
export function decodeX86(code: Uint8Array, offset: number): X86Insn {
  checkOffset(code, offset);
  const length = decodeCore(code, offset, code.length);
  return {
    offset,
    length,
    relOffset: outRelOff,
    relSize: outRelSize,
    ripDispOffset: outRipOff,
    valid: outValid,
  };
}

/**
 * A copy of `code` with branch displacements and RIP-relative displacements zeroed, decoding
 * linearly from offset 0; `invalid` counts the invalid, truncated or prefix-only decodes.
 */
export function normalizeX86(code: Uint8Array): { bytes: Uint8Array; invalid: number } {
  const end = code.length;
  const out = new Uint8Array(code);
  let invalidCount = 0;
  let p = 0;
  while (p < end) {
    const len = decodeCore(code, p, end);
    if (!outValid) invalidCount++;
    if (outRelSize === 1) out[p + outRelOff] = 0;
    else if (outRelSize === 4) {
      const q = p + outRelOff;
      out[q] = 0;
      out[q + 1] = 0;
      out[q + 2] = 0;
      out[q + 3] = 0;
    }
    if (outRipOff >= 0) {
      const q = p + outRipOff;
      out[q] = 0;
      out[q + 1] = 0;
      out[q + 2] = 0;
      out[q + 3] = 0;
    }
    p += len;
  }
  return { bytes: out, invalid: invalidCount };
}

/**
 * GNU binutils as an oracle for the decoders in this folder, shared by their tests and the bench:
 * section bytes located with `readelf -S -W`, and `objdump -d -w -z` listings parsed into instructions.
 * Never used by the product itself.
 */
import { execFile, execFileSync } from "node:child_process";
import { closeSync, openSync, readSync } from "node:fs";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface Section {
  name: string;
  addr: number;
  offset: number;
  size: number;
  flags: string;
  type: string;
}

/** Runs a tool and returns its stdout; output can be tens of megabytes. */
export function run(tool: string, args: string[]): string {
  return execFileSync(tool, args, {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** `run`, without blocking: lets several objdumps use several cores. */
export async function runAsync(tool: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(tool, args, { encoding: "utf8", maxBuffer: 1 << 30 });
  return stdout;
}

/** The section headers of an ELF file, from `readelf -S -W`. */
export function readSections(path: string, readelf = "readelf"): Section[] {
  const out: Section[] = [];
  const re =
    /^\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)\s/;
  for (const line of run(readelf, ["-S", "-W", path]).split("\n")) {
    const m = re.exec(line);
    if (m === null) continue;
    const [, name = "", type = "", addr = "0", offset = "0", size = "0", flags = ""] = m;
    out.push({
      name,
      type,
      addr: parseInt(addr, 16),
      offset: parseInt(offset, 16),
      size: parseInt(size, 16),
      flags,
    });
  }
  return out;
}

/** The file bytes of one section (empty for NOBITS). */
export function readSectionBytes(path: string, sec: Section): Uint8Array {
  const buf = new Uint8Array(sec.type === "NOBITS" ? 0 : sec.size);
  const fd = openSync(path, "r");
  try {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, sec.offset + done);
      if (n === 0) throw new Error(`${path}: short read in ${sec.name}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

export interface ObjdumpInsn {
  addr: number;
  /** Instruction length: the number of raw bytes objdump printed (with -w, all of them). */
  length: number;
  /** The raw bytes as printed: `48 89 e5`. */
  hex: string;
  /** Mnemonic and operands, as printed. */
  text: string;
  /** `(bad)`, or a `.byte` line: objdump could not decode this. */
  bad: boolean;
}

export interface ObjdumpBlock {
  /** The label objdump printed before the block (`name` of `<name>:`). */
  label: string;
  insns: ObjdumpInsn[];
}

/** Parses `objdump -d -w -z` output into labelled blocks of instructions. */
export function parseObjdump(listing: string): ObjdumpBlock[] {
  const blocks: ObjdumpBlock[] = [];
  let cur: ObjdumpBlock | undefined;
  const labelRe = /^[0-9a-f]+ <(.*)>:$/;
  const insnRe = /^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*(?:\t(.*))?$/;
  for (const line of listing.split("\n")) {
    if (line.length === 0) continue;
    const lm = labelRe.exec(line);
    if (lm !== null) {
      cur = { label: lm[1] ?? "", insns: [] };
      blocks.push(cur);
      continue;
    }
    const im = insnRe.exec(line);
    if (im === null || cur === undefined) continue;
    const text = (im[3] ?? "").trim();
    cur.insns.push({
      addr: parseInt(im[1] ?? "0", 16),
      length: ((im[2] ?? "").length + 1) / 3,
      hex: im[2] ?? "",
      text,
      bad: text.includes("(bad)") || text.startsWith(".byte") || text === "",
    });
  }
  return blocks;
}

const PREFIX_WORDS = new Set([
  "data16",
  "data32",
  "addr32",
  "addr16",
  "cs",
  "ds",
  "es",
  "ss",
  "fs",
  "gs",
  "lock",
  "rep",
  "repz",
  "repnz",
  "repe",
  "repne",
  "bnd",
  "notrack",
  "xacquire",
  "xrelease",
  "{vex}",
  "{vex3}",
  "{evex}",
]);

export interface X86Operands {
  mnemonic: string;
  /** Target of a direct CALL/JMP/Jcc/LOOP/JRCXZ/XBEGIN, else undefined. */
  branchTarget: bigint | undefined;
  /** The `# addr` objdump computes (64-bit, even for EIP) for a RIP/EIP-relative operand. */
  ripTarget: bigint | undefined;
}

const NOTHING: X86Operands = { mnemonic: "", branchTarget: undefined, ripTarget: undefined };
const MAYBE_RE = /\bj|call|loop|xbegin|ip\)/;
const BRANCH_RE = /^(call|jmp|j[a-z]{1,4}|loop[a-z]*|jrcxz|jecxz|xbegin)[wlq]?(,p[nt])?$/;

/** What an AT&T objdump line says about branch targets and RIP-relative operands. */
export function parseX86Text(text: string): X86Operands {
  if (!MAYBE_RE.test(text)) return NOTHING;
  const [code = "", comment] = text.split("#", 2);
  const tokens = code.trim().split(/\s+/);
  let i = 0;
  while (i < tokens.length - 1 && (PREFIX_WORDS.has(tokens[i] ?? "") || (tokens[i] ?? "").startsWith("rex")))
    i++;
  const mnemonic = tokens[i] ?? "";
  const first = tokens[i + 1] ?? "";
  let branchTarget: bigint | undefined;
  if (BRANCH_RE.test(mnemonic) && /^(0x)?[0-9a-f]+$/.test(first)) {
    branchTarget = BigInt(first.startsWith("0x") ? first : `0x${first}`);
  }
  const rip = code.includes("(%rip)");
  const eip = code.includes("(%eip)");
  let ripTarget: bigint | undefined;
  if ((rip || eip) && comment !== undefined) {
    const m = /^\s*(?:0x)?([0-9a-f]+)/.exec(comment);
    if (m !== null) ripTarget = BigInt(`0x${m[1] ?? "0"}`);
  }
  return { mnemonic, branchTarget, ripTarget };
}

/** Little-endian signed field of `size` bytes at `at`. */
export function readSigned(code: Uint8Array, at: number, size: number): bigint {
  let v = 0n;
  for (let k = size - 1; k >= 0; k--) v = (v << 8n) | BigInt(code[at + k] ?? 0);
  return BigInt.asIntN(size * 8, v);
}

/** The bytes of a defined function symbol, located with `nm -S` and the section headers. */
export function readFunction(path: string, name: string, nm = "nm"): { addr: number; bytes: Uint8Array } {
  const line = run(nm, ["-S", "--defined-only", path])
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f.length === 4 && f[3] === name && /^[tT]$/.test(f[2] ?? ""));
  if (line === undefined) throw new Error(`${path}: no function symbol ${name}`);
  const addr = parseInt(line[0] ?? "", 16);
  const size = parseInt(line[1] ?? "", 16);
  const sec = readSections(path).find(
    (s) => s.type !== "NOBITS" && addr >= s.addr && addr + size <= s.addr + s.size,
  );
  if (sec === undefined) throw new Error(`${path}: ${name} at ${addr.toString(16)} is in no section`);
  const bytes = readSectionBytes(path, sec).slice(addr - sec.addr, addr - sec.addr + size);
  return { addr, bytes };
}

/** The address of a defined symbol (function or data), from `nm`. */
export function symbolAddress(path: string, name: string, nm = "nm"): number {
  const line = run(nm, ["--defined-only", path])
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f.length === 3 && f[2] === name);
  if (line === undefined) throw new Error(`${path}: no symbol ${name}`);
  return parseInt(line[0] ?? "", 16);
}

/** Whether a tool runs at all (for a clear failure message when a toolchain is missing). */
export function toolMissing(tool: string): string | undefined {
  try {
    execFileSync(tool, ["--version"], { stdio: "ignore" });
    return undefined;
  } catch (err) {
    return `${tool}: ${(err as Error).message}`;
  }
}

// JIT symbol maps (/tmp/perf-PID.map: "START SIZE name", hex) and /proc/kallsyms.

/** A sorted symbol table over bigint addresses (kernel addresses exceed 2^53). */
export class AddressTable {
  readonly starts: BigUint64Array;
  readonly ends: BigUint64Array;
  readonly names: readonly string[];
  readonly badLines: number;

  constructor(entries: { start: bigint; end: bigint; name: string }[], badLines: number) {
    // Stable sort: for equal starts the entry written last wins (JIT code reused at the same address).
    entries.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.starts = BigUint64Array.from(entries, (e) => e.start);
    this.ends = BigUint64Array.from(entries, (e) => e.end);
    this.names = entries.map((e) => e.name);
    this.badLines = badLines;
  }

  get size(): number {
    return this.names.length;
  }

  /** Index of the entry containing `addr`, or -1. */
  indexOf(addr: bigint): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as bigint) <= addr) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    return i >= 0 && addr < (this.ends[i] as bigint) ? i : -1;
  }
}

const PERF_LINE = /^(?:0x)?([0-9a-f]{1,16}) (?:0x)?([0-9a-f]{1,16}) (.+)$/i;

/** Parse a perf map. Bad lines are counted. */
export function parsePerfMap(text: string): AddressTable {
  const entries: { start: bigint; end: bigint; name: string }[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = PERF_LINE.exec(line);
    if (!m) {
      bad++;
      continue;
    }
    const start = BigInt(`0x${m[1] ?? ""}`);
    const size = BigInt(`0x${m[2] ?? ""}`);
    if (size === 0n) {
      bad++;
      continue;
    }
    entries.push({ start, end: start + size, name: m[3] ?? "" });
  }
  return new AddressTable(entries, bad);
}

const KALLSYMS_LINE = /^([0-9a-f]{1,16}) ([a-zA-Z]) (\S+)/;

/**
 * Parse /proc/kallsyms: text symbols (t/T, w/W), each ending at the next symbol's start.
 * All-zero addresses (kptr_restrict) give an empty table.
 */
export function parseKallsyms(text: string): AddressTable {
  const raw: { start: bigint; name: string }[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = KALLSYMS_LINE.exec(line);
    if (!m) {
      bad++;
      continue;
    }
    const type = (m[2] ?? "").toLowerCase();
    const start = BigInt(`0x${m[1] ?? ""}`);
    if (start === 0n) continue;
    if (type !== "t" && type !== "w") continue;
    raw.push({ start, name: m[3] ?? "" });
  }
  raw.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const entries: { start: bigint; end: bigint; name: string }[] = [];
  for (let i = 0; i < raw.length; i++) {
    const cur = raw[i] as (typeof raw)[number];
    if (i > 0 && (raw[i - 1] as (typeof raw)[number]).start === cur.start) continue; // aliases: first name
    let j = i + 1;
    while (j < raw.length && (raw[j] as (typeof raw)[number]).start === cur.start) j++;
    const next = raw[j];
    // The last symbol gets a bounded size: nothing says where kernel text ends.
    entries.push({ start: cur.start, end: next ? next.start : cur.start + 0x1000n, name: cur.name });
  }
  return new AddressTable(entries, bad);
}

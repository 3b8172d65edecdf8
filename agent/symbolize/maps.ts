// Parser for /proc/PID/maps. The text comes from the kernel but may be truncated (process
// exiting mid-read) or hostile (tests, fuzzers, odd kernels): bad lines are counted, never thrown.

/** One mapping line of /proc/PID/maps. */
export interface Mapping {
  /** Addresses as numbers: user-space addresses are < 2^53 on every 64-bit ABI we run on. */
  start: number;
  end: number;
  /** Start and end exactly as printed (hex, no 0x): the name of the /proc/PID/map_files entry. */
  rawRange: string;
  /** "r-xp" and the like. */
  perms: string;
  exec: boolean;
  /** File offset of `start`. */
  offset: number;
  /** "fe:00" */
  dev: string;
  inode: number;
  /** Path without the " (deleted)" suffix; "" for anonymous; "[vdso]", "[heap]", "[stack]"… for special. */
  path: string;
  deleted: boolean;
  kind: "file" | "anon" | "special";
}

export interface ParsedMaps {
  /** Sorted by start, non-overlapping (overlapping lines are dropped and counted as bad). */
  mappings: Mapping[];
  /** Lines that could not be parsed (or that overlap an earlier mapping). */
  badLines: number;
}

const LINE =
  /^([0-9a-f]{1,16})-([0-9a-f]{1,16}) ([r-][w-][x-][ps]) ([0-9a-f]{1,16}) ([0-9a-f]{1,8}:[0-9a-f]{1,8}) (\d{1,20})(?: +(.*))?$/i;
const DELETED = " (deleted)";

/** Hex to number, only when exact (high addresses such as [vsyscall]'s are page-aligned and exact). */
function hex(s: string): number | undefined {
  const n = parseInt(s, 16);
  if (Number.isSafeInteger(n)) return n;
  return Number.isFinite(n) && BigInt(n) === BigInt(`0x${s}`) ? n : undefined;
}

/** Parse one line; undefined when it is not a well-formed mapping. */
export function parseMapsLine(line: string): Mapping | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const [, s, e, perms = "", off, dev = "", ino, rest = ""] = m;
  const start = hex(s ?? "");
  const end = hex(e ?? "");
  const offset = hex(off ?? "");
  const inode = Number(ino);
  if (start === undefined || end === undefined || offset === undefined) return undefined;
  if (end <= start || !Number.isSafeInteger(inode)) return undefined;
  let path = rest;
  let deleted = false;
  if (path.endsWith(DELETED)) {
    deleted = true;
    path = path.slice(0, -DELETED.length);
  }
  const kind: Mapping["kind"] =
    path === ""
      ? "anon"
      : path.startsWith("[") || (inode === 0 && !path.startsWith("/"))
        ? "special"
        : "file";
  return {
    start,
    end,
    rawRange: `${s}-${e}`,
    perms,
    exec: perms[2] === "x",
    offset,
    dev: dev.toLowerCase(),
    inode,
    path,
    deleted,
    kind,
  };
}

/** Parse the whole text of a maps file. */
export function parseMaps(text: string): ParsedMaps {
  const out: Mapping[] = [];
  let badLines = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = parseMapsLine(line);
    if (m) out.push(m);
    else badLines++;
  }
  out.sort((a, b) => a.start - b.start);
  const mappings: Mapping[] = [];
  for (const m of out) {
    const prev = mappings[mappings.length - 1];
    if (prev && m.start < prev.end) {
      badLines++;
      continue;
    }
    mappings.push(m);
  }
  return { mappings, badLines };
}

/** A sorted mapping list with an O(log n) address lookup over typed arrays. */
export class MapIndex {
  readonly mappings: Mapping[];
  readonly badLines: number;
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;

  constructor(parsed: ParsedMaps) {
    this.mappings = parsed.mappings;
    this.badLines = parsed.badLines;
    this.starts = Float64Array.from(parsed.mappings, (m) => m.start);
    this.ends = Float64Array.from(parsed.mappings, (m) => m.end);
  }

  static parse(text: string): MapIndex {
    return new MapIndex(parseMaps(text));
  }

  /** Index of the mapping containing `addr`, or -1. */
  indexOf(addr: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as number) <= addr) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    return i >= 0 && addr < (this.ends[i] as number) ? i : -1;
  }

  find(addr: number): Mapping | undefined {
    const i = this.indexOf(addr);
    return i < 0 ? undefined : this.mappings[i];
  }
}

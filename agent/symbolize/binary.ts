// What the symboliser keeps per binary: BuildID, PT_LOAD segments, and a compact function table.
import { ElfFile, readBuildId } from "../../core/elf/index.ts";
import { SHF_EXECINSTR } from "../../core/elf/constants.ts";
import { functionRanges } from "../../core/funcproof/functions.ts";
import { FileByteSource } from "../../core/io/byte-source.ts";

const PT_LOAD = 1;
export const PT_LOAD_FLAGS_X = 1;

/** An executable section, as the wire's Binary.sections carries it (the operator maps file offsets with it). */
export interface ExecSection {
  name: string;
  fileOffset: number;
  size: number;
  address: number;
}

export interface LoadSegment {
  offset: number;
  filesz: number;
  vaddr: number;
  flags: number;
}

/** Per-function overhead beyond the name: two Float64 slots plus the array slot and string header. */
const BYTES_PER_FUNCTION = 8 + 8 + 8 + 24;
/** How far back the lookup walks for an enclosing function when the nearest start does not cover. */
const MAX_WALK_BACK = 16;

export class BinaryInfo {
  readonly path: string;
  readonly buildId: string | undefined;
  readonly loads: readonly LoadSegment[];
  /** Sorted function starts (vaddr), one per distinct start. */
  readonly starts: Float64Array;
  readonly ends: Float64Array;
  readonly names: readonly string[];
  /** Estimated bytes held by the table. */
  readonly bytes: number;
  readonly symbolSource: string;
  readonly sections: readonly ExecSection[];

  constructor(
    path: string,
    buildId: string | undefined,
    loads: LoadSegment[],
    funcs: { start: number; end: number; name: string }[],
    symbolSource: string,
    sections: readonly ExecSection[] = [],
  ) {
    this.path = path;
    this.sections = sections;
    this.buildId = buildId;
    this.loads = loads;
    this.symbolSource = symbolSource;
    // Input sorted by start; keep one entry per start: the widest, first name on ties.
    const starts: number[] = [];
    const ends: number[] = [];
    const names: string[] = [];
    let bytes = 256 + sections.reduce((n, sec) => n + 64 + sec.name.length, 0);
    for (const f of funcs) {
      const last = starts.length - 1;
      if (last >= 0 && starts[last] === f.start) {
        if (f.end > (ends[last] as number)) ends[last] = f.end;
        continue;
      }
      starts.push(f.start);
      ends.push(f.end);
      names.push(f.name);
      bytes += BYTES_PER_FUNCTION + f.name.length;
    }
    this.starts = Float64Array.from(starts);
    this.ends = Float64Array.from(ends);
    this.names = names;
    this.bytes = bytes;
  }

  /** The vaddr of a file offset inside a PT_LOAD segment (executable ones first), or -1. */
  vaddrOf(fileOffset: number): number {
    let fallback = -1;
    for (const l of this.loads) {
      if (fileOffset >= l.offset && fileOffset < l.offset + l.filesz) {
        const v = fileOffset - l.offset + l.vaddr;
        if (l.flags & PT_LOAD_FLAGS_X) return v;
        if (fallback < 0) fallback = v;
      }
    }
    return fallback;
  }

  /** Index of the function containing `vaddr`, or -1. */
  functionAt(vaddr: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as number) <= vaddr) lo = mid + 1;
      else hi = mid;
    }
    const stop = Math.max(0, lo - MAX_WALK_BACK);
    for (let i = lo - 1; i >= stop; i--) if (vaddr < (this.ends[i] as number)) return i;
    return -1;
  }
}

/**
 * Open and read one binary. `known` lets the caller share an already loaded table with the same
 * BuildID (the same library seen through another mount or container layer). Throws on bad input.
 */
export function loadBinaryInfo(
  path: string,
  label: string,
  known: (buildId: string) => BinaryInfo | undefined = () => undefined,
): BinaryInfo {
  const src = new FileByteSource(path, label);
  try {
    const elf = ElfFile.open(src);
    const buildId = readBuildId(elf);
    if (buildId !== undefined) {
      const k = known(buildId);
      if (k) return k;
    }
    const loads: LoadSegment[] = elf
      .programHeaders()
      .filter((p) => p.type === PT_LOAD)
      .map((p) => ({ offset: p.offset, filesz: p.filesz, vaddr: Number(p.vaddr), flags: p.flags }));
    const table = functionRanges(elf);
    const funcs = table.functions.map((f) => ({ start: Number(f.start), end: Number(f.end), name: f.sym }));
    const sections = elf
      .sections()
      .filter((s) => (s.flags & BigInt(SHF_EXECINSTR)) !== 0n && s.size > 0)
      .map((s) => ({ name: s.name, fileOffset: s.offset, size: s.size, address: Number(s.addr) }));
    return new BinaryInfo(label, buildId, loads, funcs, table.source, sections);
  } finally {
    src.close();
  }
}

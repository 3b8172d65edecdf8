/**
 * functions_changed for a delta manifest: the ELF files present (and different) in both inputs are
 * compared function by function with core/binarydiff (FuncProof hashes, rel32-normalised on x86-64).
 *
 * Where the ELF files come from, by input type: a single ELF file is its own pair; directory trees,
 * OCI layouts and image tarballs through `openArtifact`; .deb data.tar, tar and zip members are read
 * in memory. rpm payloads and files too large are listed in `notes` and not compared.
 *
 * Degrades instead of failing: when one side is stripped (.symtab on one side, .dynsym on the
 * other), only the exported functions (those in both sides' .dynsym) are compared; when a side has no
 * function symbols at all, the binary is counted as not compared; an ELF that does not parse is
 * noted. Deterministic: binaries sorted by path, symbols sorted.
 */
import { hash } from "node:crypto";

import { openArtifact } from "../artifacts/artifact.ts";
import { ArReader } from "../artifacts/ar.ts";
import type { Artifact, ArtifactFile } from "../artifacts/common.ts";
import { isElfHead } from "../artifacts/common.ts";
import { decompressBuffer } from "../artifacts/decompress.ts";
import { listTarBuffer } from "../artifacts/tar-list.ts";
import { ZipReader } from "../artifacts/zip.ts";
import { binaryDiff, compareKeyedFunctions, type FunctionComparison } from "../binarydiff/binarydiff.ts";
import { SHN_LORESERVE, STT_FUNC, STT_GNU_IFUNC } from "../elf/constants.ts";
import { ElfFile } from "../elf/elf-file.ts";
import { readSymbols } from "../elf/symbols.ts";
import { buildFuncProof, type FuncProofFunction } from "../funcproof/funcproof.ts";
import { functionRanges } from "../funcproof/functions.ts";
import { BufferByteSource, type ByteSource } from "../io/byte-source.ts";
import type { ChangedFunction, ChangeKind } from "../risk/score.ts";
import type { DeltaInput, EntriesDiff } from "./inputs.ts";

/** Symbols listed in `top_symbols` of the manifest. */
export const TOP_SYMBOLS = 20;
/** Changed functions passed to score_inputs at most (the rest count through the totals). */
export const MAX_SCORED_FUNCTIONS = 10_000;
/** ELF pairs compared at most; the rest are noted. */
export const DEFAULT_MAX_BINARIES = 2000;
/** Largest ELF member read from an archive. */
const MAX_MEMBER_BYTES = 512 * 1024 * 1024;

const TOOL = "stella delta";
const SECTIONS = [".text", ".rodata", ".data"];

export type SymbolSource = ".symtab" | ".dynsym" | "none";

export interface BinaryFunctionsChange {
  path: string;
  base_sha256: string;
  target_sha256: string;
  symbols: { base: SymbolSource; target: SymbolSource };
  /** `symbols`: full tables; `exported`: one side stripped, only .dynsym exports; `none`: not compared. */
  compared: "symbols" | "exported" | "none";
  added: number;
  removed: number;
  modified: number;
  /** Functions whose bytes differ only by moved code (same normalised hash). */
  relocated: number;
  /** binarydiff's verdict for fully compared pairs. */
  verdict?: string;
  note?: string;
}

export interface TopSymbol {
  symbol: string;
  change: ChangeKind;
  path: string;
}

export interface FunctionsChanged {
  /** ELF pairs (same path, different content) examined. */
  binaries: number;
  added: number;
  removed: number;
  modified: number;
  /** Up to TOP_SYMBOLS: modified first, then added, then removed; by path and name within. */
  top_symbols: TopSymbol[];
  per_binary: BinaryFunctionsChange[];
  notes: string[];
}

export interface FunctionsResult {
  summary: FunctionsChanged;
  /** For score_inputs.functions.changed (at most MAX_SCORED_FUNCTIONS, same order as top_symbols). */
  changed: ChangedFunction[];
}

export interface FunctionsOptions {
  maxBinaries?: number;
  /** Images: `os/arch[/variant]`. */
  platform?: string;
}

interface ElfPair {
  path: string;
  base: ArtifactFile;
  target: ArtifactFile;
}

function memFile(path: string, data: Uint8Array, mode = 0o755): ArtifactFile {
  const sha256 = hash("sha256", data, "hex");
  return {
    path,
    size: data.length,
    mode,
    sha256,
    open: (): ByteSource => new BufferByteSource(data, path),
  };
}

/** Content paths modified between the two sides (same path, both regular files, other bytes). */
function modifiedFiles(diff: EntriesDiff): Set<string> {
  const out = new Set<string>();
  for (const m of diff.modified) {
    if (m.path.startsWith("/") && m.base.type === "file" && m.target.type === "file") out.add(m.path);
  }
  return out;
}

/** Captured ELF members of a tar held in memory (already decompressed). */
async function elfFromTar(
  tar: Uint8Array,
  where: string,
  want: ReadonlySet<string>,
): Promise<Map<string, ArtifactFile>> {
  const out = new Map<string, ArtifactFile>();
  const members = await listTarBuffer(tar, where, (p) => want.has(p));
  for (const m of members) {
    if (m.data !== undefined && m.type === "file" && isElfHead(m.data)) {
      out.set(m.path, memFile(m.path, m.data, m.mode));
    }
  }
  return out;
}

async function archiveElves(
  input: DeltaInput,
  want: ReadonlySet<string>,
  notes: string[],
): Promise<Map<string, ArtifactFile> | undefined> {
  const where = input.path;
  switch (input.type) {
    case "deb": {
      const ar = ArReader.open(input.path);
      try {
        const dm = ar.members.find((m) => m.name === "data.tar" || m.name.startsWith("data.tar."));
        if (dm === undefined) return new Map();
        const d = decompressBuffer(ar.read(dm), MAX_MEMBER_BYTES * 2, `${where}: ${dm.name}`);
        return await elfFromTar(d.out, `${where}: ${dm.name}`, want);
      } finally {
        ar.close();
      }
    }
    case "tar": {
      const raw = await input.bytes();
      const d = decompressBuffer(raw, MAX_MEMBER_BYTES * 2, where);
      return elfFromTar(d.out, where, want);
    }
    case "zip": {
      const zip = ZipReader.open(input.path, { maxMemberBytes: MAX_MEMBER_BYTES });
      try {
        const out = new Map<string, ArtifactFile>();
        for (const m of zip.members) {
          const p = "/" + m.name;
          if (m.type !== "file" || !want.has(p) || !zip.canDecode(m)) continue;
          const data = zip.content(m);
          if (isElfHead(data)) out.set(p, memFile(p, data, m.mode));
        }
        return out;
      } finally {
        zip.close();
      }
    }
    default:
      notes.push(`${input.type} input ${where}: ELF members are not read for function comparison`);
      return undefined;
  }
}

const IMAGE_TYPES = new Set(["directory", "oci-layout", "docker-archive", "oci-archive"]);

/** The ELF pairs to compare, sorted by path. */
async function elfPairs(
  base: DeltaInput,
  target: DeltaInput,
  diff: EntriesDiff,
  notes: string[],
  platform: string | undefined,
): Promise<ElfPair[]> {
  if (base.type === "elf" && target.type === "elf") {
    if (base.digest === target.digest) return [];
    const [b, t] = await Promise.all([base.bytes(), target.bytes()]);
    const name = target.entries[0]?.path ?? "/target";
    return [{ path: name, base: memFile(name, b), target: memFile(name, t) }];
  }
  const want = modifiedFiles(diff);
  if (want.size === 0) return [];
  let bm: Map<string, ArtifactFile> | undefined;
  let tm: Map<string, ArtifactFile> | undefined;
  if (IMAGE_TYPES.has(base.type) && IMAGE_TYPES.has(target.type)) {
    const open = async (p: string): Promise<Map<string, ArtifactFile>> => {
      const a: Artifact = await openArtifact(p, {
        keep: (path, head) => want.has(path) && isElfHead(head),
        ...(platform === undefined ? {} : { platform }),
      });
      return new Map(a.files.map((f) => [f.path, f]));
    };
    [bm, tm] = [await open(base.path), await open(target.path)];
  } else if (base.type === target.type) {
    bm = await archiveElves(base, want, notes);
    tm = bm === undefined ? undefined : await archiveElves(target, want, notes);
  } else {
    notes.push(`base is ${base.type}, target is ${target.type}: functions not compared`);
  }
  if (bm === undefined || tm === undefined) return [];
  const pairs: ElfPair[] = [];
  for (const [path, b] of bm) {
    const t = tm.get(path);
    if (t !== undefined && t.sha256 !== b.sha256) pairs.push({ path, base: b, target: t });
  }
  return pairs.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

function withElf<T>(f: ArtifactFile, fn: (elf: ElfFile, src: ByteSource) => T): T {
  const src = f.open();
  try {
    return fn(ElfFile.open(src), src);
  } finally {
    src.close();
  }
}

/** Names (no version) of the functions a file defines in .dynsym. */
function exportedNames(elf: ElfFile): Set<string> {
  return new Set(
    readSymbols(elf, ".dynsym")
      .filter(
        (s) => (s.type === STT_FUNC || s.type === STT_GNU_IFUNC) && s.shndx !== 0 && s.shndx < SHN_LORESERVE,
      )
      .map((s) => s.name),
  );
}

/** One side stripped: compare the exported functions only, keyed by name without version. */
function compareExported(pair: ElfPair): FunctionComparison {
  const side = (f: ArtifactFile): Map<string, FuncProofFunction> =>
    withElf(f, (elf, src) => {
      const exported = exportedNames(elf);
      const proof = buildFuncProof(src, { name: f.path, tool: TOOL, sections: [] });
      const out = new Map<string, FuncProofFunction>();
      for (const fn of proof.functions) if (exported.has(fn.sym) && !out.has(fn.sym)) out.set(fn.sym, fn);
      return out;
    });
  return compareKeyedFunctions(side(pair.base), side(pair.target));
}

interface PairResult {
  change: BinaryFunctionsChange;
  lists: { added: string[]; removed: string[]; modified: string[] };
}

function comparePair(pair: ElfPair): PairResult {
  const src = (f: ArtifactFile): SymbolSource => withElf(f, (elf) => functionRanges(elf).source);
  const sb = src(pair.base);
  const st = src(pair.target);
  const change: BinaryFunctionsChange = {
    path: pair.path,
    base_sha256: pair.base.sha256,
    target_sha256: pair.target.sha256,
    symbols: { base: sb, target: st },
    compared: "none",
    added: 0,
    removed: 0,
    modified: 0,
    relocated: 0,
  };
  const empty = { added: [], removed: [], modified: [] };
  if (sb === "none" || st === "none") {
    change.note = `${sb === "none" ? "base" : "target"} has no function symbols (stripped): functions not compared`;
    return { change, lists: empty };
  }
  let lists: { added: string[]; removed: string[]; modified: string[] };
  if (sb !== st) {
    const r = compareExported(pair);
    lists = { added: r.added, removed: r.removed, modified: r.modified };
    change.compared = "exported";
    change.relocated = r.relocated;
    change.note = `symbol tables differ (base ${sb}, target ${st}): only exported (.dynsym) functions compared`;
  } else {
    const kind = "directory" as const;
    const art = (f: ArtifactFile, name: string): Artifact => ({
      kind,
      name,
      digest: `sha256:${f.sha256}`,
      files: [f],
      links: [],
    });
    const d = binaryDiff(art(pair.base, "base"), art(pair.target, "target"), {
      tool: TOOL,
      toolVersion: "1",
      sections: SECTIONS,
    });
    const f = d.findings[0];
    lists = f === undefined ? empty : f.functionsChanged;
    change.compared = "symbols";
    change.relocated = f?.functionsRelocated ?? 0;
    if (f !== undefined) change.verdict = f.verdict;
  }
  change.added = lists.added.length;
  change.removed = lists.removed.length;
  change.modified = lists.modified.length;
  return { change, lists };
}

const RANK: Record<ChangeKind, number> = { modified: 0, added: 1, removed: 2 };

/**
 * functions_changed between two delta inputs, plus the changed functions for score_inputs. Never
 * throws for an ELF it cannot read: the failure is noted and the binary counted as not compared.
 */
export async function functionsChanged(
  base: DeltaInput,
  target: DeltaInput,
  diff: EntriesDiff,
  opts: FunctionsOptions = {},
): Promise<FunctionsResult> {
  const notes: string[] = [];
  const maxBinaries = opts.maxBinaries ?? DEFAULT_MAX_BINARIES;
  let pairs: ElfPair[];
  try {
    pairs = await elfPairs(base, target, diff, notes, opts.platform);
  } catch (err) {
    notes.push(`ELF files not read: ${(err as Error).message}`);
    pairs = [];
  }
  if (pairs.length > maxBinaries) {
    notes.push(`${pairs.length} changed ELF files, only the first ${maxBinaries} (by path) compared`);
    pairs = pairs.slice(0, maxBinaries);
  }
  const per: BinaryFunctionsChange[] = [];
  const all: TopSymbol[] = [];
  for (const pair of pairs) {
    let r: PairResult;
    try {
      r = comparePair(pair);
    } catch (err) {
      per.push({
        path: pair.path,
        base_sha256: pair.base.sha256,
        target_sha256: pair.target.sha256,
        symbols: { base: "none", target: "none" },
        compared: "none",
        added: 0,
        removed: 0,
        modified: 0,
        relocated: 0,
        note: `not compared: ${(err as Error).message}`,
      });
      continue;
    }
    per.push(r.change);
    for (const change of ["modified", "added", "removed"] as const) {
      for (const symbol of r.lists[change]) all.push({ symbol, change, path: pair.path });
    }
  }
  all.sort(
    (a, b) =>
      RANK[a.change] - RANK[b.change] ||
      (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) ||
      (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0),
  );
  const sum = (k: "added" | "removed" | "modified"): number => per.reduce((n, p) => n + p[k], 0);
  return {
    summary: {
      binaries: per.length,
      added: sum("added"),
      removed: sum("removed"),
      modified: sum("modified"),
      top_symbols: all.slice(0, TOP_SYMBOLS),
      per_binary: per,
      notes,
    },
    changed: all.slice(0, MAX_SCORED_FUNCTIONS).map((s) => ({ symbol: s.symbol, change: s.change })),
  };
}

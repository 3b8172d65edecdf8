import type { Artifact, ArtifactFile } from "../artifacts/artifact.ts";
import { SHN_LORESERVE, STT_FUNC, STT_GNU_IFUNC } from "../elf/constants.ts";
import { ElfFile } from "../elf/elf-file.ts";
import { readSymbols } from "../elf/symbols.ts";
import type { Blake3 } from "../hash/digest.ts";
import { buildFuncProof, type FuncProof, type FuncProofFunction } from "../funcproof/funcproof.ts";
import { classify, type Verdict } from "./verdict.ts";

export const BINARYDIFF_PREDICATE_TYPE = "stellaops.binarydiff.v1";

export type ChangeType = "added" | "removed" | "modified" | "unchanged";
export type SectionStatus = "identical" | "modified" | "added" | "removed";

export interface SectionDelta {
  section: string;
  status: SectionStatus;
  baseSha256?: string;
  targetSha256?: string;
}

export interface Finding {
  path: string;
  changeType: ChangeType;
  binaryFormat: "elf";
  base?: { sha256: string; buildId?: string; arch: string };
  target?: { sha256: string; buildId?: string; arch: string };
  sectionDeltas: SectionDelta[];
  functionsChanged: { added: string[]; removed: string[]; modified: string[] };
  /** Functions whose bytes changed only where code or data moved (same normalised hash). */
  functionsRelocated: number;
  confidence: number;
  confidenceReasons: string[];
  verdict: Verdict;
}

export interface Subject {
  name: string;
  digest: { sha256: string };
  platform?: { os: string; architecture: string };
}

export interface BinaryDiffV1 {
  subjects: Subject[];
  inputs: {
    base: { name: string; digest: string; kind: string };
    target: { name: string; digest: string; kind: string };
  };
  findings: Finding[];
  metadata: {
    toolName: string;
    toolVersion: string;
    sections: string[];
    summary: Record<ChangeType, number> & { binaries: number };
    /** Only when injected (--created-at / SOURCE_DATE_EPOCH): signed payloads carry no wall clock. */
    createdAt?: string;
  };
}

export interface DiffOptions {
  tool: string;
  toolVersion: string;
  sections: string[];
  maxSectionBytes?: number;
  blake3?: Blake3;
  createdAt?: string;
  onFile?: (done: number, total: number, path: string) => void;
}

/** Compares the ELF files of two artifacts, paired by path (a single-file pair is paired directly). */
export function binaryDiff(base: Artifact, target: Artifact, opts: DiffOptions): BinaryDiffV1 {
  const pairs = pairFiles(base, target);
  const findings: Finding[] = [];
  for (const [i, [path, b, t]] of pairs.entries()) {
    opts.onFile?.(i, pairs.length, path);
    findings.push(compareFile(path, b, t, opts));
  }
  opts.onFile?.(pairs.length, pairs.length, "");
  const summary = { binaries: findings.length, added: 0, removed: 0, modified: 0, unchanged: 0 };
  for (const f of findings) summary[f.changeType]++;
  const subject: Subject = { name: target.name, digest: { sha256: stripAlgo(target.digest) } };
  if (target.platform) subject.platform = target.platform;
  const doc: BinaryDiffV1 = {
    subjects: [subject],
    inputs: {
      base: { name: base.name, digest: base.digest, kind: base.kind },
      target: { name: target.name, digest: target.digest, kind: target.kind },
    },
    findings,
    metadata: {
      toolName: opts.tool,
      toolVersion: opts.toolVersion,
      sections: [...opts.sections].sort(),
      summary,
    },
  };
  if (opts.createdAt !== undefined) doc.metadata.createdAt = opts.createdAt;
  return doc;
}

function stripAlgo(digest: string): string {
  return digest.startsWith("sha256:") ? digest.slice(7) : digest;
}

type Pair = [string, ArtifactFile | undefined, ArtifactFile | undefined];

function pairFiles(base: Artifact, target: Artifact): Pair[] {
  const [b0, t0] = [base.files[0], target.files[0]];
  if (base.kind === "elf" && target.kind === "elf" && b0 && t0) return [[t0.path, b0, t0]];
  const byPath = new Map<string, Pair>();
  for (const f of base.files) byPath.set(f.path, [f.path, f, undefined]);
  for (const f of target.files) {
    const p = byPath.get(f.path);
    if (p) p[2] = f;
    else byPath.set(f.path, [f.path, undefined, f]);
  }
  return [...byPath.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function proofOf(file: ArtifactFile, opts: DiffOptions): FuncProof {
  const src = file.open();
  try {
    const p: Parameters<typeof buildFuncProof>[1] = {
      name: file.path,
      tool: opts.tool,
      sections: opts.sections,
    };
    if (opts.maxSectionBytes !== undefined) p.maxSectionBytes = opts.maxSectionBytes;
    return buildFuncProof(src, p);
  } finally {
    src.close();
  }
}

function side(p: FuncProof): { sha256: string; buildId?: string; arch: string } {
  const out: { sha256: string; buildId?: string; arch: string } = { sha256: p.file.sha256, arch: p.arch };
  if (p.buildId !== undefined) out.buildId = p.buildId;
  return out;
}

function compareFile(
  path: string,
  b: ArtifactFile | undefined,
  t: ArtifactFile | undefined,
  opts: DiffOptions,
): Finding {
  const empty = { added: [], removed: [], modified: [] };
  if (!b || !t) {
    const only = proofOf((b ?? t) as ArtifactFile, opts);
    const f: Finding = {
      path,
      changeType: b ? "removed" : "added",
      binaryFormat: "elf",
      sectionDeltas: Object.entries(only.sections).map(([section, h]) => {
        const d: SectionDelta = { section, status: b ? "removed" : "added" };
        if (h.sha256 !== undefined) d[b ? "baseSha256" : "targetSha256"] = h.sha256;
        return d;
      }),
      functionsChanged: empty,
      functionsRelocated: 0,
      confidence: 1,
      confidenceReasons: [b ? "binary absent from target" : "binary absent from base"],
      verdict: "unknown",
    };
    f[b ? "base" : "target"] = side(only);
    return f;
  }
  if (b.sha256 === t.sha256) {
    const r = classify({
      identicalFile: true,
      changedSections: [],
      functionLevel: false,
      functionsTotal: 0,
      added: 0,
      removed: 0,
      modified: 0,
      exportsChanged: 0,
    });
    return {
      path,
      changeType: "unchanged",
      binaryFormat: "elf",
      sectionDeltas: [],
      functionsChanged: empty,
      functionsRelocated: 0,
      confidence: r.confidence,
      confidenceReasons: r.reasons,
      verdict: r.verdict,
    };
  }
  const pb = proofOf(b, opts);
  const pt = proofOf(t, opts);
  const sectionDeltas = compareSections(pb, pt);
  const fc = compareFunctions(pb.functions, pt.functions);
  const incompatible =
    pb.arch !== pt.arch || pb.elf.class !== pt.elf.class
      ? `base is ${pb.arch}/ELF${pb.elf.class}, target is ${pt.arch}/ELF${pt.elf.class}`
      : undefined;
  const functionLevel =
    pb.functions.length > 0 &&
    pt.functions.length > 0 &&
    pb.meta.normalization !== "none" &&
    pt.meta.normalization !== "none";
  const r = classify({
    identicalFile: false,
    ...(incompatible !== undefined ? { incompatible } : {}),
    changedSections: sectionDeltas.filter((d) => d.status !== "identical").map((d) => d.section),
    functionLevel,
    functionsTotal: Math.max(pb.functions.length, pt.functions.length),
    added: fc.added.length,
    removed: fc.removed.length,
    modified: fc.modified.length,
    exportsChanged: exportsChanged(b, t),
  });
  return {
    path,
    changeType: "modified",
    binaryFormat: "elf",
    base: side(pb),
    target: side(pt),
    sectionDeltas,
    functionsChanged: { added: fc.added, removed: fc.removed, modified: fc.modified },
    functionsRelocated: fc.relocated,
    confidence: r.confidence,
    confidenceReasons: r.reasons,
    verdict: r.verdict,
  };
}

function compareSections(b: FuncProof, t: FuncProof): SectionDelta[] {
  const names = [...new Set([...Object.keys(b.sections), ...Object.keys(t.sections)])].sort();
  return names.map((section) => {
    const hb = b.sections[section]?.sha256;
    const ht = t.sections[section]?.sha256;
    const status: SectionStatus =
      b.sections[section] === undefined
        ? "added"
        : t.sections[section] === undefined
          ? "removed"
          : hb === ht
            ? "identical"
            : "modified";
    const d: SectionDelta = { section, status };
    if (hb !== undefined) d.baseSha256 = hb;
    if (ht !== undefined) d.targetSha256 = ht;
    return d;
  });
}

/**
 * Functions keyed by name (and version); repeated local names (static functions of two
 * translation units) are told apart by their order of appearance: `name#2`.
 */
function keyed(fns: FuncProofFunction[]): Map<string, FuncProofFunction> {
  const out = new Map<string, FuncProofFunction>();
  for (const f of fns) {
    const base = f.version !== undefined ? `${f.sym}@${f.version}` : f.sym;
    let key = base;
    for (let n = 2; out.has(key); n++) key = `${base}#${n}`;
    out.set(key, f);
  }
  return out;
}

function compareFunctions(base: FuncProofFunction[], target: FuncProofFunction[]): FunctionComparison {
  return compareKeyedFunctions(keyed(base), keyed(target));
}

export interface FunctionComparison {
  added: string[];
  removed: string[];
  modified: string[];
  /** Functions whose bytes differ only in masked PC-relative targets (they moved). */
  relocated: number;
}

/** Two sides' functions by key (name, or name@version) compared; the lists sorted. */
export function compareKeyedFunctions(
  b: ReadonlyMap<string, FuncProofFunction>,
  t: ReadonlyMap<string, FuncProofFunction>,
): FunctionComparison {
  const added: string[] = [];
  const removed: string[] = [];
  const modified: string[] = [];
  let relocated = 0;
  for (const [k, ft] of t) {
    const fb = b.get(k);
    if (!fb) {
      added.push(k);
      continue;
    }
    // Normalised hashes ignore code that merely moved; without them, raw bytes decide.
    const same =
      fb.normSha256 !== undefined && ft.normSha256 !== undefined
        ? fb.normSha256 === ft.normSha256
        : fb.sha256 === ft.sha256;
    if (!same) modified.push(k);
    else if (fb.sha256 !== ft.sha256) relocated++;
  }
  for (const k of b.keys()) if (!t.has(k)) removed.push(k);
  return { added: added.sort(), removed: removed.sort(), modified: modified.sort(), relocated };
}

/** Exported (defined, dynamic) functions present on one side only. */
function exportsChanged(b: ArtifactFile, t: ArtifactFile): number {
  const exported = (f: ArtifactFile): Set<string> => {
    const src = f.open();
    try {
      const elf = ElfFile.open(src);
      return new Set(
        readSymbols(elf, ".dynsym")
          .filter(
            (s) =>
              (s.type === STT_FUNC || s.type === STT_GNU_IFUNC) && s.shndx !== 0 && s.shndx < SHN_LORESERVE,
          )
          .map((s) => `${s.name}@${s.version ?? ""}`),
      );
    } finally {
      src.close();
    }
  };
  const eb = exported(b);
  const et = exported(t);
  let n = 0;
  for (const s of eb) if (!et.has(s)) n++;
  for (const s of et) if (!eb.has(s)) n++;
  return n;
}

// Replaying a FuncProof: recompute every hash it states from the bytes at hand and name what no longer matches.
// The auditor's question is "is this still the binary the signed proof describes, and if not, where does it
// differ?": the answer names the file, each section and each function whose hash changed.
import { StellaError } from "../errors.ts";
import type { Blake3 } from "../hash/digest.ts";
import type { ByteSource } from "../io/byte-source.ts";
import { buildFuncProof, type FuncProof, type FuncProofFunction } from "./funcproof.ts";

export type ReplayMismatchKind =
  | "file"
  | "buildId"
  | "section"
  | "section-missing"
  | "function"
  | "function-missing"
  | "function-extra"
  | "unreadable";

export interface ReplayMismatch {
  kind: ReplayMismatchKind;
  /** The section name, `sym@start` for functions, the file name otherwise. */
  name: string;
  /** The field that differs: sha256, blake3, size, offset, end, … */
  field?: string;
  expected?: string;
  actual?: string;
}

export interface ReplayResult {
  ok: boolean;
  /** Hashes recomputed and compared (file, sections, functions). */
  checked: { sections: number; functions: number };
  mismatches: ReplayMismatch[];
}

export interface ReplayOptions {
  /** Needed when the proof records BLAKE3 hashes (they are replayed too). */
  blake3?: Blake3;
}

/** Recomputes the proof from `src` with the proof's own section list and compares every hash. */
export function replayFuncProof(
  expected: FuncProof,
  src: ByteSource,
  opts: ReplayOptions = {},
): ReplayResult {
  const sections = Object.keys(expected.sections).sort();
  const wantsBlake3 =
    expected.file.blake3 !== undefined ||
    Object.values(expected.sections).some((s) => s.blake3 !== undefined);
  if (wantsBlake3 && opts.blake3 === undefined) {
    throw new StellaError("REPLAY_BLAKE3", `${expected.file.name}: the proof records BLAKE3; pass a hasher`);
  }
  let actual: FuncProof;
  try {
    actual = buildFuncProof(src, {
      name: expected.file.name,
      tool: "replay",
      sections,
      // A section the proof skipped stays skipped; every other one is hashed whatever its size.
      maxSectionBytes: Number.MAX_SAFE_INTEGER,
      ...(wantsBlake3 && opts.blake3 ? { blake3: opts.blake3 } : {}),
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      checked: { sections: 0, functions: 0 },
      mismatches: [{ kind: "unreadable", name: expected.file.name, actual: why }],
    };
  }
  const mismatches: ReplayMismatch[] = [];
  const file = expected.file.name;
  for (const field of ["sha256", "size", "blake3"] as const) {
    const want = expected.file[field];
    if (want === undefined) continue;
    const got = actual.file[field];
    if (String(want) !== String(got)) {
      mismatches.push({ kind: "file", name: file, field, expected: String(want), actual: String(got) });
    }
  }
  if (expected.buildId !== actual.buildId) {
    mismatches.push({
      kind: "buildId",
      name: file,
      field: "buildId",
      expected: expected.buildId ?? "(none)",
      actual: actual.buildId ?? "(none)",
    });
  }

  let sectionsChecked = 0;
  for (const name of sections) {
    const want = expected.sections[name];
    if (want === undefined || want.skipped !== undefined) continue;
    const got = actual.sections[name];
    sectionsChecked++;
    if (got === undefined) {
      mismatches.push({ kind: "section-missing", name });
      continue;
    }
    for (const field of ["sha256", "blake3", "size", "offset"] as const) {
      const w = want[field];
      if (w === undefined) continue;
      const g = got[field];
      if (String(w) !== String(g)) {
        mismatches.push({ kind: "section", name, field, expected: String(w), actual: String(g ?? "(none)") });
      }
    }
  }

  const key = (f: FuncProofFunction): string => `${f.sym}@${f.start}`;
  const have = new Map(actual.functions.map((f) => [key(f), f]));
  const seen = new Set<string>();
  for (const want of expected.functions) {
    const k = key(want);
    seen.add(k);
    const got = have.get(k);
    if (got === undefined) {
      mismatches.push({ kind: "function-missing", name: k });
      continue;
    }
    for (const field of ["end", "sha256", "normSha256"] as const) {
      const w = want[field];
      if (w === undefined) continue;
      if (w !== got[field]) {
        mismatches.push({ kind: "function", name: k, field, expected: w, actual: got[field] ?? "(none)" });
      }
    }
  }
  for (const f of actual.functions) {
    if (!seen.has(key(f))) mismatches.push({ kind: "function-extra", name: key(f) });
  }
  return {
    ok: mismatches.length === 0,
    checked: { sections: sectionsChecked, functions: expected.functions.length },
    mismatches,
  };
}

/** One line per mismatch, for people. */
export function describeMismatch(m: ReplayMismatch): string {
  const short = (v: string | undefined): string =>
    v !== undefined && v.length > 16 ? `${v.slice(0, 16)}…` : (v ?? "");
  switch (m.kind) {
    case "file":
      return `file ${m.field ?? ""} differs (expected ${short(m.expected)}, got ${short(m.actual)})`;
    case "buildId":
      return `BuildID differs (expected ${m.expected ?? ""}, got ${m.actual ?? ""})`;
    case "section":
      return `section ${m.name} ${m.field ?? ""} differs (expected ${short(m.expected)}, got ${short(m.actual)})`;
    case "section-missing":
      return `section ${m.name} is missing`;
    case "function":
      return `function ${m.name} ${m.field ?? ""} differs (expected ${short(m.expected)}, got ${short(m.actual)})`;
    case "function-missing":
      return `function ${m.name} is missing`;
    case "function-extra":
      return `function ${m.name} is not in the proof`;
    case "unreadable":
      return `cannot be read as ELF: ${m.actual ?? ""}`;
  }
}

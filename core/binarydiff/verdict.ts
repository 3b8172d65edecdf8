/**
 * Verdict classification for a modified binary, as in the seed ("Binary Diff Attestation",
 * Verdicts): `patched` ≥ 0.90, `vanilla` ≥ 0.95, `unknown` below, `incompatible` when the two
 * sides cannot be compared. Every point of confidence comes with the reason it was given, and
 * the reasons travel in the predicate so a reader can check the arithmetic.
 */
export type Verdict = "vanilla" | "patched" | "unknown" | "incompatible";

export interface VerdictInput {
  identicalFile: boolean;
  incompatible?: string;
  /** Sections whose hashes differ. */
  changedSections: string[];
  /** Function-level evidence exists on both sides (symbols and normalised hashes). */
  functionLevel: boolean;
  functionsTotal: number;
  added: number;
  removed: number;
  modified: number;
  /** Exported (dynamic) functions added or removed: an ABI change. */
  exportsChanged: number;
}

export interface VerdictResult {
  verdict: Verdict;
  confidence: number;
  reasons: string[];
}

const PATCHED_THRESHOLD = 0.9;
/** A change touching at most this share of functions (and at most LOCAL_MAX_FUNCTIONS) is "localised". */
const LOCAL_SHARE = 0.1;
const LOCAL_MAX_FUNCTIONS = 20;
const CODE_SECTIONS = new Set([".text", ".init", ".fini", ".plt", ".plt.got", ".plt.sec"]);

export function classify(v: VerdictInput): VerdictResult {
  if (v.incompatible !== undefined) {
    return { verdict: "incompatible", confidence: 0, reasons: [`cannot compare: ${v.incompatible}`] };
  }
  if (v.identicalFile)
    return { verdict: "vanilla", confidence: 1, reasons: ["file bytes identical (sha256)"] };
  const codeChanged = v.changedSections.some((s) => CODE_SECTIONS.has(s));
  if (!codeChanged && v.modified + v.added + v.removed === 0) {
    return {
      verdict: "vanilla",
      confidence: 0.95,
      reasons: [
        `code sections identical; only ${v.changedSections.join(", ") || "non-section bytes"} differ`,
      ],
    };
  }
  let c = 0.5;
  const reasons = ["+0.50 base: the binary's code changed"];
  if (v.functionLevel) {
    c += 0.2;
    reasons.push("+0.20 function-level evidence: symbols and normalised hashes on both sides");
  } else {
    reasons.push("+0.00 no function-level evidence (no symbols, or no normaliser for the architecture)");
  }
  if (v.exportsChanged === 0) {
    c += 0.15;
    reasons.push("+0.15 exported functions unchanged (ABI-stable, as a backport is)");
  } else {
    reasons.push(
      `+0.00 ${v.exportsChanged} exported functions added or removed (an ABI change, not a backport)`,
    );
  }
  const touched = v.modified + v.added + v.removed;
  if (
    v.functionLevel &&
    touched > 0 &&
    touched <= LOCAL_MAX_FUNCTIONS &&
    touched <= v.functionsTotal * LOCAL_SHARE
  ) {
    c += 0.1;
    reasons.push(`+0.10 localised: ${touched} of ${v.functionsTotal} functions touched`);
  } else if (v.functionLevel) {
    reasons.push(
      `+0.00 not localised: ${touched} of ${v.functionsTotal} functions touched (limit ${LOCAL_MAX_FUNCTIONS} and ${LOCAL_SHARE * 100}%)`,
    );
  }
  const confidence = Math.round(c * 100) / 100;
  return { verdict: confidence >= PATCHED_THRESHOLD ? "patched" : "unknown", confidence, reasons };
}

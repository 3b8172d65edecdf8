// delta_risk: a pure, deterministic score in [0, 1] over the `score_inputs` recorded in a delta
// manifest, with a per-factor breakdown that says why. No clock, no I/O: anything time-dependent
// (signature and key ages) is already an input. Formulas: docs/delta-risk.md.
import { RiskError, describeValue } from "./errors.ts";
import { FACTORS, policyHash, symbolCriticality, type Factor, type RiskPolicy } from "./policy.ts";

export type SlsaStatus = "absent" | "present-unverified" | "verified";
export type TlogStatus = "absent" | "unverified" | "verified";
export type ChangeKind = "added" | "removed" | "modified";

export interface ProvenanceInputs {
  readonly slsaProvenance: SlsaStatus;
  /** SLSA level (0..4) of verified provenance, when known (e.g. from the builder id). */
  readonly slsaLevel?: number;
  /** A DSSE signature over evidence for the target verified with a trusted key. */
  readonly dsseValid: boolean;
  readonly transparencyLog: TlogStatus;
  /** Why: gaps and failures found while computing the above (copied into the breakdown's reasons). */
  readonly notes?: readonly string[];
}

export interface EntropyInputs {
  readonly copiedBytes: number;
  readonly addedBytes: number;
  readonly targetBytes: number;
  /** Shannon entropy (0..8 bits/byte) of the ADD bytes (inputs.ts entropyOf). */
  readonly addedEntropyBitsPerByte: number;
}

export interface DepsInputs {
  readonly added: number;
  readonly removed: number;
  readonly changed: number;
}

export interface AttestationInputs {
  readonly signatures: number;
  readonly trustedSignatures: number;
  readonly newestSignatureAgeDays?: number;
  readonly keyAgeDays?: number;
  readonly expired?: boolean;
  readonly notes?: readonly string[];
}

export interface ChangedFunction {
  readonly symbol: string;
  readonly change: ChangeKind;
  /** 0..1; the policy's criticalSymbols can raise it, never lower it. */
  readonly criticality?: number;
  /** 0..1: share of CPU the agents observed in this function in the base image (issue 7's hook). */
  readonly hotness?: number;
}

export interface FunctionInputs {
  /** Totals; `changed` may list only some of them (e.g. the top symbols). */
  readonly added: number;
  readonly removed: number;
  readonly modified: number;
  readonly changed: readonly ChangedFunction[];
}

/** What a delta manifest stores as `score_inputs`: JSON-serialisable, so a score can be recomputed. */
export interface ScoreInputs {
  readonly provenance: ProvenanceInputs;
  readonly entropy: EntropyInputs;
  readonly deps: DepsInputs;
  readonly attestation: AttestationInputs;
  readonly functions: FunctionInputs;
}

export interface FactorBreakdown {
  readonly factor: Factor;
  /** The factor's own risk, 0 (none) .. 1 (maximal). */
  readonly value: number;
  /** The policy weight normalised by the sum of all weights (the five add up to 1). */
  readonly weight: number;
  /** value × weight: this factor's share of the score. */
  readonly contribution: number;
  readonly reasons: readonly string[];
}

export interface RiskResult {
  /** delta_risk in [0, 1] (0 = no risk), the sum of the contributions before rounding, rounded to 1e-6. */
  readonly score: number;
  /** Completeness of provenance in [0, 1] (1 - provenance_completeness's value). */
  readonly provenanceCompleteness: number;
  readonly maxDeltaRisk: number;
  readonly minProvenance: number;
  readonly hints: {
    /** score > maxDeltaRisk */
    readonly exceedsMax: boolean;
    /** provenanceCompleteness < minProvenance */
    readonly provenanceBelowMin: boolean;
  };
  /** Sorted by contribution (descending), then by factor name. */
  readonly breakdown: readonly FactorBreakdown[];
  /** The first three of `breakdown`. */
  readonly topContributors: readonly { readonly factor: Factor; readonly contribution: number }[];
  /** policyHash(policy): which policy produced this result. */
  readonly policyHash: string;
}

/** Every number we emit is rounded to 1e-6, so the same inputs give byte-identical JSON. */
export function round6(x: number): number {
  const r = Math.round(x * 1e6) / 1e6;
  return r === 0 ? 0 : r; // no -0
}

/** Numbers in reasons: the rounded value, shortest form. */
function fmt(x: number): string {
  return String(round6(x));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** 0 at or below `grace`, 1 at or above `max`, linear between. */
function ramp(x: number, grace: number, max: number): number {
  return clamp01((x - grace) / (max - grace));
}

// ---- validation of score_inputs ----------------------------------------------------------------------

export const MAX_CHANGED_FUNCTIONS = 1_000_000;
export const MAX_NOTES = 256;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class InputChecker {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  fail(field: string, limit: string): RiskError {
    return new RiskError("RISK_INPUTS_INVALID", this.file, field, limit);
  }

  mapping(v: unknown, field: string, keys: readonly string[]): Obj {
    if (!isObj(v)) throw this.fail(field || "(root)", `must be a mapping, got ${describeValue(v)}`);
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) {
        throw this.fail(field ? `${field}.${k}` : k, `unknown key (expected one of: ${keys.join(", ")})`);
      }
    }
    return v;
  }

  count(v: unknown, field: string): number {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      throw this.fail(field, `must be a non-negative integer, got ${describeValue(v)}`);
    }
    return v;
  }

  range(v: unknown, field: string, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
      throw this.fail(field, `must be a number in [${min}, ${max}], got ${describeValue(v)}`);
    }
    return v;
  }

  days(v: unknown, field: string): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw this.fail(field, `must be a non-negative number of days, got ${describeValue(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T {
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      throw this.fail(field, `must be one of ${values.join(", ")}, got ${describeValue(v)}`);
    }
    return v as T;
  }

  bool(v: unknown, field: string): boolean {
    if (typeof v !== "boolean") throw this.fail(field, `must be true or false, got ${describeValue(v)}`);
    return v;
  }

  notes(v: unknown, field: string): string[] | undefined {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length > MAX_NOTES || !v.every((s) => typeof s === "string")) {
      throw this.fail(field, `must be a list of at most ${MAX_NOTES} strings`);
    }
    return v;
  }
}

/**
 * Validates an UNTRUSTED `score_inputs` value (from a delta manifest or a CR) and returns it typed.
 * Unknown keys are refused (a field we would silently ignore would make the score irreproducible);
 * `name` prefixes every error, e.g. `delta-manifest.json: score_inputs`.
 */
export function parseScoreInputs(value: unknown, name = "score_inputs"): ScoreInputs {
  const c = new InputChecker(name);
  const root = c.mapping(value, "", ["provenance", "entropy", "deps", "attestation", "functions"]);

  const p = c.mapping(root["provenance"], "provenance", [
    "slsaProvenance",
    "slsaLevel",
    "dsseValid",
    "transparencyLog",
    "notes",
  ]);
  const slsaLevel = p["slsaLevel"];
  if (slsaLevel !== undefined && (typeof slsaLevel !== "number" || !Number.isInteger(slsaLevel))) {
    throw c.fail("provenance.slsaLevel", `must be an integer in [0, 4], got ${describeValue(slsaLevel)}`);
  }
  const provenance: ProvenanceInputs = {
    slsaProvenance: c.oneOf(p["slsaProvenance"], "provenance.slsaProvenance", [
      "absent",
      "present-unverified",
      "verified",
    ]),
    ...(slsaLevel === undefined ? {} : { slsaLevel: c.range(slsaLevel, "provenance.slsaLevel", 0, 4) }),
    dsseValid: c.bool(p["dsseValid"], "provenance.dsseValid"),
    transparencyLog: c.oneOf(p["transparencyLog"], "provenance.transparencyLog", [
      "absent",
      "unverified",
      "verified",
    ]),
    ...optional("notes", c.notes(p["notes"], "provenance.notes")),
  };

  const e = c.mapping(root["entropy"], "entropy", [
    "copiedBytes",
    "addedBytes",
    "targetBytes",
    "addedEntropyBitsPerByte",
  ]);
  const entropy: EntropyInputs = {
    copiedBytes: c.count(e["copiedBytes"], "entropy.copiedBytes"),
    addedBytes: c.count(e["addedBytes"], "entropy.addedBytes"),
    targetBytes: c.count(e["targetBytes"], "entropy.targetBytes"),
    addedEntropyBitsPerByte: c.range(e["addedEntropyBitsPerByte"], "entropy.addedEntropyBitsPerByte", 0, 8),
  };

  const d = c.mapping(root["deps"], "deps", ["added", "removed", "changed"]);
  const deps: DepsInputs = {
    added: c.count(d["added"], "deps.added"),
    removed: c.count(d["removed"], "deps.removed"),
    changed: c.count(d["changed"], "deps.changed"),
  };

  const a = c.mapping(root["attestation"], "attestation", [
    "signatures",
    "trustedSignatures",
    "newestSignatureAgeDays",
    "keyAgeDays",
    "expired",
    "notes",
  ]);
  const signatures = c.count(a["signatures"], "attestation.signatures");
  const trustedSignatures = c.count(a["trustedSignatures"], "attestation.trustedSignatures");
  if (trustedSignatures > signatures) {
    throw c.fail(
      "attestation.trustedSignatures",
      `must be at most signatures (${signatures}), got ${trustedSignatures}`,
    );
  }
  const attestation: AttestationInputs = {
    signatures,
    trustedSignatures,
    ...optional(
      "newestSignatureAgeDays",
      c.days(a["newestSignatureAgeDays"], "attestation.newestSignatureAgeDays"),
    ),
    ...optional("keyAgeDays", c.days(a["keyAgeDays"], "attestation.keyAgeDays")),
    ...optional(
      "expired",
      a["expired"] === undefined ? undefined : c.bool(a["expired"], "attestation.expired"),
    ),
    ...optional("notes", c.notes(a["notes"], "attestation.notes")),
  };

  const f = c.mapping(root["functions"], "functions", ["added", "removed", "modified", "changed"]);
  const changedRaw = f["changed"];
  if (!Array.isArray(changedRaw)) {
    throw c.fail("functions.changed", `must be a list, got ${describeValue(changedRaw)}`);
  }
  if (changedRaw.length > MAX_CHANGED_FUNCTIONS) {
    throw c.fail(
      "functions.changed",
      `${changedRaw.length} entries, over the limit of ${MAX_CHANGED_FUNCTIONS}`,
    );
  }
  const changed = changedRaw.map((entry: unknown, i): ChangedFunction => {
    const where = `functions.changed[${i}]`;
    const o = c.mapping(entry, where, ["symbol", "change", "criticality", "hotness"]);
    if (typeof o["symbol"] !== "string" || o["symbol"] === "") {
      throw c.fail(`${where}.symbol`, `must be a non-empty string, got ${describeValue(o["symbol"])}`);
    }
    return {
      symbol: o["symbol"],
      change: c.oneOf(o["change"], `${where}.change`, ["added", "removed", "modified"]),
      ...optional(
        "criticality",
        o["criticality"] === undefined ? undefined : c.range(o["criticality"], `${where}.criticality`, 0, 1),
      ),
      ...optional(
        "hotness",
        o["hotness"] === undefined ? undefined : c.range(o["hotness"], `${where}.hotness`, 0, 1),
      ),
    };
  });
  const functions: FunctionInputs = {
    added: c.count(f["added"], "functions.added"),
    removed: c.count(f["removed"], "functions.removed"),
    modified: c.count(f["modified"], "functions.modified"),
    changed,
  };
  return { provenance, entropy, deps, attestation, functions };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

// ---- the factors -------------------------------------------------------------------------------------

interface FactorValue {
  readonly value: number;
  readonly reasons: string[];
}

/** Provenance completeness C in [0, 1]; the factor's value is 1 - C. */
function provenanceFactor(p: ProvenanceInputs, policy: RiskPolicy): FactorValue & { completeness: number } {
  const t = policy.thresholds.provenance;
  const reasons: string[] = [];
  let slsa: number;
  switch (p.slsaProvenance) {
    case "absent":
      slsa = 0;
      reasons.push("provenance gap: no SLSA provenance for the target (no SLSA credit)");
      break;
    case "present-unverified":
      slsa = t.unverifiedSlsaCredit;
      reasons.push(`provenance gap: SLSA provenance present but not verified (credit ${fmt(slsa)})`);
      break;
    case "verified": {
      const level = p.slsaLevel ?? 1;
      slsa = 0.5 + (0.5 * Math.min(level, t.targetSlsaLevel)) / t.targetSlsaLevel;
      reasons.push(
        p.slsaLevel === undefined
          ? `SLSA provenance verified, level unknown: counted as level 1 of ${t.targetSlsaLevel} (credit ${fmt(slsa)})`
          : `SLSA provenance verified, level ${level} of ${t.targetSlsaLevel} (credit ${fmt(slsa)})`,
      );
      break;
    }
  }
  const dsse = p.dsseValid ? 1 : 0;
  reasons.push(p.dsseValid ? "DSSE signature valid" : "no valid DSSE signature with a trusted key");
  let tlog: number;
  switch (p.transparencyLog) {
    case "absent":
      tlog = 0;
      reasons.push("no transparency-log entry");
      break;
    case "unverified":
      tlog = t.unverifiedTlogCredit;
      reasons.push(`transparency-log entry present, inclusion not verified (credit ${fmt(tlog)})`);
      break;
    case "verified":
      tlog = 1;
      reasons.push("transparency-log inclusion verified");
      break;
  }
  const total = t.slsaWeight + t.dsseWeight + t.transparencyLogWeight;
  const completeness = clamp01(
    (t.slsaWeight * slsa + t.dsseWeight * dsse + t.transparencyLogWeight * tlog) / total,
  );
  reasons.push(`provenance completeness ${fmt(completeness)} (minimum ${fmt(policy.minProvenance)})`);
  for (const note of p.notes ?? []) reasons.push(`note: ${note}`);
  return { value: 1 - completeness, reasons, completeness };
}

function entropyFactor(e: EntropyInputs, policy: RiskPolicy): FactorValue {
  const t = policy.thresholds.entropy;
  const ratio = e.addedBytes / Math.max(e.targetBytes, e.copiedBytes + e.addedBytes, 1);
  const absolute = e.addedBytes / (e.addedBytes + t.addedBytesSaturation);
  const volume = Math.max(ratio, absolute);
  const high = clamp01(
    (e.addedEntropyBitsPerByte - t.lowBitsPerByte) / (t.highBitsPerByte - t.lowBitsPerByte),
  );
  const multiplier = t.floor + (1 - t.floor) * high;
  const value = clamp01(volume * multiplier);
  const reasons = [
    `${e.addedBytes} bytes added, ${e.copiedBytes} copied, target ${e.targetBytes} bytes (ADD ratio ${fmt(ratio)}, volume ${fmt(volume)})`,
    `added bytes carry ${fmt(e.addedEntropyBitsPerByte)} bits/byte (multiplier ${fmt(multiplier)})`,
  ];
  if (e.addedBytes > 0 && e.addedEntropyBitsPerByte >= t.highBitsPerByte) {
    reasons.push("added bytes look compressed or encrypted (unexpected high entropy)");
  }
  return { value, reasons };
}

function depsFactor(d: DepsInputs, policy: RiskPolicy): FactorValue {
  const t = policy.thresholds.deps;
  const n = d.added + t.changedWeight * d.changed + t.removedWeight * d.removed;
  return {
    value: n / (n + t.saturation),
    reasons: [
      `${d.added} new, ${d.changed} changed, ${d.removed} removed dependencies (weighted count ${fmt(n)})`,
    ],
  };
}

function attestationFactor(a: AttestationInputs, policy: RiskPolicy): FactorValue {
  const t = policy.thresholds.attestation;
  const reasons = [`${a.trustedSignatures} of ${a.signatures} signature(s) verified with a trusted key`];
  let value: number;
  if (a.trustedSignatures === 0) {
    value = 1;
    reasons.push("no signature verifies with a trusted key");
  } else if (a.expired === true) {
    value = 1;
    reasons.push("the signing key(s) expired");
  } else {
    let sig: number;
    if (a.newestSignatureAgeDays === undefined) {
      sig = t.unknownAgeStaleness;
      reasons.push(`signature age unknown (staleness ${fmt(sig)} assumed)`);
    } else {
      sig = ramp(a.newestSignatureAgeDays, t.signatureGraceDays, t.signatureMaxAgeDays);
      reasons.push(`newest signature ${fmt(a.newestSignatureAgeDays)} days old (staleness ${fmt(sig)})`);
    }
    let key: number;
    if (a.keyAgeDays === undefined) {
      key = t.unknownAgeStaleness;
      reasons.push(`key age unknown (staleness ${fmt(key)} assumed)`);
    } else {
      key = ramp(a.keyAgeDays, t.keyGraceDays, t.keyMaxAgeDays);
      reasons.push(`signing key ${fmt(a.keyAgeDays)} days old (staleness ${fmt(key)})`);
    }
    value = t.staleRisk * Math.max(sig, key);
  }
  for (const note of a.notes ?? []) reasons.push(`note: ${note}`);
  return { value, reasons };
}

/** How many functions the reasons list by name. */
const LISTED_FUNCTIONS = 5;

function functionFactor(f: FunctionInputs, policy: RiskPolicy): FactorValue {
  const t = policy.thresholds.functions;
  const changeWeight: Record<ChangeKind, number> = {
    added: t.addedWeight,
    removed: t.removedWeight,
    modified: t.modifiedWeight,
  };
  const listed: Record<ChangeKind, number> = { added: 0, removed: 0, modified: 0 };
  const items = f.changed.map((fn) => {
    listed[fn.change]++;
    const pattern = symbolCriticality(policy, fn.symbol);
    const criticality = Math.max(fn.criticality ?? t.defaultCriticality, pattern ?? 0);
    const hot = Math.min(1, (fn.hotness ?? 0) / t.hotShare);
    const multiplier = 1 + policy.hotWeight * hot;
    return { fn, criticality, hot, multiplier, weight: changeWeight[fn.change] * criticality * multiplier };
  });
  let unlistedImpact = 0;
  let unlisted = 0;
  for (const kind of ["added", "modified", "removed"] as const) {
    const n = Math.max(0, f[kind] - listed[kind]);
    unlisted += n;
    unlistedImpact += n * changeWeight[kind] * t.defaultCriticality;
  }
  // Sum in a fixed order (by weight) so the score does not depend on the order of `changed`.
  const weights = items.map((i) => i.weight).sort((x, y) => x - y);
  let impact = unlistedImpact;
  for (const w of weights) impact += w;
  const value = impact / (impact + t.saturation);

  const hotCount = items.filter((i) => i.hot > 0).length;
  const reasons = [
    `${Math.max(f.added, listed.added)} added, ${Math.max(f.modified, listed.modified)} modified, ${Math.max(f.removed, listed.removed)} removed functions (weighted impact ${fmt(impact)})`,
  ];
  if (hotCount > 0) {
    reasons.push(
      `${hotCount} changed function(s) observed hot at runtime (up to ×${fmt(1 + policy.hotWeight)})`,
    );
  }
  // Ties broken by every field the text shows, so equal-weight entries list in one order whatever
  // the input order (entries equal in all of them print identically).
  const top = [...items]
    .sort(
      (x, y) =>
        y.weight - x.weight ||
        compare(x.fn.symbol, y.fn.symbol) ||
        compare(x.fn.change, y.fn.change) ||
        y.criticality - x.criticality ||
        (y.fn.hotness ?? 0) - (x.fn.hotness ?? 0),
    )
    .slice(0, LISTED_FUNCTIONS);
  for (const i of top) {
    const hot = i.hot > 0 ? `, hot ${fmt(i.fn.hotness ?? 0)} (×${fmt(i.multiplier)})` : ", cold";
    reasons.push(`${i.fn.change} ${i.fn.symbol}: criticality ${fmt(i.criticality)}${hot} → ${fmt(i.weight)}`);
  }
  if (unlisted > 0) {
    reasons.push(
      `${unlisted} unlisted changed function(s) at default criticality ${fmt(t.defaultCriticality)}`,
    );
  }
  return { value, reasons };
}

// ---- the score ---------------------------------------------------------------------------------------

/**
 * delta_risk for `inputs` under `policy`: pure and deterministic (the same inputs and policy give the
 * same result, byte for byte once serialised; the order of `functions.changed` does not matter).
 * Throws RiskError (RISK_INPUTS_INVALID) for inputs parseScoreInputs would refuse.
 */
export function deltaRisk(inputs: ScoreInputs, policy: RiskPolicy): RiskResult {
  const checked = parseScoreInputs(inputs);
  const prov = provenanceFactor(checked.provenance, policy);
  const values: Record<Factor, FactorValue> = {
    provenance_completeness: prov,
    delta_entropy: entropyFactor(checked.entropy, policy),
    new_deps_count: depsFactor(checked.deps, policy),
    signed_attestation_validity: attestationFactor(checked.attestation, policy),
    function_change_impact: functionFactor(checked.functions, policy),
  };
  let totalWeight = 0;
  for (const f of FACTORS) totalWeight += policy.weights[f];

  let score = 0;
  const breakdown: FactorBreakdown[] = FACTORS.map((factor) => {
    const { value, reasons } = values[factor];
    const weight = policy.weights[factor] / totalWeight;
    const contribution = clamp01(value) * weight;
    score += contribution;
    return {
      factor,
      value: round6(clamp01(value)),
      weight: round6(weight),
      contribution: round6(contribution),
      reasons,
    };
  });
  breakdown.sort((a, b) => b.contribution - a.contribution || (a.factor < b.factor ? -1 : 1));

  const finalScore = round6(clamp01(score));
  const completeness = round6(prov.completeness);
  return {
    score: finalScore,
    provenanceCompleteness: completeness,
    maxDeltaRisk: policy.maxDeltaRisk,
    minProvenance: policy.minProvenance,
    hints: {
      exceedsMax: finalScore > policy.maxDeltaRisk,
      provenanceBelowMin: completeness < policy.minProvenance,
    },
    breakdown,
    topContributors: breakdown.slice(0, 3).map((b) => ({ factor: b.factor, contribution: b.contribution })),
    policyHash: policyHash(policy),
  };
}

/**
 * The runtime-hotness hook (issue 7): a copy of `inputs` whose changed functions carry the hotness
 * `lookup` returns for their symbol (share of CPU observed in the base image, clamped to [0, 1]);
 * functions the lookup does not know (undefined) keep what they had. The operator passes a lookup
 * over its hot-symbol index; the result goes to deltaRisk unchanged.
 */
export function withHotness(
  inputs: ScoreInputs,
  lookup: (fn: ChangedFunction) => number | undefined,
): ScoreInputs {
  return {
    ...inputs,
    functions: {
      ...inputs.functions,
      changed: inputs.functions.changed.map((fn) => {
        const h = lookup(fn);
        if (h === undefined || Number.isNaN(h)) return fn;
        return { ...fn, hotness: clamp01(h) };
      }),
    },
  };
}

// The delta_risk policy: factor weights, the admission thresholds, and the constants each factor's
// formula uses (docs/delta-risk.md). `policy.yaml` is parsed strictly: every key is known, every number
// is range-checked, and an error names the file, the dotted field and the limit it broke.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";

import { parse as parseYaml } from "yaml";

import { canonicalJson } from "../canonical-json.ts";
import { RiskError, describeValue } from "./errors.ts";

export const FACTORS = [
  "provenance_completeness",
  "delta_entropy",
  "new_deps_count",
  "signed_attestation_validity",
  "function_change_impact",
] as const;
export type Factor = (typeof FACTORS)[number];

/** A symbol pattern with the criticality (0..1) of the functions it matches. Exactly one of glob/regex. */
export type CriticalSymbol =
  | { readonly glob: string; readonly criticality: number }
  | { readonly regex: string; readonly criticality: number };

export interface ProvenanceThresholds {
  /** Relative weights of the three parts of provenance completeness (normalised by their sum). */
  readonly slsaWeight: number;
  readonly dsseWeight: number;
  readonly transparencyLogWeight: number;
  /** Credit (0..1) for SLSA provenance that is present but did not verify. */
  readonly unverifiedSlsaCredit: number;
  /** Credit (0..1) for a transparency-log entry that is present but whose inclusion was not verified. */
  readonly unverifiedTlogCredit: number;
  /** SLSA level that earns full SLSA credit (1..4). */
  readonly targetSlsaLevel: number;
}

export interface EntropyThresholds {
  /** ADD-byte entropy (bits/byte) at or below which the entropy multiplier is `floor`. */
  readonly lowBitsPerByte: number;
  /** ADD-byte entropy at or above which the multiplier is 1. */
  readonly highBitsPerByte: number;
  /** Multiplier (0..1) for low-entropy added bytes. */
  readonly floor: number;
  /** Added bytes that count as a half-full volume whatever the ADD/target ratio (defeats dilution). */
  readonly addedBytesSaturation: number;
}

export interface DepsThresholds {
  /** A changed (version-bumped) dependency counts as this many new ones. */
  readonly changedWeight: number;
  /** A removed dependency counts as this many new ones. */
  readonly removedWeight: number;
  /** Weighted dependency count at which the factor is 0.5. */
  readonly saturation: number;
}

export interface AttestationThresholds {
  /** Newest signature younger than this (days): not stale at all. */
  readonly signatureGraceDays: number;
  /** Newest signature at least this old: fully stale. */
  readonly signatureMaxAgeDays: number;
  readonly keyGraceDays: number;
  readonly keyMaxAgeDays: number;
  /** Factor value (0..1) of a fully stale but trusted signature (untrusted or expired = 1). */
  readonly staleRisk: number;
  /** Staleness (0..1) assumed when an age is unknown. */
  readonly unknownAgeStaleness: number;
}

export interface FunctionThresholds {
  readonly addedWeight: number;
  readonly modifiedWeight: number;
  readonly removedWeight: number;
  /** Criticality (0..1) of a function that neither the inputs nor criticalSymbols rate. */
  readonly defaultCriticality: number;
  /** Weighted impact at which the factor is 0.5. */
  readonly saturation: number;
  /** Share of observed CPU (0..1] at which a function counts as fully hot. */
  readonly hotShare: number;
}

export interface RiskPolicy {
  readonly version: 1;
  /** Admission threshold: `exceedsMax` when score > maxDeltaRisk (0..1). */
  readonly maxDeltaRisk: number;
  /** Admission threshold: `provenanceBelowMin` when provenance completeness < minProvenance (0..1). */
  readonly minProvenance: number;
  /** A fully hot changed function weighs (1 + hotWeight) times a cold one. */
  readonly hotWeight: number;
  readonly weights: Readonly<Record<Factor, number>>;
  readonly thresholds: {
    readonly provenance: ProvenanceThresholds;
    readonly entropy: EntropyThresholds;
    readonly deps: DepsThresholds;
    readonly attestation: AttestationThresholds;
    readonly functions: FunctionThresholds;
  };
  /** Replaces the default list when given. The highest matching criticality applies. */
  readonly criticalSymbols: readonly CriticalSymbol[];
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export const DEFAULT_POLICY: RiskPolicy = deepFreeze({
  version: 1,
  maxDeltaRisk: 0.5,
  minProvenance: 0.5,
  hotWeight: 4,
  weights: {
    provenance_completeness: 0.3,
    delta_entropy: 0.15,
    new_deps_count: 0.15,
    signed_attestation_validity: 0.2,
    function_change_impact: 0.2,
  },
  thresholds: {
    provenance: {
      slsaWeight: 0.5,
      dsseWeight: 0.3,
      transparencyLogWeight: 0.2,
      unverifiedSlsaCredit: 0.25,
      unverifiedTlogCredit: 0.5,
      targetSlsaLevel: 3,
    },
    entropy: {
      lowBitsPerByte: 6,
      highBitsPerByte: 7.8,
      floor: 0.5,
      addedBytesSaturation: 67108864,
    },
    deps: { changedWeight: 0.5, removedWeight: 0.25, saturation: 3 },
    attestation: {
      signatureGraceDays: 30,
      signatureMaxAgeDays: 365,
      keyGraceDays: 180,
      keyMaxAgeDays: 730,
      staleRisk: 0.8,
      unknownAgeStaleness: 0.25,
    },
    functions: {
      addedWeight: 1,
      modifiedWeight: 1,
      removedWeight: 0.5,
      defaultCriticality: 0.25,
      saturation: 5,
      hotShare: 0.01,
    },
  },
  criticalSymbols: [
    { glob: "*verify*", criticality: 0.9 },
    { glob: "*auth*", criticality: 0.9 },
    { glob: "*crypt*", criticality: 0.8 },
    { regex: "^(SSL|TLS|EVP|X509)_", criticality: 0.8 },
    { glob: "*parse*", criticality: 0.6 },
  ],
} satisfies RiskPolicy);

// ---- validation -------------------------------------------------------------------------------------

/** Numeric limits: [min, max], `exclusiveMin` for "> min", `integer` for whole numbers. */
interface NumSpec {
  readonly min: number;
  readonly max: number;
  readonly exclusiveMin?: boolean;
  readonly integer?: boolean;
}

const UNIT: NumSpec = { min: 0, max: 1 };
const WEIGHT: NumSpec = { min: 0, max: 1000 };
const POSITIVE: NumSpec = { min: 0, max: 1e15, exclusiveMin: true };
const DAYS: NumSpec = { min: 0, max: 36500 };

const SECTION_SPECS: {
  readonly [S in keyof RiskPolicy["thresholds"]]: {
    readonly [K in keyof RiskPolicy["thresholds"][S]]: NumSpec;
  };
} = {
  provenance: {
    slsaWeight: WEIGHT,
    dsseWeight: WEIGHT,
    transparencyLogWeight: WEIGHT,
    unverifiedSlsaCredit: UNIT,
    unverifiedTlogCredit: UNIT,
    targetSlsaLevel: { min: 1, max: 4, integer: true },
  },
  entropy: {
    lowBitsPerByte: { min: 0, max: 8 },
    highBitsPerByte: { min: 0, max: 8 },
    floor: UNIT,
    addedBytesSaturation: POSITIVE,
  },
  deps: { changedWeight: WEIGHT, removedWeight: WEIGHT, saturation: POSITIVE },
  attestation: {
    signatureGraceDays: DAYS,
    signatureMaxAgeDays: DAYS,
    keyGraceDays: DAYS,
    keyMaxAgeDays: DAYS,
    staleRisk: UNIT,
    unknownAgeStaleness: UNIT,
  },
  functions: {
    addedWeight: WEIGHT,
    modifiedWeight: WEIGHT,
    removedWeight: WEIGHT,
    defaultCriticality: UNIT,
    saturation: POSITIVE,
    hotShare: { min: 0, max: 1, exclusiveMin: true },
  },
};

const TOP_KEYS = [
  "version",
  "maxDeltaRisk",
  "minProvenance",
  "hotWeight",
  "weights",
  "thresholds",
  "criticalSymbols",
] as const;

export const MAX_CRITICAL_SYMBOLS = 1000;
export const MAX_PATTERN_LENGTH = 256;
/** Policy files are small; anything larger is refused before it is parsed. */
export const MAX_POLICY_BYTES = 1024 * 1024;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

class Checker {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  fail(field: string, limit: string): RiskError {
    return new RiskError("RISK_POLICY_INVALID", this.file, field, limit);
  }

  mapping(v: unknown, field: string, keys: readonly string[]): Obj {
    if (!isObj(v)) throw this.fail(field || "(root)", `must be a mapping, got ${describeValue(v)}`);
    for (const k of Object.keys(v)) {
      if (!keys.includes(k))
        throw this.fail(join(field, k), `unknown key (expected one of: ${keys.join(", ")})`);
    }
    return v;
  }

  num(v: unknown, field: string, spec: NumSpec): number {
    const range = `${spec.exclusiveMin === true ? "(" : "["}${spec.min}, ${spec.max}]`;
    const what = spec.integer === true ? "an integer" : "a number";
    if (
      typeof v !== "number" ||
      !Number.isFinite(v) ||
      (spec.integer === true && !Number.isInteger(v)) ||
      v < spec.min ||
      (spec.exclusiveMin === true && v === spec.min) ||
      v > spec.max
    ) {
      throw this.fail(field, `must be ${what} in ${range}, got ${describeValue(v)}`);
    }
    return v;
  }
}

function section<S extends keyof RiskPolicy["thresholds"]>(
  c: Checker,
  name: S,
  value: unknown,
): RiskPolicy["thresholds"][S] {
  const specs = SECTION_SPECS[name] as Readonly<Record<string, NumSpec>>;
  const defaults = DEFAULT_POLICY.thresholds[name] as unknown as Readonly<Record<string, number>>;
  const field = `thresholds.${name}`;
  const out: Record<string, number> = { ...defaults };
  if (value !== undefined) {
    const o = c.mapping(value, field, Object.keys(specs));
    for (const [k, v] of Object.entries(o)) {
      const spec = specs[k];
      if (spec !== undefined) out[k] = c.num(v, join(field, k), spec);
    }
  }
  return out as unknown as RiskPolicy["thresholds"][S];
}

function criticalSymbols(c: Checker, value: unknown): CriticalSymbol[] {
  const field = "criticalSymbols";
  if (!Array.isArray(value)) throw c.fail(field, `must be a list, got ${describeValue(value)}`);
  if (value.length > MAX_CRITICAL_SYMBOLS) {
    throw c.fail(field, `${value.length} entries, over the limit of ${MAX_CRITICAL_SYMBOLS}`);
  }
  return value.map((entry: unknown, i): CriticalSymbol => {
    const where = `${field}[${i}]`;
    const o = c.mapping(entry, where, ["glob", "regex", "criticality"]);
    const criticality = c.num(o["criticality"], `${where}.criticality`, UNIT);
    const has = (k: string): boolean => o[k] !== undefined;
    if (has("glob") === has("regex")) throw c.fail(where, "must have exactly one of glob, regex");
    const kind = has("glob") ? "glob" : "regex";
    const pattern = o[kind];
    if (typeof pattern !== "string" || pattern === "" || pattern.length > MAX_PATTERN_LENGTH) {
      throw c.fail(
        `${where}.${kind}`,
        `must be a non-empty string of at most ${MAX_PATTERN_LENGTH} characters, got ${describeValue(pattern)}`,
      );
    }
    if (kind === "regex") {
      try {
        new RegExp(pattern, "u");
      } catch (err) {
        throw c.fail(`${where}.regex`, `not a valid regular expression: ${(err as Error).message}`);
      }
      return { regex: pattern, criticality };
    }
    return { glob: pattern, criticality };
  });
}

/**
 * Validates an already-parsed document (YAML or JSON) as a policy. Keys left out take their value from
 * DEFAULT_POLICY (per key, also inside `weights` and `thresholds`); `criticalSymbols`, when given,
 * replaces the default list. An empty document (null) is DEFAULT_POLICY. `file` prefixes every error.
 */
export function policyFromObject(value: unknown, file: string): RiskPolicy {
  const c = new Checker(file);
  if (value === null || value === undefined) return DEFAULT_POLICY;
  const o = c.mapping(value, "", TOP_KEYS);
  if (o["version"] !== undefined && o["version"] !== 1) {
    throw c.fail("version", `must be 1, got ${describeValue(o["version"])}`);
  }
  const num = (k: "maxDeltaRisk" | "minProvenance" | "hotWeight", spec: NumSpec): number =>
    o[k] === undefined ? DEFAULT_POLICY[k] : c.num(o[k], k, spec);

  const weights: Record<Factor, number> = { ...DEFAULT_POLICY.weights };
  if (o["weights"] !== undefined) {
    const w = c.mapping(o["weights"], "weights", FACTORS);
    for (const f of FACTORS) if (w[f] !== undefined) weights[f] = c.num(w[f], `weights.${f}`, WEIGHT);
  }
  if (FACTORS.every((f) => weights[f] === 0)) throw c.fail("weights", "must sum to more than 0, got 0");

  const t =
    o["thresholds"] === undefined ? {} : c.mapping(o["thresholds"], "thresholds", Object.keys(SECTION_SPECS));
  const thresholds = {
    provenance: section(c, "provenance", t["provenance"]),
    entropy: section(c, "entropy", t["entropy"]),
    deps: section(c, "deps", t["deps"]),
    attestation: section(c, "attestation", t["attestation"]),
    functions: section(c, "functions", t["functions"]),
  };
  const p = thresholds.provenance;
  if (p.slsaWeight + p.dsseWeight + p.transparencyLogWeight === 0) {
    throw c.fail(
      "thresholds.provenance",
      "slsaWeight + dsseWeight + transparencyLogWeight must sum to more than 0, got 0",
    );
  }
  const e = thresholds.entropy;
  if (e.highBitsPerByte <= e.lowBitsPerByte) {
    throw c.fail(
      "thresholds.entropy.highBitsPerByte",
      `must be greater than lowBitsPerByte (${e.lowBitsPerByte}), got ${e.highBitsPerByte}`,
    );
  }
  const a = thresholds.attestation;
  if (a.signatureMaxAgeDays <= a.signatureGraceDays) {
    throw c.fail(
      "thresholds.attestation.signatureMaxAgeDays",
      `must be greater than signatureGraceDays (${a.signatureGraceDays}), got ${a.signatureMaxAgeDays}`,
    );
  }
  if (a.keyMaxAgeDays <= a.keyGraceDays) {
    throw c.fail(
      "thresholds.attestation.keyMaxAgeDays",
      `must be greater than keyGraceDays (${a.keyGraceDays}), got ${a.keyMaxAgeDays}`,
    );
  }

  return deepFreeze({
    version: 1,
    maxDeltaRisk: num("maxDeltaRisk", UNIT),
    minProvenance: num("minProvenance", UNIT),
    hotWeight: num("hotWeight", WEIGHT),
    weights,
    thresholds,
    criticalSymbols:
      o["criticalSymbols"] === undefined
        ? DEFAULT_POLICY.criticalSymbols
        : criticalSymbols(c, o["criticalSymbols"]),
  });
}

/**
 * The policy with the admission thresholds replaced (a RolloutGate's `maxDeltaRisk` / `minProvenance`),
 * validated like a policy file; `name` (e.g. the gate's namespace/name) prefixes errors. The result has
 * its own policyHash, so a decision records the thresholds it was made with.
 */
export function withThresholds(
  policy: RiskPolicy,
  overrides: { readonly maxDeltaRisk?: number; readonly minProvenance?: number },
  name: string,
): RiskPolicy {
  return policyFromObject({ ...policy, ...overrides }, name);
}

/** Parses policy.yaml text (YAML 1.2; JSON is YAML too). `name` (the file path) prefixes every error. */
export function parsePolicy(text: string, name: string): RiskPolicy {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100, prettyErrors: false }) as unknown;
  } catch (cause) {
    const msg = (cause as Error).message.split("\n")[0] ?? "";
    throw new RiskError("RISK_POLICY_INVALID", name, "", `not valid YAML: ${msg}`, { cause });
  }
  return policyFromObject(doc, name);
}

/** Reads and parses a policy file (at most 1 MiB). */
export function loadPolicy(path: string): RiskPolicy {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_POLICY_BYTES) {
      throw new RiskError("RISK_POLICY_INVALID", path, "", `file is ${size} bytes, over the 1 MiB limit`);
    }
    text = readFileSync(path, "utf8");
  } catch (cause) {
    if (cause instanceof RiskError) throw cause;
    throw new RiskError("RISK_POLICY_IO", path, "", `cannot read policy: ${(cause as Error).message}`, {
      cause,
    });
  }
  return parsePolicy(text, path);
}

const hashes = new WeakMap<RiskPolicy, string>();

/** `sha256:` + hex SHA-256 of the policy's RFC 8785 canonical JSON: names the policy a score used. */
export function policyHash(policy: RiskPolicy): string {
  let h = hashes.get(policy);
  if (h === undefined) {
    h = `sha256:${createHash("sha256").update(canonicalJson(policy)).digest("hex")}`;
    if (Object.isFrozen(policy)) hashes.set(policy, h);
  }
  return h;
}

/**
 * A glob as an anchored regex. Leading and trailing `*` become unanchored ends rather than `.*`
 * (same language, no backtracking over the whole symbol): `*verify*` is /verify/.
 */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/^\*+/, "").replace(/\*+$/, "");
  if (body === "") return /[^]*/u;
  const anyStart = glob.startsWith("*");
  const anyEnd = glob.endsWith("*");
  let src = "";
  for (const ch of body) {
    if (ch === "*") src += "[^]*";
    else if (ch === "?") src += "[^]";
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`${anyStart ? "" : "^"}${src}${anyEnd ? "" : "$"}`, "u");
}

const matchers = new WeakMap<RiskPolicy, readonly { readonly re: RegExp; readonly criticality: number }[]>();

/**
 * The highest criticality among the policy's criticalSymbols that match `symbol`, or undefined when
 * none does. Globs match the whole symbol (`*` any run, `?` one character, case-sensitive); regexes
 * match anywhere unless anchored.
 */
export function symbolCriticality(policy: RiskPolicy, symbol: string): number | undefined {
  let compiled = matchers.get(policy);
  if (compiled === undefined) {
    compiled = policy.criticalSymbols.map((p) => ({
      re: "glob" in p ? globToRegExp(p.glob) : new RegExp(p.regex, "u"),
      criticality: p.criticality,
    }));
    if (Object.isFrozen(policy)) matchers.set(policy, compiled);
  }
  let best: number | undefined;
  for (const { re, criticality } of compiled) {
    if ((best === undefined || criticality > best) && re.test(symbol)) best = criticality;
  }
  return best;
}

/**
 * The VexStatement decision, as a pure function of (spec, current status, index observations, FuncProof
 * presence, now) → next status. No Kubernetes, no clock, no I/O: the controller gathers the inputs.
 *
 * Rules, in order (OpenVEX v0.2.0 statuses and justifications):
 * 1. affected / SymbolObserved: some vulnerable symbol has ≥ policy.minSamples samples in the window
 *    [now − windowSeconds, now).
 * 2. Hysteresis: once affected, the statement stays affected (StillObserved) until the symbols have gone
 *    unobserved — zero samples — for policy.notAffectedAfterSeconds while the product ran; then it goes
 *    back to under_investigation (NoLongerObserved), and only after another quiet notAffectedAfterSeconds
 *    to not_affected. A product that stops running keeps its affected status (ProductNotRunning): silence
 *    from a stopped workload is no evidence.
 * 3. not_affected / vulnerable_code_not_present (NotPresent): the product's BuildIDs are known, each has
 *    a verified FuncProof, and no function table contains any vulnerable symbol.
 * 4. not_affected / vulnerable_code_not_in_execute_path (NotInExecutePath): some FuncProof of the product
 *    contains a vulnerable symbol, the statement has been observing for ≥ notAffectedAfterSeconds (since
 *    its first decision, or since it last left affected) and over the quiet range
 *    [now − notAffectedAfterSeconds, now) the product ran (productSamples > 0) with zero samples through
 *    a vulnerable symbol. Time-boxed: re-decided every revisitSeconds, and it flips to affected as soon
 *    as rule 1 holds. The quiet range is only as good as the index's retention: an index that keeps less
 *    than notAffectedAfterSeconds makes this a claim over what it kept.
 * 5. under_investigation otherwise: AwaitingEvidence (quiet, not yet long enough), ProductNotRunning,
 *    BelowThreshold (observed, fewer than minSamples), NoFuncProof (unobserved and no FuncProof says the
 *    symbol is in the product).
 */
import type {
  VexPolicy,
  VexStatementSpec,
  VexStatementStatus,
  VexTransition,
} from "../api/generated/vexstatement.ts";
import type { DecisionEvidence, StackWeight, VexDecision } from "../../core/vex/decision.ts";
import type { SymbolObservation } from "../index/types.ts";

export const DEFAULT_VEX_POLICY: Readonly<Required<VexPolicy>> = Object.freeze({
  windowSeconds: 3600,
  minSamples: 1,
  notAffectedAfterSeconds: 86_400,
  revisitSeconds: 3600,
});

/** status.transitions keeps the last this many (CRD maxItems). */
export const MAX_TRANSITIONS = 32;
/** Evidence list bounds (CRD maxItems). */
export const MAX_EVIDENCE_IDS = 64;
export const MAX_TOP_STACKS = 16;
/** Never requeue sooner than this: the index moves in batch windows, not milliseconds. */
export const MIN_REQUEUE_MS = 1_000;

export type VexReason =
  | "SymbolObserved"
  | "StillObserved"
  | "NoLongerObserved"
  | "NotInExecutePath"
  | "NotPresent"
  | "AwaitingEvidence"
  | "ProductNotRunning"
  | "BelowThreshold"
  | "NoFuncProof";

export function resolvePolicy(p: VexPolicy | undefined): Required<VexPolicy> {
  return {
    windowSeconds: p?.windowSeconds ?? DEFAULT_VEX_POLICY.windowSeconds,
    minSamples: p?.minSamples ?? DEFAULT_VEX_POLICY.minSamples,
    notAffectedAfterSeconds: p?.notAffectedAfterSeconds ?? DEFAULT_VEX_POLICY.notAffectedAfterSeconds,
    revisitSeconds: p?.revisitSeconds ?? DEFAULT_VEX_POLICY.revisitSeconds,
  };
}

/** Observations of one range: per symbol name, plus the product's own samples over the same range. */
export interface RangeObservations {
  sinceMs: number;
  untilMs: number;
  /** Keyed by VexSymbol.name; a missing symbol counts as zero samples. */
  symbols: Readonly<Record<string, SymbolObservation | undefined>>;
  productSamples: number;
}

export interface DecideInput {
  spec: VexStatementSpec;
  status?: VexStatementStatus | undefined;
  /** [now − windowSeconds, now): the affected test. */
  window: RangeObservations;
  /** [now − notAffectedAfterSeconds, now): the quiet test (⊇ window, as the CRD enforces). */
  quiet: RangeObservations;
  /** Symbol name → BuildIDs whose verified FuncProof function table contains it (within the product). */
  presence: Readonly<Record<string, readonly string[] | undefined>>;
  /**
   * The product's BuildIDs that have a verified FuncProof, when the product's binaries are known
   * (undefined = unknown, which rules out NotPresent).
   */
  productBuildIds?: readonly string[] | undefined;
  nowMs: number;
}

export interface DecideResult {
  decision: VexDecision;
  reason: VexReason;
  /** The status fields to write (conditions and documentDigest are the controller's). */
  next: Pick<VexStatementStatus, "vexStatus" | "justification" | "evidence" | "transitions">;
  /** True when vexStatus or justification differ from the current status. */
  changed: boolean;
  requeueAfterMs: number;
}

/** RFC 3339, whole seconds, UTC (metav1.Time). */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function parseTime(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * When the statement started its current observation period: when it last left affected, else its
 * first decision; undefined before the first decision (the period then starts now).
 */
export function observingSinceMs(status: VexStatementStatus | undefined): number | undefined {
  const ts = status?.transitions ?? [];
  for (let i = ts.length - 1; i >= 0; i--) {
    const t = ts[i];
    if (t?.from === "affected" && t.to !== "affected") return parseTime(t.at);
  }
  // The first entry is the first decision unless the history was trimmed; the oldest kept is then
  // still a lower bound on how long the statement has been observing.
  return parseTime(ts[0]?.at);
}

/**
 * When the current affected period began (the last transition to affected). Leaving affected also needs
 * this to be notAffectedAfterSeconds ago, so an index with short retention cannot shorten the hysteresis.
 */
export function affectedSinceMs(status: VexStatementStatus | undefined, nowMs: number): number {
  const ts = status?.transitions ?? [];
  for (let i = ts.length - 1; i >= 0; i--) {
    const t = ts[i];
    if (t?.to === "affected") return parseTime(t.at) ?? nowMs;
  }
  return nowMs;
}

function union(lists: Iterable<readonly string[] | undefined>, max = MAX_EVIDENCE_IDS): string[] {
  const set = new Set<string>();
  for (const l of lists) for (const x of l ?? []) set.add(x);
  return [...set].sort().slice(0, max);
}

function mergeStacks(obs: readonly (SymbolObservation | undefined)[]): StackWeight[] {
  const byStack = new Map<string, number>();
  for (const o of obs) {
    for (const s of o?.topStacks ?? []) byStack.set(s.stack, Math.max(byStack.get(s.stack) ?? 0, s.count));
  }
  return [...byStack.entries()]
    .map(([stack, count]) => ({ stack, count }))
    .sort((a, b) => b.count - a.count || (a.stack < b.stack ? -1 : a.stack > b.stack ? 1 : 0))
    .slice(0, MAX_TOP_STACKS);
}

function permille(samples: number, productSamples: number): number {
  if (productSamples <= 0) return 0;
  return Math.min(1000, Math.round((samples * 1000) / productSamples));
}

function rangeEvidence(spec: VexStatementSpec, r: RangeObservations): DecisionEvidence {
  const obs = spec.symbols.map((s) => r.symbols[s.name]);
  const observedSymbols = spec.symbols
    .map((s) => ({ name: s.name, samples: r.symbols[s.name]?.samples ?? 0 }))
    .filter((s) => s.samples > 0)
    .sort((a, b) => b.samples - a.samples || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const samples = observedSymbols.reduce((n, s) => n + s.samples, 0);
  return {
    windowStartMs: r.sinceMs,
    windowEndMs: r.untilMs,
    samples,
    productSamples: r.productSamples,
    cpuSharePermille: permille(samples, r.productSamples),
    observedSymbols,
    topStacks: mergeStacks(obs),
    buildIds: union(obs.map((o) => o?.buildIds)),
    pods: union(obs.map((o) => o?.pods)),
    nodes: union(obs.map((o) => o?.nodes)),
  };
}

/** The CRD's status.evidence from a decision's evidence. */
export function statusEvidence(e: DecisionEvidence): NonNullable<VexStatementStatus["evidence"]> {
  return {
    windowStart: rfc3339(e.windowStartMs),
    windowEnd: rfc3339(e.windowEndMs),
    samples: e.samples,
    cpuSharePermille: e.cpuSharePermille,
    buildIds: e.buildIds,
    pods: e.pods,
    nodes: e.nodes,
    topStacks: e.topStacks.map((s) => s.stack),
  };
}

export function decideVexStatement(input: DecideInput): DecideResult {
  const { spec, status, window, quiet, nowMs } = input;
  const policy = resolvePolicy(spec.policy);
  const current = status?.vexStatus;
  const windowMs = policy.windowSeconds * 1000;
  const revisitMs = policy.revisitSeconds * 1000;
  const quietMs = policy.notAffectedAfterSeconds * 1000;
  const since = observingSinceMs(status) ?? nowMs;
  const observedForMs = nowMs - since;

  const inWindow = rangeEvidence(spec, window);
  const inQuiet = rangeEvidence(spec, quiet);
  const hot = spec.symbols.some((s) => (window.symbols[s.name]?.samples ?? 0) >= policy.minSamples);
  const quietAndRan = inQuiet.samples === 0 && quiet.productSamples > 0;
  const presentIn = union(spec.symbols.map((s) => input.presence[s.name]));
  const product = input.productBuildIds === undefined ? undefined : union([input.productBuildIds]);

  let vexStatus: VexDecision["status"];
  let justification: VexDecision["justification"];
  let reason: VexReason;
  let evidence: DecisionEvidence = inWindow;
  // Poll: the index has no change notifications, so undecided statements look again each window.
  let requeueAfterMs = Math.min(windowMs, revisitMs);

  if (hot) {
    vexStatus = "affected";
    reason = current === "affected" ? "StillObserved" : "SymbolObserved";
    requeueAfterMs = revisitMs;
  } else if (current === "affected" && !(quietAndRan && nowMs - affectedSinceMs(status, nowMs) >= quietMs)) {
    vexStatus = "affected";
    reason = quiet.productSamples > 0 ? "StillObserved" : "ProductNotRunning";
    evidence = inQuiet.samples > 0 ? inQuiet : inWindow;
  } else if (current === "affected") {
    vexStatus = "under_investigation";
    reason = "NoLongerObserved";
    evidence = inQuiet;
  } else if (product !== undefined && product.length > 0 && presentIn.length === 0 && inQuiet.samples === 0) {
    vexStatus = "not_affected";
    justification = "vulnerable_code_not_present";
    reason = "NotPresent";
    evidence = { ...inWindow, checkedBuildIds: product, presentInBuildIds: [] };
    requeueAfterMs = revisitMs;
  } else if (presentIn.length > 0 && quietAndRan && observedForMs >= quietMs) {
    vexStatus = "not_affected";
    justification = "vulnerable_code_not_in_execute_path";
    reason = "NotInExecutePath";
    evidence = { ...inQuiet, presentInBuildIds: presentIn };
    requeueAfterMs = revisitMs;
  } else {
    vexStatus = "under_investigation";
    if (inQuiet.samples > 0) {
      reason = "BelowThreshold";
      evidence = inQuiet;
    } else if (quiet.productSamples === 0) reason = "ProductNotRunning";
    else if (presentIn.length === 0) reason = "NoFuncProof";
    else {
      reason = "AwaitingEvidence";
      evidence = { ...inQuiet, presentInBuildIds: presentIn };
      // Look again when the quiet period can have elapsed, if that is sooner than the next poll.
      requeueAfterMs = Math.min(requeueAfterMs, Math.max(quietMs - observedForMs, MIN_REQUEUE_MS));
    }
  }

  const decision: VexDecision = {
    vulnerability: {
      id: spec.vulnerability.id,
      ...(spec.vulnerability.aliases ? { aliases: spec.vulnerability.aliases } : {}),
    },
    product: {
      ...(spec.product.imageDigest !== undefined ? { imageDigest: spec.product.imageDigest } : {}),
      ...(spec.product.purl !== undefined ? { purl: spec.product.purl } : {}),
    },
    symbols: spec.symbols.map((s) => s.name),
    status: vexStatus,
    ...(justification !== undefined ? { justification } : {}),
    reason,
    evidence,
  };

  const changed = current !== vexStatus || status?.justification !== justification;
  let transitions: VexTransition[] = [...(status?.transitions ?? [])];
  if (changed) {
    transitions.push({
      ...(current !== undefined ? { from: current } : {}),
      to: vexStatus,
      at: rfc3339(nowMs),
      reason,
    });
    transitions = transitions.slice(-MAX_TRANSITIONS);
  }
  return {
    decision,
    reason,
    next: {
      vexStatus: vexStatus,
      ...(justification !== undefined ? { justification } : {}),
      evidence: statusEvidence(evidence),
      transitions,
    },
    changed,
    requeueAfterMs: Math.max(MIN_REQUEUE_MS, requeueAfterMs),
  };
}

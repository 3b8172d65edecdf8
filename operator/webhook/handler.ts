// From an AdmissionReview to one decision (issue 7): which RolloutGates cover the workload (namespace and
// workload label selectors, Kubernetes semantics), each gate's decision over the workload's image changes, and
// the combination: any enforcing gate that denies denies; audit gates only add warnings. Namespaces listed in
// `excludedNamespaces` (the operator's own, kube-system) are never gated, so the webhook cannot lock out the
// operator that serves it.
import type { LabelSelector } from "../api/generated/common.ts";
import { imageChanges, isGatedKind } from "./changes.ts";
import { decide, type DeltaLookup, type GateDecision, type GateEntry } from "./decide.ts";
import type { ReviewDecision, ReviewRequest } from "./review.ts";

export interface HandlerState {
  gates(): readonly GateEntry[];
  /** Labels of a namespace (from an informer); undefined when unknown (then only empty selectors match). */
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
  deltas: DeltaLookup;
  excludedNamespaces: ReadonlySet<string>;
}

/** What was decided, for events and metrics as well as the response. */
export interface HandledReview {
  response: ReviewDecision;
  /** Per gate that covered the workload. */
  gates: { name: string; decision: GateDecision }[];
  /** Why no gate applied, when none did. */
  skipped?: string;
}

/** Kubernetes label selector semantics: all of matchLabels and matchExpressions; unset or empty selects all. */
export function selects(
  selector: LabelSelector | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const value = l[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || value === undefined || !values.includes(value)) return false;
        break;
      case "NotIn":
        if (has && value !== undefined && values.includes(value)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

function labelsOf(obj: unknown): Record<string, string> {
  const labels = (obj as { metadata?: { labels?: unknown } } | undefined)?.metadata?.labels;
  if (labels === null || typeof labels !== "object") return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (typeof v === "string") out[k] = v;
  return out;
}

export function handleReview(review: ReviewRequest, state: HandlerState): HandledReview {
  const kind = review.kind.kind;
  if (!isGatedKind(kind) || (review.operation !== "CREATE" && review.operation !== "UPDATE")) {
    return { response: { allowed: true }, gates: [], skipped: `${review.operation} ${kind} is not gated` };
  }
  if (state.excludedNamespaces.has(review.namespace)) {
    return { response: { allowed: true }, gates: [], skipped: `namespace ${review.namespace} is excluded` };
  }
  const nsLabels = state.namespaceLabels(review.namespace);
  const labels = labelsOf(review.object);
  const covering = state
    .gates()
    .filter((g) => selects(g.spec.namespaceSelector, nsLabels) && selects(g.spec.selector, labels))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (covering.length === 0)
    return { response: { allowed: true }, gates: [], skipped: "no RolloutGate selects it" };
  const changes = imageChanges(
    kind,
    review.operation === "UPDATE" ? review.oldObject : undefined,
    review.object,
  );
  const gates = covering.map((g) => ({
    name: g.name,
    decision: decide(g, changes, state.deltas),
  }));
  const denying = gates.filter((g) => !g.decision.allowed);
  const warnings = gates.flatMap((g) => g.decision.warnings);
  const response: ReviewDecision =
    denying.length > 0
      ? { allowed: false, message: denying.map((g) => g.decision.message).join("; ") }
      : { allowed: true };
  if (warnings.length > 0) response.warnings = warnings;
  return { response, gates };
}

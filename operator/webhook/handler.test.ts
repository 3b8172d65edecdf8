import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_POLICY } from "../../core/risk/policy.ts";
import type { ScoreInputs } from "../../core/risk/score.ts";
import type { RolloutGateSpec } from "../api/generated/rolloutgate.ts";
import { deltaRisk } from "../../core/risk/score.ts";
import type { GateEntry, KnownDelta } from "./decide.ts";
import { handleReview, selects, type HandlerState } from "./handler.ts";
import type { ReviewRequest } from "./review.ts";

const A = "sha256:" + "a".repeat(64);
const B = "sha256:" + "b".repeat(64);
const KEYS = [{ secretRef: { namespace: "stella-system", name: "keys", key: "release.pub" } }];

const LOW: ScoreInputs = {
  provenance: { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "verified" },
  entropy: { copiedBytes: 990_000, addedBytes: 10_000, targetBytes: 1_000_000, addedEntropyBitsPerByte: 5 },
  deps: { added: 0, removed: 0, changed: 0 },
  attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 1, keyAgeDays: 30 },
  functions: { added: 0, removed: 0, modified: 1, changed: [{ symbol: "f", change: "modified" }] },
};

const NAMESPACES = new Map<string, Record<string, string>>([
  ["shop", { team: "payments", env: "prod" }],
  ["dev", { env: "dev" }],
]);

function state(gates: GateEntry[], deltas: KnownDelta[] = []): HandlerState {
  return {
    gates: () => gates,
    namespaceLabels: (ns) => NAMESPACES.get(ns),
    deltas: {
      forward: (b, t) => deltas.find((d) => d.baseDigest === b && d.targetDigest === t),
      rollback: () => undefined,
      risk: (d) => d.scoreInputs && deltaRisk(d.scoreInputs, DEFAULT_POLICY),
    },
    excludedNamespaces: new Set(["stella-system"]),
  };
}

function review(
  namespace: string,
  from: string,
  to: string,
  labels: Record<string, string> = { app: "web" },
): ReviewRequest {
  const obj = (image: string) => ({
    metadata: { labels },
    spec: { template: { spec: { containers: [{ name: "web", image }] } } },
  });
  return {
    uid: "u",
    kind: { group: "apps", version: "v1", kind: "Deployment" },
    operation: "UPDATE",
    namespace,
    name: "web",
    object: obj(`reg/web@${to}`),
    oldObject: obj(`reg/web@${from}`),
    dryRun: false,
  };
}

const gate = (name: string, spec: Partial<RolloutGateSpec>): GateEntry => ({
  name,
  spec: { maxDeltaRisk: 300, trustedKeys: KEYS, ...spec },
  keyids: new Set(["k1"]),
});

test("label selectors follow Kubernetes semantics", () => {
  const l = { team: "payments", env: "prod" };
  assert.equal(selects(undefined, l), true);
  assert.equal(selects({}, undefined), true);
  assert.equal(selects({ matchLabels: { env: "prod" } }, l), true);
  assert.equal(selects({ matchLabels: { env: "dev" } }, l), false);
  assert.equal(
    selects({ matchExpressions: [{ key: "env", operator: "In", values: ["prod", "staging"] }] }, l),
    true,
  );
  assert.equal(
    selects({ matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] }, l),
    false,
  );
  assert.equal(
    selects({ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["x"] }] }, l),
    true,
    "absent key",
  );
  assert.equal(selects({ matchExpressions: [{ key: "team", operator: "Exists" }] }, l), true);
  assert.equal(selects({ matchExpressions: [{ key: "team", operator: "DoesNotExist" }] }, l), false);
  assert.equal(
    selects({ matchLabels: { env: "prod" } }, undefined),
    false,
    "unknown labels match only empty selectors",
  );
});

test("only gates selecting the namespace and the workload apply; any enforcing denial denies", () => {
  const prodOnly = gate("prod", { namespaceSelector: { matchLabels: { env: "prod" } } });
  const other = gate("other-app", { selector: { matchLabels: { app: "api" } } });
  const none = handleReview(review("dev", A, B), state([prodOnly, other]));
  assert.equal(none.response.allowed, true);
  assert.equal(none.skipped, "no RolloutGate selects it");

  const denied = handleReview(review("shop", A, B), state([prodOnly, other]));
  assert.equal(denied.response.allowed, false, "no attestation");
  assert.deepEqual(
    denied.gates.map((g) => g.name),
    ["prod"],
  );
  assert.match(denied.response.message ?? "", /no DeltaAttestation/);

  const known: KnownDelta = {
    ref: "shop/ab",
    baseDigest: A,
    targetDigest: B,
    signatures: 1,
    verifiedKeyids: ["k1"],
    scoreInputs: LOW,
  };
  assert.equal(handleReview(review("shop", A, B), state([prodOnly], [known])).response.allowed, true);
  const audit = gate("audit", { mode: "audit" });
  const both = handleReview(review("shop", A, B), state([prodOnly, audit]));
  assert.equal(both.response.allowed, false, "the enforcing gate denies");
  assert.ok((both.response.warnings ?? []).some((w) => w.startsWith("audit (would deny)")));
  const auditOnly = handleReview(review("shop", A, B), state([audit]));
  assert.equal(auditOnly.response.allowed, true);
});

test("the operator's namespace, other kinds and DELETE are never gated", () => {
  const all = gate("all", {});
  assert.match(handleReview(review("stella-system", A, B), state([all])).skipped ?? "", /excluded/);
  const pod = { ...review("shop", A, B), kind: { group: "", version: "v1", kind: "Pod" } };
  assert.match(handleReview(pod, state([all])).skipped ?? "", /not gated/);
  const del = { ...review("shop", A, B), operation: "DELETE" as const };
  assert.equal(handleReview(del, state([all])).response.allowed, true);
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_POLICY } from "../../core/risk/policy.ts";
import { deltaRisk, withHotness, type ChangedFunction, type ScoreInputs } from "../../core/risk/score.ts";
import type { RolloutGateSpec } from "../api/generated/rolloutgate.ts";
import { imageChanges } from "./changes.ts";
import { decide, type DeltaLookup, type GateDecision, type KnownDelta } from "./decide.ts";
import type { ImageChange } from "./changes.ts";

const A = "sha256:" + "a".repeat(64);
const B = "sha256:" + "b".repeat(64);
const C = "sha256:" + "c".repeat(64);

/** A modest, well-provenanced update changing one function. */
const LOW: ScoreInputs = {
  provenance: { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "verified" },
  entropy: { copiedBytes: 980_000, addedBytes: 20_000, targetBytes: 1_000_000, addedEntropyBitsPerByte: 5.5 },
  deps: { added: 0, removed: 0, changed: 0 },
  attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 1, keyAgeDays: 30 },
  functions: { added: 0, removed: 0, modified: 1, changed: [{ symbol: "parse_hdr", change: "modified" }] },
};
/** Mostly new bytes, no provenance, new dependencies. */
const HIGH: ScoreInputs = {
  ...LOW,
  provenance: { slsaProvenance: "absent", dsseValid: false, transparencyLog: "absent" },
  entropy: {
    copiedBytes: 100_000,
    addedBytes: 900_000,
    targetBytes: 1_000_000,
    addedEntropyBitsPerByte: 7.9,
  },
  deps: { added: 4, removed: 0, changed: 2 },
};

const GATE: RolloutGateSpec = {
  maxDeltaRisk: 300,
  trustedKeys: [{ secretRef: { namespace: "stella-system", name: "keys", key: "release.pub" } }],
};

/** The gate trusts key "k1". */
const KEYIDS: ReadonlySet<string> = new Set(["k1"]);

function lookup(
  forward: KnownDelta[],
  rollbacks: KnownDelta[] = [],
  hotness?: (image: string, fn: ChangedFunction) => number,
): DeltaLookup {
  return {
    forward: (b, t) => forward.find((d) => d.baseDigest === b && d.targetDigest === t),
    rollback: (f, t) => rollbacks.find((d) => d.baseDigest === f && d.targetDigest === t),
    risk: (d) =>
      d.scoreInputs &&
      deltaRisk(
        hotness ? withHotness(d.scoreInputs, (fn) => hotness(d.baseDigest, fn)) : d.scoreInputs,
        DEFAULT_POLICY,
      ),
  };
}

function dec(name: string, spec: RolloutGateSpec, changes: ImageChange[], lk: DeltaLookup): GateDecision {
  return decide({ name, spec, keyids: KEYIDS }, changes, lk);
}

const delta = (
  base: string,
  target: string,
  scoreInputs: ScoreInputs,
  signature: "none" | "signed" | "verified" = "verified",
): KnownDelta => ({
  ref: `${base.slice(7, 10)}-${target.slice(7, 10)}`,
  baseDigest: base,
  targetDigest: target,
  signatures: signature === "none" ? 0 : 1,
  verifiedKeyids: signature === "verified" ? ["k1"] : signature === "signed" ? ["other"] : [],
  scoreInputs,
});

function deployment(image: string): unknown {
  return { spec: { template: { spec: { containers: [{ name: "web", image }] } } } };
}
const update = (from: string, to: string) =>
  imageChanges("Deployment", deployment(`reg.example/web@${from}`), deployment(`reg.example/web@${to}`));

test("low risk signed attestation → admitted; high risk → denied naming image, score, threshold, top three", () => {
  const ok = dec("strict", GATE, update(A, B), lookup([delta(A, B, LOW)]));
  assert.equal(ok.allowed, true, ok.message);
  assert.match(ok.message, /delta_risk 0\.\d{3} ≤ 0\.300/);

  const no = dec("strict", GATE, update(A, B), lookup([delta(A, B, HIGH)]));
  assert.equal(no.allowed, false);
  assert.equal(no.wouldDeny, true);
  assert.match(
    no.message,
    /^reg\.example\/web@sha256:bbbbbbbbbbbb… \(container web\): delta_risk 0\.\d{3} > 0\.300 \(RolloutGate strict, aaa-bbb\); top contributors: (\w+ 0\.\d{3}, ){2}\w+ 0\.\d{3}$/,
  );
  assert.equal(no.verdicts[0]?.risk?.topContributors.length, 3);
});

test("the same change scores higher when the changed function is hot in the base image", () => {
  const mid: ScoreInputs = { ...LOW, entropy: { ...LOW.entropy, addedBytes: 200_000, copiedBytes: 800_000 } };
  const cold = dec(
    "g",
    GATE,
    update(A, B),
    lookup([delta(A, B, mid)], [], () => 0),
  );
  const hot = dec(
    "g",
    GATE,
    update(A, B),
    lookup([delta(A, B, mid)], [], (img, fn) => (img === A && fn.symbol === "parse_hdr" ? 0.17 : 0)),
  );
  const c = cold.verdicts[0]?.risk?.score ?? NaN;
  const h = hot.verdicts[0]?.risk?.score ?? NaN;
  assert.ok(h > c, `hot ${h} > cold ${c}`);
  const impact = (d: typeof hot) =>
    d.verdicts[0]?.risk?.breakdown.find((b) => b.factor === "function_change_impact");
  assert.ok((impact(hot)?.contribution ?? 0) > 2 * (impact(cold)?.contribution ?? 0));
});

test("no attestation: denied, or admitted with a warning under missingAttestation: warn", () => {
  const deny = dec("g", GATE, update(A, C), lookup([delta(A, B, LOW)]));
  assert.equal(deny.allowed, false);
  assert.match(deny.message, /no DeltaAttestation for .*sha256:aaaaaaaaaaaa… → .*sha256:cccccccccccc…/);
  const warn = dec("g", { ...GATE, missingAttestation: "warn" }, update(A, C), lookup([]));
  assert.equal(warn.allowed, true);
  assert.equal(warn.warnings.length, 1);
  assert.match(warn.warnings[0] ?? "", /missingAttestation: warn/);
});

test("signature levels: an unsigned or untrusted attestation fails minProvenance verified; signed passes 'signed'", () => {
  const untrusted = lookup([delta(A, B, LOW, "signed")]);
  assert.match(
    dec("g", GATE, update(A, B), untrusted).message,
    /not by a key the gate trusts; .* needs verified/,
  );
  assert.equal(dec("g", { ...GATE, minProvenance: "signed" }, update(A, B), untrusted).allowed, true);
  const unsigned = lookup([delta(A, B, LOW, "none")]);
  assert.match(dec("g", { ...GATE, minProvenance: "signed" }, update(A, B), unsigned).message, /is unsigned/);
});

test("rollback B→A: denied without a signed rollback attestation, admitted with one", () => {
  const forward = [delta(A, B, LOW)];
  const without = dec("g", GATE, update(B, A), lookup(forward));
  assert.equal(without.allowed, false);
  assert.equal(without.verdicts[0]?.kind, "rollback");
  assert.match(
    without.message,
    /rollback from .* needs a rollback attestation signed by a trusted key .*none found/,
  );
  const unsignedRb = dec("g", GATE, update(B, A), lookup(forward, [delta(B, A, LOW, "signed")]));
  assert.equal(unsignedRb.allowed, false);
  const withRb = dec("g", GATE, update(B, A), lookup(forward, [delta(B, A, LOW)]));
  assert.equal(withRb.allowed, true, withRb.message);
  assert.match(withRb.message, /with signed rollback attestation bbb-aaa/);
  const relaxed = { ...GATE, rollback: { requireSignedAttestation: false } };
  assert.equal(dec("g", relaxed, update(B, A), lookup(forward)).verdicts[0]?.kind, "forward");
});

test("audit mode admits and records what it would deny; tags without digests are denied; creates pass", () => {
  const audit = dec("g", { ...GATE, mode: "audit" }, update(A, B), lookup([delta(A, B, HIGH)]));
  assert.equal(audit.allowed, true);
  assert.equal(audit.wouldDeny, true);
  assert.match(audit.warnings[0] ?? "", /^audit \(would deny\): .*delta_risk/);

  const tags = imageChanges(
    "Deployment",
    deployment("reg.example/web:1.0"),
    deployment("reg.example/web:1.1"),
  );
  const t = dec("g", GATE, tags, lookup([]));
  assert.equal(t.allowed, false);
  assert.match(t.message, /reg\.example\/web:1\.1 is not pinned by digest/);

  const created = dec("g", GATE, imageChanges("Deployment", undefined, deployment(`w@${A}`)), lookup([]));
  assert.equal(created.allowed, true);
  assert.equal(created.verdicts[0]?.kind, "new");
  assert.equal(dec("g", GATE, [], lookup([])).message, "no image changes");
});

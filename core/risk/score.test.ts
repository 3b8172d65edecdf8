import assert from "node:assert/strict";
import { describe, it } from "node:test";

import fc from "fast-check";

import { isStellaError } from "../errors.ts";
import { DEFAULT_POLICY, FACTORS, parsePolicy, policyHash, type Factor } from "./policy.ts";
import {
  deltaRisk,
  parseScoreInputs,
  withHotness,
  type ChangedFunction,
  type RiskResult,
  type ScoreInputs,
} from "./score.ts";
import { renderRiskJson } from "./table.ts";

/** Worked example of docs/delta-risk.md: every factor's value can be checked by hand. */
const BASE: ScoreInputs = {
  provenance: { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "verified" },
  entropy: { copiedBytes: 900, addedBytes: 100, targetBytes: 1000, addedEntropyBitsPerByte: 6.9 },
  deps: { added: 1, removed: 4, changed: 2 },
  attestation: { signatures: 2, trustedSignatures: 1, newestSignatureAgeDays: 30, keyAgeDays: 455 },
  functions: {
    added: 0,
    removed: 0,
    modified: 1,
    changed: [{ symbol: "handle_request", change: "modified", criticality: 1, hotness: 0 }],
  },
};

function factor(result: RiskResult, name: Factor): RiskResult["breakdown"][number] {
  const f = result.breakdown.find((b) => b.factor === name);
  assert.ok(f, `no ${name} in the breakdown`);
  return f;
}

function withFunctions(inputs: ScoreInputs, changed: ChangedFunction[]): ScoreInputs {
  return { ...inputs, functions: { ...inputs.functions, changed } };
}

describe("deltaRisk: the worked example", () => {
  it("gives the hand-computed values, weights, contributions and order", () => {
    const r = deltaRisk(BASE, DEFAULT_POLICY);
    // provenance 0; entropy 0.1 × (0.5 + 0.5 × 0.5) = 0.075; deps 3/(3+3) = 0.5;
    // attestation 0.8 × ramp(455; 180, 730) = 0.4; functions 1/(1+5).
    assert.deepEqual(
      r.breakdown.map((b) => [b.factor, b.value, b.weight, b.contribution]),
      [
        ["signed_attestation_validity", 0.4, 0.2, 0.08],
        ["new_deps_count", 0.5, 0.15, 0.075],
        ["function_change_impact", 0.166667, 0.2, 0.033333],
        ["delta_entropy", 0.075, 0.15, 0.01125],
        ["provenance_completeness", 0, 0.3, 0],
      ],
    );
    assert.equal(r.score, 0.199583);
    assert.equal(r.provenanceCompleteness, 1);
    assert.deepEqual(r.hints, { exceedsMax: false, provenanceBelowMin: false });
    assert.deepEqual(r.topContributors, [
      { factor: "signed_attestation_validity", contribution: 0.08 },
      { factor: "new_deps_count", contribution: 0.075 },
      { factor: "function_change_impact", contribution: 0.033333 },
    ]);
    assert.equal(r.policyHash, policyHash(DEFAULT_POLICY));
    assert.deepEqual(factor(r, "new_deps_count").reasons, [
      "1 new, 2 changed, 4 removed dependencies (weighted count 3)",
    ]);
  });

  it("sets the decision hints from the policy's thresholds", () => {
    const strict = parsePolicy("maxDeltaRisk: 0.1\nminProvenance: 1\n", "p.yaml");
    const r = deltaRisk(
      { ...BASE, provenance: { ...BASE.provenance, transparencyLog: "unverified" } },
      strict,
    );
    assert.equal(r.maxDeltaRisk, 0.1);
    assert.deepEqual(r.hints, { exceedsMax: true, provenanceBelowMin: true });
  });

  it("a factor with weight 0 contributes nothing; normalised weights sum to 1", () => {
    const p = parsePolicy("weights: {signed_attestation_validity: 0}\n", "p.yaml");
    const r = deltaRisk(BASE, p);
    assert.equal(factor(r, "signed_attestation_validity").contribution, 0);
    assert.equal(factor(r, "signed_attestation_validity").value, 0.4);
    const sum = r.breakdown.reduce((a, b) => a + b.weight, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `weights sum to ${sum}`);
  });
});

describe("deltaRisk: the seed's test matrix", () => {
  it("missing SLSA provenance but a valid signature: gap recorded, lower completeness, higher risk", () => {
    const verified = deltaRisk(BASE, DEFAULT_POLICY);
    const gap = deltaRisk(
      {
        ...BASE,
        provenance: { slsaProvenance: "absent", dsseValid: true, transparencyLog: "absent" },
      },
      DEFAULT_POLICY,
    );
    const reasons = factor(gap, "provenance_completeness").reasons;
    assert.ok(
      reasons.includes("provenance gap: no SLSA provenance for the target (no SLSA credit)"),
      reasons.join("\n"),
    );
    assert.ok(reasons.includes("DSSE signature valid"));
    assert.equal(gap.provenanceCompleteness, 0.3); // only the DSSE part: 0.3 / 1
    assert.ok(gap.provenanceCompleteness < verified.provenanceCompleteness);
    assert.ok(gap.score > verified.score, `${gap.score} <= ${verified.score}`);
    assert.equal(gap.hints.provenanceBelowMin, true);
    assert.equal(gap.breakdown[0]?.factor, "provenance_completeness");
  });

  it("an added dependency raises new_deps_count's contribution and the score", () => {
    const none = { ...BASE, deps: { added: 0, removed: 0, changed: 0 } };
    const one = { ...BASE, deps: { added: 1, removed: 0, changed: 0 } };
    const a = deltaRisk(none, DEFAULT_POLICY);
    const b = deltaRisk(one, DEFAULT_POLICY);
    assert.equal(factor(a, "new_deps_count").contribution, 0);
    assert.equal(factor(b, "new_deps_count").value, 0.25);
    assert.ok(factor(b, "new_deps_count").contribution > factor(a, "new_deps_count").contribution);
    assert.ok(b.score > a.score);
  });

  it("the same change scores higher when the changed function is hot than when it is cold", () => {
    const cold = withFunctions(BASE, [{ symbol: "handle_request", change: "modified", hotness: 0 }]);
    const hot = withFunctions(BASE, [{ symbol: "handle_request", change: "modified", hotness: 0.02 }]);
    const c = deltaRisk(cold, DEFAULT_POLICY);
    const h = deltaRisk(hot, DEFAULT_POLICY);
    const fc0 = factor(c, "function_change_impact");
    const fh = factor(h, "function_change_impact");
    // cold: 0.25 / 5.25; hot (≥ hotShare): 0.25 × (1 + 4) = 1.25 → 1.25 / 6.25.
    assert.equal(fc0.value, 0.047619);
    assert.equal(fh.value, 0.2);
    assert.ok(fh.contribution > 4 * fc0.contribution, "a clearly visible effect");
    assert.ok(h.score > c.score);
    assert.ok(
      fh.reasons.includes("modified handle_request: criticality 0.25, hot 0.02 (×5) → 1.25"),
      fh.reasons.join("\n"),
    );
    assert.ok(fc0.reasons.includes("modified handle_request: criticality 0.25, cold → 0.25"));
  });

  it("withHotness: the operator's lookup feeds the same effect", () => {
    const cold = withFunctions(BASE, [
      { symbol: "handle_request", change: "modified" },
      { symbol: "never_runs", change: "modified", hotness: 0.5 },
    ]);
    const hot = withHotness(cold, (fn) => (fn.symbol === "handle_request" ? 0.3 : undefined));
    assert.deepEqual(hot.functions.changed, [
      { symbol: "handle_request", change: "modified", hotness: 0.3 },
      { symbol: "never_runs", change: "modified", hotness: 0.5 },
    ]);
    assert.equal(cold.functions.changed[0]?.hotness, undefined, "the input is not modified");
    assert.ok(deltaRisk(hot, DEFAULT_POLICY).score > deltaRisk(cold, DEFAULT_POLICY).score);
    assert.equal(withHotness(cold, () => 7).functions.changed[0]?.hotness, 1, "clamped to [0, 1]");
  });

  it("policy criticalSymbols raise a function's criticality, never lower it", () => {
    const r = deltaRisk(
      withFunctions(BASE, [
        { symbol: "X509_verify_cert", change: "modified" },
        { symbol: "SSL_read", change: "modified", criticality: 1 },
      ]),
      DEFAULT_POLICY,
    );
    const reasons = factor(r, "function_change_impact").reasons;
    assert.ok(reasons.includes("modified SSL_read: criticality 1, cold → 1"), reasons.join("\n"));
    assert.ok(reasons.includes("modified X509_verify_cert: criticality 0.9, cold → 0.9"));
  });

  it("counts changed functions that are not listed at the default criticality", () => {
    const r = deltaRisk(
      { ...BASE, functions: { added: 2, removed: 2, modified: 0, changed: [] } },
      DEFAULT_POLICY,
    );
    // 2 × 1 × 0.25 + 2 × 0.5 × 0.25 = 0.75 → 0.75 / 5.75
    assert.equal(factor(r, "function_change_impact").value, 0.130435);
  });

  it("no trusted signature, or an expired key, makes signed_attestation_validity 1", () => {
    for (const attestation of [
      { signatures: 3, trustedSignatures: 0 },
      { signatures: 1, trustedSignatures: 1, expired: true },
    ]) {
      assert.equal(
        factor(deltaRisk({ ...BASE, attestation }, DEFAULT_POLICY), "signed_attestation_validity").value,
        1,
      );
    }
  });

  it("high-entropy ADD bytes are flagged", () => {
    const r = deltaRisk(
      { ...BASE, entropy: { ...BASE.entropy, addedEntropyBitsPerByte: 7.99 } },
      DEFAULT_POLICY,
    );
    assert.equal(factor(r, "delta_entropy").value, 0.1);
    assert.ok(
      factor(r, "delta_entropy").reasons.includes(
        "added bytes look compressed or encrypted (unexpected high entropy)",
      ),
    );
  });
});

// ---- properties ----------------------------------------------------------------------------------------

const arbFunction: fc.Arbitrary<ChangedFunction> = fc.record(
  {
    symbol: fc.constantFrom("main", "SSL_read", "parse_header", "helper", "X509_verify_cert", "f"),
    change: fc.constantFrom("added", "removed", "modified"),
    criticality: fc.double({ min: 0, max: 1, noNaN: true }),
    hotness: fc.double({ min: 0, max: 1, noNaN: true }),
  },
  { requiredKeys: ["symbol", "change"] },
);

const arbInputs: fc.Arbitrary<ScoreInputs> = fc
  .record({
    provenance: fc.record(
      {
        slsaProvenance: fc.constantFrom("absent", "present-unverified", "verified"),
        slsaLevel: fc.integer({ min: 0, max: 4 }),
        dsseValid: fc.boolean(),
        transparencyLog: fc.constantFrom("absent", "unverified", "verified"),
      },
      { requiredKeys: ["slsaProvenance", "dsseValid", "transparencyLog"] },
    ),
    entropy: fc.record({
      copiedBytes: fc.integer({ min: 0, max: 2 ** 40 }),
      addedBytes: fc.integer({ min: 0, max: 2 ** 40 }),
      targetBytes: fc.integer({ min: 0, max: 2 ** 41 }),
      addedEntropyBitsPerByte: fc.double({ min: 0, max: 8, noNaN: true }),
    }),
    deps: fc.record({
      added: fc.nat(500),
      removed: fc.nat(500),
      changed: fc.nat(500),
    }),
    attestation: fc
      .record(
        {
          signatures: fc.nat(5),
          trustedSignatures: fc.nat(5),
          newestSignatureAgeDays: fc.double({ min: 0, max: 5000, noNaN: true }),
          keyAgeDays: fc.double({ min: 0, max: 5000, noNaN: true }),
          expired: fc.boolean(),
        },
        { requiredKeys: ["signatures", "trustedSignatures"] },
      )
      .map((a) => ({ ...a, trustedSignatures: Math.min(a.trustedSignatures, a.signatures) })),
    functions: fc.record({
      added: fc.nat(1000),
      removed: fc.nat(1000),
      modified: fc.nat(1000),
      changed: fc.array(arbFunction, { maxLength: 12 }),
    }),
  })
  .map((x) => x as ScoreInputs);

const score = (x: ScoreInputs): number => deltaRisk(x, DEFAULT_POLICY).score;
const value = (x: ScoreInputs, f: Factor): number => factor(deltaRisk(x, DEFAULT_POLICY), f).value;
const RUNS = { numRuns: 300 };

/** Asserts that `more` is at least as risky as `x`, overall and in factor `f`. */
function atLeast(x: ScoreInputs, more: ScoreInputs, f: Factor): void {
  assert.ok(value(more, f) >= value(x, f), `${f}: ${value(more, f)} < ${value(x, f)}`);
  assert.ok(score(more) >= score(x), `score: ${score(more)} < ${score(x)}`);
}

describe("deltaRisk: properties", () => {
  it("score and factor values in [0, 1]; contributions = value × weight and sum to the score; sorted", () => {
    fc.assert(
      fc.property(arbInputs, (x) => {
        const r = deltaRisk(x, DEFAULT_POLICY);
        assert.ok(r.score >= 0 && r.score <= 1);
        let sum = 0;
        for (const b of r.breakdown) {
          assert.ok(b.value >= 0 && b.value <= 1);
          assert.ok(Math.abs(b.contribution - b.value * b.weight) <= 2e-6);
          sum += b.contribution;
        }
        assert.ok(Math.abs(sum - r.score) <= 5e-6, `${sum} vs ${r.score}`);
        assert.deepEqual([...r.breakdown.map((b) => b.factor)].sort(), [...FACTORS].sort());
        for (let i = 1; i < r.breakdown.length; i++) {
          const [p, q] = [r.breakdown[i - 1]!, r.breakdown[i]!];
          assert.ok(
            p.contribution > q.contribution || (p.contribution === q.contribution && p.factor < q.factor),
          );
        }
        assert.deepEqual(
          r.topContributors,
          r.breakdown.slice(0, 3).map((b) => ({ factor: b.factor, contribution: b.contribution })),
        );
      }),
      RUNS,
    );
  });

  it("determinism: same inputs → byte-identical JSON, whatever the order of changed functions", () => {
    fc.assert(
      fc.property(arbInputs, fc.integer(), (x, seed) => {
        const json = renderRiskJson(deltaRisk(x, DEFAULT_POLICY));
        const copy = JSON.parse(JSON.stringify(x)) as ScoreInputs;
        assert.equal(renderRiskJson(deltaRisk(copy, DEFAULT_POLICY)), json);
        const shuffled = [...x.functions.changed];
        let s = seed;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) & 0x7fffffff;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        assert.equal(renderRiskJson(deltaRisk(withFunctions(x, shuffled), DEFAULT_POLICY)), json);
      }),
      RUNS,
    );
  });

  it("more added bytes → no less risk", () => {
    fc.assert(
      fc.property(arbInputs, fc.integer({ min: 1, max: 2 ** 40 }), (x, extra) => {
        atLeast(
          x,
          { ...x, entropy: { ...x.entropy, addedBytes: x.entropy.addedBytes + extra } },
          "delta_entropy",
        );
      }),
      RUNS,
    );
  });

  it("higher entropy of the added bytes → no less risk", () => {
    fc.assert(
      fc.property(arbInputs, fc.double({ min: 0, max: 8, noNaN: true }), (x, h) => {
        const hi = Math.max(h, x.entropy.addedEntropyBitsPerByte);
        atLeast(x, { ...x, entropy: { ...x.entropy, addedEntropyBitsPerByte: hi } }, "delta_entropy");
      }),
      RUNS,
    );
  });

  it("more new, changed or removed dependencies → no less risk", () => {
    fc.assert(
      fc.property(arbInputs, fc.nat(50), fc.nat(50), fc.nat(50), (x, a, c, r) => {
        const d = x.deps;
        atLeast(
          x,
          { ...x, deps: { added: d.added + a, changed: d.changed + c, removed: d.removed + r } },
          "new_deps_count",
        );
      }),
      RUNS,
    );
  });

  it("older signatures and keys → no less risk; losing trust or expiring → no less risk", () => {
    fc.assert(
      fc.property(
        arbInputs,
        fc.double({ min: 0, max: 3000, noNaN: true }),
        fc.double({ min: 0, max: 3000, noNaN: true }),
        (x, ds, dk) => {
          const a = x.attestation;
          const older = {
            ...a,
            ...(a.newestSignatureAgeDays === undefined
              ? {}
              : { newestSignatureAgeDays: a.newestSignatureAgeDays + ds }),
            ...(a.keyAgeDays === undefined ? {} : { keyAgeDays: a.keyAgeDays + dk }),
          };
          atLeast(x, { ...x, attestation: older }, "signed_attestation_validity");
          atLeast(x, { ...x, attestation: { ...a, trustedSignatures: 0 } }, "signed_attestation_validity");
          atLeast(x, { ...x, attestation: { ...a, expired: true } }, "signed_attestation_validity");
        },
      ),
      RUNS,
    );
  });

  it("hotter or more critical changed functions, or one more changed function → no less risk", () => {
    fc.assert(
      fc.property(arbInputs, arbFunction, fc.double({ min: 0, max: 1, noNaN: true }), (x, extra, bump) => {
        const changed = x.functions.changed;
        const hotter = changed.map((f) => ({ ...f, hotness: Math.max(f.hotness ?? 0, bump) }));
        const critical = changed.map((f) => ({ ...f, criticality: Math.max(f.criticality ?? 0.25, bump) }));
        atLeast(x, withFunctions(x, hotter), "function_change_impact");
        atLeast(x, withFunctions(x, critical), "function_change_impact");
        atLeast(
          x,
          {
            ...x,
            functions: {
              ...x.functions,
              [extra.change]: x.functions[extra.change] + 1,
              changed: [...changed, extra],
            },
          },
          "function_change_impact",
        );
      }),
      RUNS,
    );
  });

  it("better provenance → no more risk, and no less completeness", () => {
    const slsaOrder = ["absent", "present-unverified", "verified"] as const;
    const tlogOrder = ["absent", "unverified", "verified"] as const;
    fc.assert(
      fc.property(arbInputs, fc.nat(2), fc.nat(2), fc.boolean(), (x, s, t, d) => {
        const p = x.provenance;
        const better = {
          ...p,
          slsaProvenance: slsaOrder[Math.max(s, slsaOrder.indexOf(p.slsaProvenance))]!,
          transparencyLog: tlogOrder[Math.max(t, tlogOrder.indexOf(p.transparencyLog))]!,
          dsseValid: p.dsseValid || d,
          ...(p.slsaLevel === undefined ? {} : { slsaLevel: Math.min(4, p.slsaLevel + 1) }),
        };
        const before = deltaRisk(x, DEFAULT_POLICY);
        const after = deltaRisk({ ...x, provenance: better }, DEFAULT_POLICY);
        assert.ok(after.score <= before.score);
        assert.ok(after.provenanceCompleteness >= before.provenanceCompleteness);
      }),
      RUNS,
    );
  });
});

describe("parseScoreInputs", () => {
  const refused = (value: unknown, message: string): void => {
    assert.throws(
      () => parseScoreInputs(value, "m.json: score_inputs"),
      (err: unknown) => {
        assert.ok(isStellaError(err, "RISK_INPUTS_INVALID"), String(err));
        assert.equal(err.message, message);
        return true;
      },
    );
  };
  const json = (): Record<string, Record<string, unknown>> =>
    JSON.parse(JSON.stringify(BASE)) as Record<string, Record<string, unknown>>;

  it("accepts what deltaRisk stores and returns it unchanged", () => {
    assert.deepEqual(parseScoreInputs(json()), BASE);
  });

  it("refuses unknown keys, bad counts and out-of-range values, naming the field", () => {
    const a = json();
    a["entropy"]!["extra"] = 1;
    refused(
      a,
      "m.json: score_inputs: entropy.extra: unknown key (expected one of: copiedBytes, addedBytes, targetBytes, addedEntropyBitsPerByte)",
    );
    const b = json();
    b["entropy"]!["addedBytes"] = -1;
    refused(b, "m.json: score_inputs: entropy.addedBytes: must be a non-negative integer, got -1");
    const c = json();
    c["attestation"]!["trustedSignatures"] = 3;
    refused(c, "m.json: score_inputs: attestation.trustedSignatures: must be at most signatures (2), got 3");
    const d = json();
    (d["functions"]!["changed"] as Record<string, unknown>[])[0]!["hotness"] = 1.5;
    refused(d, "m.json: score_inputs: functions.changed[0].hotness: must be a number in [0, 1], got 1.5");
    const e = json();
    e["provenance"]!["slsaProvenance"] = "yes";
    refused(
      e,
      'm.json: score_inputs: provenance.slsaProvenance: must be one of absent, present-unverified, verified, got "yes"',
    );
    const f = json();
    delete f["deps"];
    refused(f, "m.json: score_inputs: deps: must be a mapping, got nothing");
  });

  it("deltaRisk refuses invalid inputs too (TypeScript types do not check ranges)", () => {
    assert.throws(
      () => deltaRisk({ ...BASE, entropy: { ...BASE.entropy, addedEntropyBitsPerByte: 9 } }, DEFAULT_POLICY),
      {
        code: "RISK_INPUTS_INVALID",
        message: "score_inputs: entropy.addedEntropyBitsPerByte: must be a number in [0, 8], got 9",
      },
    );
  });
});

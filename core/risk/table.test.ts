import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { canonicalJson } from "../canonical-json.ts";
import { DEFAULT_POLICY, policyHash } from "./policy.ts";
import { deltaRisk, type ScoreInputs } from "./score.ts";
import { renderRiskJson, renderRiskTable } from "./table.ts";

const INPUTS: ScoreInputs = {
  provenance: { slsaProvenance: "absent", dsseValid: true, transparencyLog: "absent" },
  entropy: { copiedBytes: 900, addedBytes: 100, targetBytes: 1000, addedEntropyBitsPerByte: 6.9 },
  deps: { added: 1, removed: 0, changed: 0 },
  attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 2, keyAgeDays: 10 },
  functions: {
    added: 0,
    removed: 0,
    modified: 2,
    changed: [
      { symbol: "SSL_read", change: "modified", hotness: 0.02 },
      { symbol: "helper", change: "modified" },
    ],
  },
};

describe("renderRiskTable", () => {
  const result = deltaRisk(INPUTS, DEFAULT_POLICY);
  const text = renderRiskTable(result);
  const lines = text.split("\n");

  it("prints the score, the thresholds, the top contributors and the policy", () => {
    assert.equal(lines[0], `delta_risk ${result.score.toFixed(6)} (max 0.5): within the limit`);
    assert.equal(lines[1], "provenance completeness 0.300000 (min 0.5): BELOW THE MINIMUM");
    assert.match(lines[2] ?? "", /^top contributors: provenance_completeness 0\.210000, /);
    assert.equal(lines[3], `policy ${policyHash(DEFAULT_POLICY)}`);
    assert.ok(text.endsWith("\n"));
  });

  it("aligns the columns: every row's numbers start where the header's do", () => {
    const header = lines.find((l) => l.startsWith("FACTOR"));
    assert.ok(header);
    const cols = ["VALUE", "WEIGHT", "CONTRIBUTION", "REASONS"].map((c) => header.indexOf(c));
    const rows = lines.filter((l) => /^[a-z_]+ {2,}\d/.test(l));
    assert.equal(rows.length, 5);
    rows.forEach((row, i) => {
      const b = result.breakdown[i]!;
      assert.ok(row.startsWith(b.factor));
      assert.equal(row.slice(cols[0], cols[0]! + 8), b.value.toFixed(6));
      assert.equal(row.slice(cols[1], cols[1]! + 8), b.weight.toFixed(6));
      assert.equal(row.slice(cols[2], cols[2]! + 8), b.contribution.toFixed(6));
      assert.equal(row.slice(cols[3]), b.reasons[0]);
    });
    // Continuation lines carry the other reasons, indented to the REASONS column.
    const prov = lines.indexOf(rows.find((r) => r.startsWith("provenance_completeness"))!);
    assert.equal(lines[prov + 1], `${" ".repeat(cols[3]!)}DSSE signature valid`);
  });

  it("shows the hot function in function_change_impact's reasons", () => {
    assert.ok(text.includes("modified SSL_read: criticality 0.8, hot 0.02 (×5) → 4"), text);
    assert.ok(text.includes("modified helper: criticality 0.25, cold → 0.25"));
  });
});

describe("renderRiskJson", () => {
  it("is the canonical JSON of the result, and the same for the same inputs", () => {
    const a = renderRiskJson(deltaRisk(INPUTS, DEFAULT_POLICY));
    const b = renderRiskJson(deltaRisk(JSON.parse(JSON.stringify(INPUTS)) as ScoreInputs, DEFAULT_POLICY));
    assert.equal(a, b);
    assert.equal(a, canonicalJson(JSON.parse(a)));
    assert.deepEqual(JSON.parse(a), JSON.parse(JSON.stringify(deltaRisk(INPUTS, DEFAULT_POLICY))));
  });

  it("is pinned: the bytes for a fixed input do not drift unnoticed", () => {
    const json = renderRiskJson(deltaRisk(INPUTS, DEFAULT_POLICY));
    const parsed = JSON.parse(json) as { score: number; breakdown: { factor: string; value: number }[] };
    // provenance 0.7 × 0.3 = 0.21; entropy 0.075 × 0.15; deps 0.25 × 0.15; attestation 0.2 × 0;
    // functions (4 + 0.25) / 9.25 × 0.2.
    assert.equal(parsed.score, 0.350642);
    assert.deepEqual(
      parsed.breakdown.map((b) => [b.factor, b.value]),
      [
        ["provenance_completeness", 0.7],
        ["function_change_impact", 0.459459],
        ["new_deps_count", 0.25],
        ["delta_entropy", 0.075],
        ["signed_attestation_validity", 0],
      ],
    );
  });
});

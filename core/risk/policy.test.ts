import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

import { canonicalJson } from "../canonical-json.ts";
import { isStellaError } from "../errors.ts";
import { RiskError } from "./errors.ts";
import {
  DEFAULT_POLICY,
  loadPolicy,
  parsePolicy,
  policyFromObject,
  policyHash,
  symbolCriticality,
  withThresholds,
} from "./policy.ts";

const TEMPLATE = new URL("./policy.template.yaml", import.meta.url);

/** Asserts that parsing `yaml` fails with exactly `message`, code RISK_POLICY_INVALID. */
function refused(yaml: string, message: string): RiskError {
  let caught: unknown;
  assert.throws(
    () => parsePolicy(yaml, "p.yaml"),
    (err: unknown) => {
      caught = err;
      return true;
    },
  );
  assert.ok(
    isStellaError(caught, "RISK_POLICY_INVALID"),
    `expected RISK_POLICY_INVALID, got ${String(caught)}`,
  );
  assert.ok(caught instanceof RiskError);
  assert.equal(caught.message, message);
  assert.equal(caught.file, "p.yaml");
  return caught;
}

describe("policy.template.yaml", () => {
  it("parses to exactly DEFAULT_POLICY (same canonical JSON, same hash)", () => {
    const policy = loadPolicy(TEMPLATE.pathname);
    assert.deepEqual(policy, DEFAULT_POLICY);
    assert.equal(canonicalJson(policy), canonicalJson(DEFAULT_POLICY));
    assert.equal(policyHash(policy), policyHash(DEFAULT_POLICY));
  });

  it("sets every key explicitly (no key of DEFAULT_POLICY is left to the defaults)", () => {
    const text = readFileSync(TEMPLATE, "utf8");
    const keys = (value: unknown, prefix: string): string[] =>
      typeof value === "object" && value !== null && !Array.isArray(value)
        ? Object.entries(value).flatMap(([k, v]) => [k, ...keys(v, `${prefix}${k}.`)])
        : [];
    for (const key of keys(DEFAULT_POLICY, "")) {
      assert.match(text, new RegExp(`^\\s*${key}:`, "m"), `template lacks ${key}`);
    }
  });
});

describe("parsePolicy", () => {
  it("an empty document is DEFAULT_POLICY", () => {
    assert.equal(parsePolicy("", "p.yaml"), DEFAULT_POLICY);
    assert.equal(parsePolicy("# nothing\n", "p.yaml"), DEFAULT_POLICY);
  });

  it("merges a partial policy over the defaults, key by key", () => {
    const p = parsePolicy(
      "maxDeltaRisk: 0.3\nweights:\n  delta_entropy: 0\nthresholds:\n  deps:\n    saturation: 10\n",
      "p.yaml",
    );
    assert.equal(p.maxDeltaRisk, 0.3);
    assert.equal(p.minProvenance, DEFAULT_POLICY.minProvenance);
    assert.equal(p.weights.delta_entropy, 0);
    assert.equal(p.weights.function_change_impact, DEFAULT_POLICY.weights.function_change_impact);
    assert.equal(p.thresholds.deps.saturation, 10);
    assert.equal(p.thresholds.deps.changedWeight, DEFAULT_POLICY.thresholds.deps.changedWeight);
    assert.deepEqual(p.criticalSymbols, DEFAULT_POLICY.criticalSymbols);
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.thresholds.deps));
  });

  it("criticalSymbols replaces the default list", () => {
    const p = parsePolicy("criticalSymbols:\n  - glob: 'main'\n    criticality: 1\n", "p.yaml");
    assert.deepEqual(p.criticalSymbols, [{ glob: "main", criticality: 1 }]);
  });

  it("JSON is accepted too (YAML 1.2 is a superset)", () => {
    assert.equal(parsePolicy('{"maxDeltaRisk": 0.25}', "p.json").maxDeltaRisk, 0.25);
  });

  it("refuses an unknown key, naming its path", () => {
    refused(
      "colour: red\n",
      "p.yaml: colour: unknown key (expected one of: version, maxDeltaRisk, minProvenance, hotWeight, weights, thresholds, criticalSymbols)",
    );
    refused(
      "weights:\n  entropy: 1\n",
      "p.yaml: weights.entropy: unknown key (expected one of: provenance_completeness, delta_entropy, new_deps_count, signed_attestation_validity, function_change_impact)",
    );
    refused(
      "thresholds:\n  entropy:\n    lowBits: 5\n",
      "p.yaml: thresholds.entropy.lowBits: unknown key (expected one of: lowBitsPerByte, highBitsPerByte, floor, addedBytesSaturation)",
    );
    refused(
      "criticalSymbols:\n  - glob: a\n    criticality: 1\n    note: x\n",
      "p.yaml: criticalSymbols[0].note: unknown key (expected one of: glob, regex, criticality)",
    );
    refused(
      "__proto__:\n  polluted: true\n",
      "p.yaml: __proto__: unknown key (expected one of: version, maxDeltaRisk, minProvenance, hotWeight, weights, thresholds, criticalSymbols)",
    );
  });

  it("refuses a negative weight, and weights summing to 0", () => {
    const err = refused(
      "weights:\n  delta_entropy: -1\n",
      "p.yaml: weights.delta_entropy: must be a number in [0, 1000], got -1",
    );
    assert.equal(err.field, "weights.delta_entropy");
    assert.equal(err.limit, "must be a number in [0, 1000], got -1");
    refused(
      "weights: {provenance_completeness: 0, delta_entropy: 0, new_deps_count: 0, signed_attestation_validity: 0, function_change_impact: 0}\n",
      "p.yaml: weights: must sum to more than 0, got 0",
    );
  });

  it("refuses maxDeltaRisk and minProvenance out of [0, 1], and non-numbers", () => {
    refused("maxDeltaRisk: 1.5\n", "p.yaml: maxDeltaRisk: must be a number in [0, 1], got 1.5");
    refused("maxDeltaRisk: -0.1\n", "p.yaml: maxDeltaRisk: must be a number in [0, 1], got -0.1");
    refused("minProvenance: 2\n", "p.yaml: minProvenance: must be a number in [0, 1], got 2");
    refused('maxDeltaRisk: "0.5"\n', 'p.yaml: maxDeltaRisk: must be a number in [0, 1], got "0.5"');
    refused("maxDeltaRisk: .nan\n", "p.yaml: maxDeltaRisk: must be a number in [0, 1], got NaN");
    refused("maxDeltaRisk:\n", "p.yaml: maxDeltaRisk: must be a number in [0, 1], got null");
  });

  it("refuses other out-of-range constants with their limits", () => {
    refused(
      "thresholds:\n  provenance:\n    targetSlsaLevel: 2.5\n",
      "p.yaml: thresholds.provenance.targetSlsaLevel: must be an integer in [1, 4], got 2.5",
    );
    refused(
      "thresholds:\n  functions:\n    hotShare: 0\n",
      "p.yaml: thresholds.functions.hotShare: must be a number in (0, 1], got 0",
    );
    refused(
      "thresholds:\n  entropy:\n    lowBitsPerByte: 7\n    highBitsPerByte: 7\n",
      "p.yaml: thresholds.entropy.highBitsPerByte: must be greater than lowBitsPerByte (7), got 7",
    );
    refused(
      "thresholds:\n  attestation:\n    keyGraceDays: 800\n",
      "p.yaml: thresholds.attestation.keyMaxAgeDays: must be greater than keyGraceDays (800), got 730",
    );
    refused(
      "thresholds:\n  provenance: {slsaWeight: 0, dsseWeight: 0, transparencyLogWeight: 0}\n",
      "p.yaml: thresholds.provenance: slsaWeight + dsseWeight + transparencyLogWeight must sum to more than 0, got 0",
    );
    refused("hotWeight: -2\n", "p.yaml: hotWeight: must be a number in [0, 1000], got -2");
    refused("version: 2\n", "p.yaml: version: must be 1, got 2");
    refused("weights: [1, 2]\n", "p.yaml: weights: must be a mapping, got a list");
    refused("- 1\n", "p.yaml: (root): must be a mapping, got a list");
  });

  it("refuses malformed criticalSymbols", () => {
    refused("criticalSymbols: {}\n", "p.yaml: criticalSymbols: must be a list, got a mapping");
    refused(
      "criticalSymbols:\n  - glob: a\n    regex: b\n    criticality: 1\n",
      "p.yaml: criticalSymbols[0]: must have exactly one of glob, regex",
    );
    refused(
      "criticalSymbols:\n  - criticality: 1\n",
      "p.yaml: criticalSymbols[0]: must have exactly one of glob, regex",
    );
    refused(
      "criticalSymbols:\n  - glob: a\n    criticality: 1.2\n",
      "p.yaml: criticalSymbols[0].criticality: must be a number in [0, 1], got 1.2",
    );
    assert.throws(() => parsePolicy("criticalSymbols:\n  - regex: '(['\n    criticality: 1\n", "p.yaml"), {
      code: "RISK_POLICY_INVALID",
      message: /^p\.yaml: criticalSymbols\[0\]\.regex: not a valid regular expression: /,
    });
  });

  it("refuses YAML it cannot parse, and duplicate keys", () => {
    for (const yaml of ["a: [\n", "maxDeltaRisk: 0.1\nmaxDeltaRisk: 0.2\n"]) {
      assert.throws(
        () => parsePolicy(yaml, "p.yaml"),
        (err: unknown) =>
          isStellaError(err, "RISK_POLICY_INVALID") && /^p\.yaml: not valid YAML: /.test(err.message),
      );
    }
  });
});

describe("loadPolicy", () => {
  it("reads a file and names it in errors; a missing file is RISK_POLICY_IO", () => {
    const dir = mkdtempSync(join(tmpdir(), "risk-policy-"));
    try {
      const path = join(dir, "policy.yaml");
      writeFileSync(path, "maxDeltaRisk: 0.2\n");
      assert.equal(loadPolicy(path).maxDeltaRisk, 0.2);
      writeFileSync(path, "maxDeltaRisk: 7\n");
      assert.throws(() => loadPolicy(path), {
        message: `${path}: maxDeltaRisk: must be a number in [0, 1], got 7`,
      });
      assert.throws(
        () => loadPolicy(join(dir, "absent.yaml")),
        (err: unknown) =>
          isStellaError(err, "RISK_POLICY_IO") && err.message.startsWith(join(dir, "absent.yaml")),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("withThresholds", () => {
  it("replaces the admission thresholds, keeps the rest, validates, and changes the hash", () => {
    const gate = withThresholds(DEFAULT_POLICY, { maxDeltaRisk: 0.2 }, "RolloutGate prod/api");
    assert.equal(gate.maxDeltaRisk, 0.2);
    assert.equal(gate.minProvenance, DEFAULT_POLICY.minProvenance);
    assert.deepEqual(gate.thresholds, DEFAULT_POLICY.thresholds);
    assert.deepEqual(gate.criticalSymbols, DEFAULT_POLICY.criticalSymbols);
    assert.notEqual(policyHash(gate), policyHash(DEFAULT_POLICY));
    assert.equal(policyHash(withThresholds(gate, { maxDeltaRisk: 0.5 }, "g")), policyHash(DEFAULT_POLICY));
    assert.throws(() => withThresholds(DEFAULT_POLICY, { minProvenance: 3 }, "RolloutGate prod/api"), {
      message: "RolloutGate prod/api: minProvenance: must be a number in [0, 1], got 3",
    });
  });
});

describe("policyHash", () => {
  it("is sha256 of the canonical JSON: key order does not matter, values do", () => {
    const a = parsePolicy("minProvenance: 0.4\nmaxDeltaRisk: 0.3\n", "a.yaml");
    const b = parsePolicy("maxDeltaRisk: 0.3\nminProvenance: 0.4\n", "b.yaml");
    assert.match(policyHash(a), /^sha256:[0-9a-f]{64}$/);
    assert.equal(policyHash(a), policyHash(b));
    assert.notEqual(policyHash(a), policyHash(DEFAULT_POLICY));
    assert.notEqual(policyHash(parsePolicy("hotWeight: 5\n", "c.yaml")), policyHash(DEFAULT_POLICY));
  });
});

describe("symbolCriticality", () => {
  const policy = policyFromObject(
    {
      criticalSymbols: [
        { glob: "ssl_*", criticality: 0.5 },
        { glob: "ssl_read", criticality: 0.7 },
        { glob: "a.b?", criticality: 0.3 },
        { regex: "^EVP_(Digest|Cipher)", criticality: 0.9 },
        { glob: "*_free", criticality: 0.2 },
        { glob: "mid*dle", criticality: 0.4 },
        { glob: "*", criticality: 0.1 },
      ],
    },
    "p.yaml",
  );

  it("takes the highest matching criticality; globs match the whole symbol, literally", () => {
    assert.equal(symbolCriticality(policy, "ssl_read"), 0.7);
    assert.equal(symbolCriticality(policy, "ssl_write"), 0.5);
    assert.equal(symbolCriticality(policy, "xssl_write"), 0.1);
    assert.equal(symbolCriticality(policy, "SSL_write"), 0.1);
    assert.equal(symbolCriticality(policy, "a.bc"), 0.3);
    assert.equal(symbolCriticality(policy, "a.bcd"), 0.1);
    assert.equal(symbolCriticality(policy, "axbc"), 0.1);
    assert.equal(symbolCriticality(policy, "EVP_DigestInit"), 0.9);
    assert.equal(symbolCriticality(policy, "x_EVP_DigestInit"), 0.1);
    assert.equal(symbolCriticality(policy, "BN_free"), 0.2);
    assert.equal(symbolCriticality(policy, "BN_free_all"), 0.1);
    assert.equal(symbolCriticality(policy, "middle"), 0.4);
    assert.equal(symbolCriticality(policy, "mid-to-dle"), 0.4);
    assert.equal(symbolCriticality(policy, "amiddle"), 0.1);
    assert.equal(symbolCriticality(policy, "middlex"), 0.1);
    assert.equal(symbolCriticality(policy, ""), 0.1);
    const none = policyFromObject({ criticalSymbols: [{ glob: "ssl_*", criticality: 0.5 }] }, "p.yaml");
    assert.equal(symbolCriticality(none, "xssl_read"), undefined);
  });

  it("the defaults rate verification and TLS code as critical", () => {
    assert.equal(symbolCriticality(DEFAULT_POLICY, "X509_verify_cert"), 0.9);
    assert.equal(symbolCriticality(DEFAULT_POLICY, "SSL_read"), 0.8);
    assert.equal(symbolCriticality(DEFAULT_POLICY, "memcpy"), undefined);
  });
});

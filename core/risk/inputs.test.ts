import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import fc from "fast-check";

import { attest } from "../dsse/attest.ts";
import { envelopeToBundle } from "../dsse/bundle.ts";
import { envelopeToJson, type Envelope } from "../dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey } from "../dsse/keys.ts";
import { keySigner, signEnvelope } from "../dsse/sign.ts";
import { IN_TOTO_PAYLOAD_TYPE, makeStatement, statementBytes, type JsonObject } from "../dsse/statement.ts";
import {
  SLSA_PROVENANCE_V02,
  SLSA_PROVENANCE_V1,
  attestationInputs,
  entropyInputs,
  entropyOf,
  provenanceInputs,
} from "./inputs.ts";
import { DEFAULT_POLICY } from "./policy.ts";
import { deltaRisk, type ScoreInputs } from "./score.ts";

// ---- entropy -----------------------------------------------------------------------------------------

describe("entropyOf", () => {
  it("0 for nothing or one repeated byte, 1 for two equally likely bytes, 8 for all 256 once", () => {
    assert.equal(entropyOf(new Uint8Array(0)), 0);
    assert.equal(entropyOf(new Uint8Array(1000).fill(7)), 0);
    assert.equal(entropyOf(Uint8Array.from([0, 1, 0, 1, 1, 0])), 1);
    assert.equal(entropyOf(Uint8Array.from({ length: 256 }, (_, i) => i)), 8);
    assert.equal(entropyOf(Uint8Array.from([0, 0, 0, 1])), 0.811278); // −¾·log2 ¾ − ¼·log2 ¼
  });

  it("random bytes are near 8, text well below", () => {
    assert.ok(entropyOf(randomBytes(1 << 20)) > 7.99);
    const text = new TextEncoder().encode("the quick brown fox jumps over the lazy dog ".repeat(100));
    const h = entropyOf(text);
    assert.ok(h > 3 && h < 5, String(h));
  });

  it("several buffers count as one stream; the value is in [0, 8]", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (parts) => {
        const whole = Uint8Array.from(parts.flatMap((p) => [...p]));
        const h = entropyOf(parts);
        assert.equal(h, entropyOf(whole));
        assert.ok(h >= 0 && h <= 8);
      }),
    );
  });

  it("entropyInputs counts the ADD bytes and measures them", () => {
    const added = [Uint8Array.from([0, 1]), Uint8Array.from([2, 3])];
    assert.deepEqual(entropyInputs({ copiedBytes: 96, targetBytes: 100, added }), {
      copiedBytes: 96,
      addedBytes: 4,
      targetBytes: 100,
      addedEntropyBitsPerByte: 2,
    });
  });
});

// ---- real DSSE envelopes ---------------------------------------------------------------------------

const TARGET = "a".repeat(64);
const OTHER = "b".repeat(64);
const BUILDER = "https://github.com/actions/runner/github-hosted";

const vendorPair = generateKeyPair("ecdsa-p256");
const builderPair = generateKeyPair("ed25519");
const strangerPair = generateKeyPair("ecdsa-p384");
const vendorPub = loadPublicKey(vendorPair.publicPem, "vendor.pub");
const builderPub = loadPublicKey(builderPair.publicPem, "builder.pub");
const vendor = keySigner(loadPrivateKey(vendorPair.privatePem, "vendor.key"));
const builder = keySigner(loadPrivateKey(builderPair.privatePem, "builder.key"));
const stranger = keySigner(loadPrivateKey(strangerPair.privatePem, "stranger.key"));

function slsaV1(finishedOn = "2026-11-01T00:00:00Z"): JsonObject {
  return {
    buildDefinition: {
      buildType: "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
      externalParameters: {},
      resolvedDependencies: [],
    },
    runDetails: { builder: { id: BUILDER }, metadata: { finishedOn } },
  };
}

async function provenance(
  signers = [builder],
  digest = TARGET,
  predicateType = SLSA_PROVENANCE_V1,
  predicate: JsonObject = slsaV1(),
): Promise<Envelope> {
  return attest({
    subjects: [{ name: "app", digest: { sha256: digest } }],
    predicateType,
    predicate,
    signers,
  });
}

/** A statement signed by the vendor that is not provenance: the "valid vendor signature". */
async function vendorAttestation(digest = TARGET): Promise<Envelope> {
  return attest({
    subjects: [{ name: "app", digest: { sha256: digest } }],
    predicateType: "stellaops.delta.v1",
    predicate: { base_digest: `sha256:${OTHER}` },
    signers: [vendor],
  });
}

/** The payload changed after signing (the builder id rewritten), signature kept. */
function tamper(env: Envelope): Envelope {
  const statement = makeStatement([{ name: "app", digest: { sha256: TARGET } }], SLSA_PROVENANCE_V1, {
    ...slsaV1(),
    runDetails: { builder: { id: "https://evil.example/builder" } },
  });
  return { ...env, payload: Buffer.from(statementBytes(statement)).toString("base64") };
}

/** A v0.3 bundle of `env` with one transparency-log entry (structurally valid; not a real Rekor entry). */
function bundleWithTlog(env: Envelope, integratedTime: number): string {
  const bundle = envelopeToBundle(env) as unknown as { verificationMaterial: Record<string, unknown> };
  const b64 = (n: number): string => Buffer.alloc(32, n).toString("base64");
  bundle.verificationMaterial["tlogEntries"] = [
    {
      logIndex: "42",
      logId: { keyId: b64(1) },
      kindVersion: { kind: "dsse", version: "0.0.1" },
      integratedTime: String(integratedTime),
      inclusionProof: {
        logIndex: "42",
        rootHash: b64(2),
        treeSize: "100",
        hashes: [b64(3)],
        checkpoint: { envelope: "rekor.sigstore.dev - 1\n100\nAgIC\n\n— rekor sig\n" },
      },
      canonicalizedBody: Buffer.from("{}").toString("base64"),
    },
  ];
  return JSON.stringify(bundle);
}

describe("provenanceInputs", () => {
  it("verified SLSA v1 provenance about the target, signed by a trusted builder key", async () => {
    const env = await provenance();
    assert.deepEqual(
      provenanceInputs({
        provenanceEnvelopes: [envelopeToJson(env)],
        trustedKeys: [builderPub],
        subjectDigest: `sha256:${TARGET}`,
        builderLevels: { [BUILDER]: 3 },
      }),
      { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "absent" },
    );
  });

  it("SLSA v0.2 provenance verifies too; a builder without a configured level is noted", async () => {
    const env = await provenance([builder], TARGET, SLSA_PROVENANCE_V02, {
      builder: { id: "b" },
      buildType: "x",
    });
    const p = provenanceInputs({
      provenanceEnvelopes: [envelopeToJson(env)],
      trustedKeys: [builderPub],
      subjectDigest: TARGET,
    });
    assert.equal(p.slsaProvenance, "verified");
    assert.equal(p.slsaLevel, undefined);
    assert.deepEqual(p.notes, ["provenance[0]: builder b has no configured SLSA level"]);
  });

  it("a tampered envelope is present-unverified, with the reason", async () => {
    const env = tamper(await provenance());
    const p = provenanceInputs({
      provenanceEnvelopes: [envelopeToJson(env)],
      trustedKeys: [builderPub],
      subjectDigest: TARGET,
      names: ["prov.json"],
    });
    assert.deepEqual(p, {
      slsaProvenance: "present-unverified",
      dsseValid: false,
      transparencyLog: "absent",
      notes: [
        "prov.json: SLSA provenance present but unverified: no signature verifies with the trusted key(s)",
      ],
    });
  });

  it("a flipped signature byte, or a signer nobody trusts: present-unverified", async () => {
    const env = await provenance();
    const sig = Buffer.from(env.signatures[0]!.sig, "base64");
    sig[10] = (sig[10] ?? 0) ^ 1;
    const flipped = { ...env, signatures: [{ ...env.signatures[0]!, sig: sig.toString("base64") }] };
    const byStranger = await provenance([stranger]);
    for (const [doc, why] of [
      [flipped, "no signature verifies with the trusted key(s)"],
      [
        byStranger,
        `no signature names a trusted key (signature keyids: ${strangerPair.keyid}; trusted: ${builderPair.keyid})`,
      ],
    ] as const) {
      const p = provenanceInputs({
        provenanceEnvelopes: [envelopeToJson(doc)],
        trustedKeys: [builderPub],
        subjectDigest: TARGET,
      });
      assert.equal(p.slsaProvenance, "present-unverified");
      assert.equal(p.dsseValid, false);
      assert.deepEqual(p.notes, [`provenance[0]: SLSA provenance present but unverified: ${why}`]);
    }
  });

  it("provenance about another artifact, or of another type, or unreadable, does not count", async () => {
    const other = await provenance([builder], OTHER);
    const notSlsa = await provenance([builder], TARGET, "https://example.com/other/v1", {});
    const p = provenanceInputs({
      provenanceEnvelopes: [envelopeToJson(other), envelopeToJson(notSlsa), "{not json"],
      trustedKeys: [builderPub],
      subjectDigest: TARGET,
    });
    assert.equal(p.slsaProvenance, "absent");
    assert.equal(p.dsseValid, false);
    assert.equal(p.notes?.length, 3);
    assert.equal(
      p.notes?.[0],
      `provenance[0]: SLSA provenance does not name the target sha256:${TARGET}, ignored`,
    );
    assert.equal(
      p.notes?.[1],
      "provenance[1]: predicateType https://example.com/other/v1 is not SLSA provenance, ignored",
    );
    assert.match(p.notes?.[2] ?? "", /^provenance\[2\]: unreadable, ignored: provenance\[2\]: not JSON/);
  });

  it("a verified and a tampered document: the verified one wins", async () => {
    const good = await provenance();
    const p = provenanceInputs({
      provenanceEnvelopes: [envelopeToJson(tamper(good)), envelopeToJson(good)],
      trustedKeys: [builderPub],
      subjectDigest: TARGET,
      builderLevels: { [BUILDER]: 2 },
    });
    assert.equal(p.slsaProvenance, "verified");
    assert.equal(p.slsaLevel, 2);
  });

  it("a bundle with a transparency-log entry: verified provenance, tlog reported unverified and said why", async () => {
    const env = await provenance();
    const p = provenanceInputs({
      provenanceEnvelopes: [bundleWithTlog(env, 1_790_000_000)],
      trustedKeys: [builderPub],
      subjectDigest: TARGET,
      builderLevels: { [BUILDER]: 3 },
    });
    assert.equal(p.slsaProvenance, "verified");
    assert.equal(p.transparencyLog, "unverified");
    assert.deepEqual(p.notes, [
      "provenance[0]: 1 transparency-log entry not verified (no offline inclusion check is configured)",
    ]);
  });

  it("seed matrix: missing SLSA but a valid vendor signature → gap recorded, lower completeness and higher risk", async () => {
    const common = {
      trustedKeys: [builderPub, vendorPub],
      subjectDigest: TARGET,
      builderLevels: { [BUILDER]: 3 },
    };
    const vendorOnly = provenanceInputs({
      ...common,
      provenanceEnvelopes: [],
      attestationEnvelopes: [envelopeToJson(await vendorAttestation())],
    });
    assert.deepEqual(vendorOnly, {
      slsaProvenance: "absent",
      dsseValid: true,
      transparencyLog: "absent",
      notes: ["no SLSA provenance supplied"],
    });
    const withSlsa = provenanceInputs({
      ...common,
      provenanceEnvelopes: [envelopeToJson(await provenance())],
      attestationEnvelopes: [envelopeToJson(await vendorAttestation())],
    });
    assert.equal(withSlsa.slsaProvenance, "verified");

    const rest: Omit<ScoreInputs, "provenance"> = {
      entropy: { copiedBytes: 1000, addedBytes: 10, targetBytes: 1010, addedEntropyBitsPerByte: 5 },
      deps: { added: 0, removed: 0, changed: 0 },
      attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 1, keyAgeDays: 10 },
      functions: { added: 0, removed: 0, modified: 1, changed: [{ symbol: "f", change: "modified" }] },
    };
    const gap = deltaRisk({ ...rest, provenance: vendorOnly }, DEFAULT_POLICY);
    const full = deltaRisk({ ...rest, provenance: withSlsa }, DEFAULT_POLICY);
    const reasons = gap.breakdown.find((b) => b.factor === "provenance_completeness")?.reasons ?? [];
    assert.ok(reasons.includes("provenance gap: no SLSA provenance for the target (no SLSA credit)"));
    assert.ok(reasons.includes("note: no SLSA provenance supplied"));
    assert.ok(gap.provenanceCompleteness < full.provenanceCompleteness);
    assert.ok(gap.score > full.score);
  });

  it("a vendor attestation about another artifact does not make dsseValid", async () => {
    const p = provenanceInputs({
      provenanceEnvelopes: [],
      attestationEnvelopes: [envelopeToJson(await vendorAttestation(OTHER))],
      trustedKeys: [vendorPub],
      subjectDigest: TARGET,
    });
    assert.equal(p.dsseValid, false);
    assert.ok(
      p.notes?.includes(
        `attestation[0]: signed, but not a statement about the target sha256:${TARGET}, ignored`,
      ),
    );
  });
});

describe("attestationInputs", () => {
  const now = "2026-11-25T00:00:00Z";

  it("counts signatures and trusted ones; ages from the injected clock", async () => {
    const env = await provenance(
      [builder, stranger],
      TARGET,
      SLSA_PROVENANCE_V1,
      slsaV1("2026-11-15T00:00:00Z"),
    );
    const a = attestationInputs({
      envelopes: [envelopeToJson(env)],
      trustedKeys: [{ ...builderPub, createdAt: "2026-05-29T00:00:00Z" }],
      now,
    });
    assert.deepEqual(a, {
      signatures: 2,
      trustedSignatures: 1,
      newestSignatureAgeDays: 10,
      keyAgeDays: 180,
      expired: false,
    });
  });

  it("the same evidence is older under a later clock (and never reads the real one)", async () => {
    const env = await provenance();
    const at = (when: Date | string): number | undefined =>
      attestationInputs({ envelopes: [envelopeToJson(env)], trustedKeys: [builderPub], now: when })
        .newestSignatureAgeDays;
    assert.equal(at("2026-11-02T00:00:00Z"), 1);
    assert.equal(at("2027-11-01T00:00:00Z"), 365);
    assert.equal(at(new Date("2026-11-01T12:00:00Z")), 0.5);
  });

  it("signedAt from the caller wins; a bundle's integratedTime is used (and noted) otherwise", async () => {
    const env = await vendorAttestation();
    const given = attestationInputs({
      envelopes: [envelopeToJson(env)],
      trustedKeys: [vendorPub],
      now,
      signedAt: ["2026-11-24T00:00:00Z"],
    });
    assert.equal(given.newestSignatureAgeDays, 1);
    const noTime = attestationInputs({ envelopes: [envelopeToJson(env)], trustedKeys: [vendorPub], now });
    assert.equal(noTime.newestSignatureAgeDays, undefined);
    const tlog = attestationInputs({
      envelopes: [bundleWithTlog(env, Date.parse("2026-11-20T00:00:00Z") / 1000)],
      trustedKeys: [vendorPub],
      now,
    });
    assert.equal(tlog.newestSignatureAgeDays, 5);
    assert.deepEqual(tlog.notes, [
      "attestation[0]: signing time from an unverified transparency-log integratedTime",
    ]);
  });

  it("expired when every key that verified has expired; untrusted and foreign envelopes noted", async () => {
    const env = await vendorAttestation();
    const expired = attestationInputs({
      envelopes: [envelopeToJson(env)],
      trustedKeys: [{ ...vendorPub, expiresAt: "2026-11-01T00:00:00Z" }],
      now,
    });
    assert.equal(expired.expired, true);
    const other = await vendorAttestation(OTHER);
    const tampered = await signEnvelope(IN_TOTO_PAYLOAD_TYPE, new TextEncoder().encode("{}"), [stranger]);
    const a = attestationInputs({
      envelopes: [envelopeToJson(other), envelopeToJson(tampered)],
      trustedKeys: [vendorPub],
      now,
      subjectDigest: `sha256:${TARGET}`,
    });
    assert.deepEqual(a, {
      signatures: 0,
      trustedSignatures: 0,
      notes: [
        `attestation[0]: not a statement about the target sha256:${TARGET}, not counted`,
        `attestation[1]: not a statement about the target sha256:${TARGET}, not counted`,
      ],
    });
  });

  it("signatures by keys nobody trusts count, but not as trusted", async () => {
    const env = await provenance([stranger]);
    assert.deepEqual(attestationInputs({ envelopes: [envelopeToJson(env)], trustedKeys: [vendorPub], now }), {
      signatures: 1,
      trustedSignatures: 0,
      notes: [
        `attestation[0]: no signature names a trusted key (signature keyids: ${strangerPair.keyid}; trusted: ${vendorPair.keyid})`,
      ],
    });
  });

  it("refuses a clock it cannot read", () => {
    assert.throws(() => attestationInputs({ envelopes: [], trustedKeys: [], now: "yesterday" }), {
      code: "RISK_INPUTS_INVALID",
      message: 'attestationInputs: now: not an ISO 8601 time: "yesterday"',
    });
  });
});

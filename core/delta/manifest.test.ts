/**
 * The delta manifest on real files: a small edit in a large file is a tiny ADD; a zip repacked by
 * `zip` with the same payload is mostly COPY; a missing SLSA provenance with a valid vendor signature
 * is a recorded gap and scores worse than verified provenance; the same inputs give the same bytes;
 * and every field verify relies on is cross-checked against delta.bin.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { run, workDir } from "../artifacts/test-packages.ts";
import { canonicalJson } from "../canonical-json.ts";
import { attest } from "../dsse/attest.ts";
import { envelopeToJson } from "../dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey } from "../dsse/keys.ts";
import { keySigner } from "../dsse/sign.ts";
import type { JsonObject } from "../dsse/statement.ts";
import { SLSA_PROVENANCE_V1 } from "../risk/inputs.ts";
import { DEFAULT_POLICY } from "../risk/policy.ts";
import { deltaRisk } from "../risk/score.ts";
import { parseDelta } from "./format.ts";
import { openDeltaInput } from "./inputs.ts";
import {
  changedTargetBytes,
  checkAttestationFiles,
  checkManifestAgainstDelta,
  computeDelta,
  DELTA_PREDICATE_TYPE,
  firstDifference,
  ManifestError,
  manifestBytes,
  parseManifest,
  sha256Digest,
  summaryOf,
  verifyStatementEnvelope,
} from "./manifest.ts";
import { createDelta } from "./create.ts";
import { prngBytes } from "./test-helpers.ts";

let dir: string;
before(() => {
  dir = workDir("manifest");
});

const LARGE = 4 << 20;

/** A 4 MiB file and the same with 12 bytes changed at 2 MiB + 1234. */
function largePair(): [string, string] {
  const a = Buffer.from(prngBytes(LARGE, 7));
  const b = Buffer.from(a);
  b.write("small edit!!", (2 << 20) + 1234, "latin1");
  const pa = join(dir, "large-a.bin");
  const pb = join(dir, "large-b.bin");
  writeFileSync(pa, a);
  writeFileSync(pb, b);
  return [pa, pb];
}

async function compute(a: string, b: string, opts: Parameters<typeof computeDelta>[2] = {}) {
  return computeDelta(await openDeltaInput(a), await openDeltaInput(b), { params: { level: 3 }, ...opts });
}

describe("computeDelta on real files", () => {
  it("a small edit in a large file: the ADD is tiny, everything else is COPY", async () => {
    const [a, b] = largePair();
    const { manifest: m, bin } = await compute(a, b);
    assert.equal(m.artifact_type, "file");
    assert.equal(m.target_size, LARGE);
    assert.ok(m.ops.changedBytes <= 12, `changedBytes ${m.ops.changedBytes}`);
    assert.ok(m.ops.addedBytes < 512, `addedBytes ${m.ops.addedBytes}`);
    assert.ok(m.ops.copiedBytes / m.target_size > 0.9998, JSON.stringify(m.ops));
    assert.ok(bin.length < 4096, `delta.bin ${bin.length} bytes`);
    // The changed chunk(s) cover the edit.
    const at = (2 << 20) + 1234;
    assert.ok(m.changed_chunks.length >= 1 && m.changed_chunks.length <= 2);
    assert.ok(m.changed_chunks.some((c) => c.offset <= at && at + 12 <= c.offset + c.length));
    // Two plain files of different names: one entry removed, one added.
    assert.deepEqual([m.entries_delta.modified, m.entries_delta.added, m.entries_delta.removed], [0, 1, 1]);
    // The entropy inputs count exactly the changed bytes.
    assert.equal(m.score_inputs.entropy.addedBytes, m.ops.changedBytes);
  });

  it("same inputs → byte-identical manifest and delta.bin; no clock unless injected", async () => {
    const [a, b] = largePair();
    const one = await compute(a, b);
    const two = await compute(a, b);
    assert.deepEqual(Buffer.from(manifestBytes(one.manifest)), Buffer.from(manifestBytes(two.manifest)));
    assert.deepEqual(Buffer.from(one.bin), Buffer.from(two.bin));
    assert.equal(one.manifest.created, undefined);
    const dated = await compute(a, b, { created: "2026-11-25T00:00:00.000Z" });
    assert.equal(dated.manifest.created, "2026-11-25T00:00:00.000Z");
  });

  it("a zip repacked by `zip` with the same payload (other order, timestamps) is mostly COPY", async () => {
    const src = join(dir, "zsrc");
    mkdirSync(join(src, "lib"), { recursive: true });
    for (let i = 0; i < 8; i++) writeFileSync(join(src, "lib", `part${i}.bin`), prngBytes(64 << 10, 100 + i));
    writeFileSync(join(src, "README"), "read me\n".repeat(2000));
    const names = run("find", [".", "-type", "f"], { cwd: src }).trim().split("\n").sort();
    const a = join(dir, "a.zip");
    const b = join(dir, "b.zip");
    execFileSync("zip", ["-q", "-6", a, "-@"], { cwd: src, input: names.join("\n") });
    for (const n of names) utimesSync(join(src, n), 1_700_000_000, 1_700_000_000);
    execFileSync("zip", ["-q", "-6", "-X", b, "-@"], { cwd: src, input: [...names].reverse().join("\n") });
    const { manifest: m } = await compute(a, b);
    assert.equal(m.artifact_type, "zip");
    assert.notEqual(m.base_digest, m.target_digest);
    assert.ok(m.ops.copiedBytes / m.target_size > 0.8, JSON.stringify(m.ops));
    assert.deepEqual(
      [m.entries_delta.added, m.entries_delta.removed, m.entries_delta.modified],
      [0, 0, 0],
      "same payload: no entry changed",
    );
  });
});

describe("score inputs from signed evidence", () => {
  const vendorPair = generateKeyPair("ecdsa-p256");
  const builderPair = generateKeyPair("ed25519");
  const vendor = keySigner(loadPrivateKey(vendorPair.privatePem, "vendor.key"));
  const builder = keySigner(loadPrivateKey(builderPair.privatePem, "builder.key"));
  const trusted = [
    loadPublicKey(vendorPair.publicPem, "vendor.pub"),
    loadPublicKey(builderPair.publicPem, "builder.pub"),
  ];
  const slsa = (id: string): JsonObject => ({
    buildDefinition: {
      buildType: "https://example.com/build/v1",
      externalParameters: {},
      resolvedDependencies: [],
    },
    runDetails: { builder: { id }, metadata: { finishedOn: "2026-11-20T00:00:00Z" } },
  });

  it("missing SLSA provenance with a valid vendor signature: gap recorded, higher score than verified provenance", async () => {
    const [a, b] = largePair();
    const target = await openDeltaInput(b);
    const subjects = [{ name: "large-b.bin", digest: { sha256: target.digest.slice(7) } }];
    const vendorEnv = await attest({
      subjects,
      predicateType: "https://example.com/vendor-signature/v1",
      predicate: { ok: true },
      signers: [vendor],
    });
    const provEnv = await attest({
      subjects,
      predicateType: SLSA_PROVENANCE_V1,
      predicate: slsa("https://builder.example/ci"),
      signers: [builder],
    });
    const doc = (name: string, env: Parameters<typeof envelopeToJson>[0]) => ({
      name,
      bytes: Buffer.from(envelopeToJson(env)),
    });
    const created = "2026-11-25T00:00:00Z";

    const gap = await compute(a, b, {
      attestations: [doc("vendor.json", vendorEnv)],
      trustedKeys: trusted,
      created,
    });
    const p = gap.manifest.score_inputs.provenance;
    assert.equal(p.slsaProvenance, "absent");
    assert.equal(p.dsseValid, true, "the vendor signature verifies");
    assert.equal(gap.manifest.score_inputs.attestation.trustedSignatures, 1);
    const gapRisk = deltaRisk(gap.manifest.score_inputs, DEFAULT_POLICY);
    const prov = gapRisk.breakdown.find((f) => f.factor === "provenance_completeness");
    assert.ok(
      prov?.reasons.some((r) => r.startsWith("provenance gap")),
      JSON.stringify(prov),
    );
    assert.equal(gapRisk.hints.provenanceBelowMin, true);
    assert.equal(gap.manifest.attestations.length, 1);
    assert.equal(gap.manifest.attestations[0]?.role, "attestation");
    assert.equal(gap.manifest.attestations[0]?.predicate_type, "https://example.com/vendor-signature/v1");

    const full = await compute(a, b, {
      provenance: [doc("prov.json", provEnv)],
      attestations: [doc("vendor.json", vendorEnv)],
      trustedKeys: trusted,
      builderLevels: { "https://builder.example/ci": 3 },
      created,
    });
    assert.equal(full.manifest.score_inputs.provenance.slsaProvenance, "verified");
    assert.equal(full.manifest.score_inputs.provenance.slsaLevel, 3);
    const fullRisk = deltaRisk(full.manifest.score_inputs, DEFAULT_POLICY);
    assert.ok(gapRisk.score > fullRisk.score, `${gapRisk.score} > ${fullRisk.score}`);
    assert.equal(full.manifest.attestations.length, 2);
    assert.deepEqual(
      full.manifest.attestations.map((r) => r.file).sort(),
      [...full.attestationFiles.keys()].sort(),
    );

    // Without an injected clock, ages are unknown rather than taken from the wall clock.
    const undated = await compute(a, b, {
      attestations: [doc("vendor.json", vendorEnv)],
      trustedKeys: trusted,
    });
    assert.equal(undated.manifest.score_inputs.attestation.newestSignatureAgeDays, undefined);
    assert.ok(undated.manifest.score_inputs.attestation.notes?.some((n) => n.includes("ages unknown")));

    // Evidence nobody trusts counts for nothing.
    const untrusted = await compute(a, b, { attestations: [doc("vendor.json", vendorEnv)], created });
    assert.equal(untrusted.manifest.score_inputs.provenance.dsseValid, false);
  });
});

describe("parseManifest, checkManifestAgainstDelta, verifyStatementEnvelope", () => {
  it("accepts what computeDelta wrote and names the field of every mismatch", async () => {
    const [a, b] = largePair();
    const { manifest, bin } = await compute(a, b);
    const bytes = manifestBytes(manifest);
    const m = parseManifest(bytes, "delta-manifest.json");
    const parsed = parseDelta(bin, "delta.bin");
    checkManifestAgainstDelta(m, bin, parsed, { manifest: "delta-manifest.json", delta: "delta.bin" });
    // The summary recomputed from delta.bin is the engine's own.
    const [ab, bb] = [await (await openDeltaInput(a)).bytes(), await (await openDeltaInput(b)).bytes()];
    const { opCount, chunkTableEntries, ...recomputed } = summaryOf(parsed);
    assert.deepEqual(recomputed, createDelta(ab, bb, { level: 3 }).summary);
    assert.deepEqual([opCount, chunkTableEntries], [parsed.ops.length, parsed.chunks.length]);
    assert.equal(
      changedTargetBytes(parsed, await (await openDeltaInput(b)).bytes()).length,
      m.ops.changedBytes,
    );

    const expectMismatch = (edit: (x: typeof m) => void, field: string): void => {
      const copy = JSON.parse(JSON.stringify(m)) as typeof m;
      edit(copy);
      assert.throws(
        () => {
          checkManifestAgainstDelta(copy, bin, parsed, {
            manifest: "delta-manifest.json",
            delta: "delta.bin",
          });
        },
        (err: unknown) =>
          err instanceof ManifestError && err.code === "MANIFEST_MISMATCH" && err.field === field,
        field,
      );
    };
    expectMismatch((x) => (x.ops.addedBytes += 1), "ops.addedBytes");
    expectMismatch((x) => (x.ops.copyRangeOps = 0), "ops.copyRangeOps");
    expectMismatch((x) => (x.target_digest = x.base_digest), "target_digest");
    expectMismatch((x) => (x.base_size += 1), "base_size");
    expectMismatch((x) => (x.delta.digest = x.base_digest), "delta.digest");
    expectMismatch((x) => (x.parameters.cdc.avgSize = 4096), "parameters.cdc.avgSize");
    expectMismatch((x) => (x.parameters.level = 19), "parameters.level");
  });

  it("refuses non-JSON, non-canonical and incomplete manifests, naming the field", async () => {
    const [a, b] = largePair();
    const { manifest } = await compute(a, b);
    const bad = (text: string, field: string): void => {
      assert.throws(
        () => parseManifest(Buffer.from(text), "m.json"),
        (err: unknown) =>
          err instanceof ManifestError && err.code === "MANIFEST_MALFORMED" && err.field === field,
        `${field}: ${text.slice(0, 40)}`,
      );
    };
    bad("{", "(document)");
    bad("[]", "(document)");
    bad(JSON.stringify(manifest, null, 2), "(document)");
    bad(`${canonicalJson({ ...manifest, schema: "x" })}\n`, "schema");
    bad(`${canonicalJson({ ...manifest, target_digest: "sha256:xyz" })}\n`, "target_digest");
    const noDelta: Record<string, unknown> = { ...manifest };
    delete noDelta.delta;
    bad(`${canonicalJson(noDelta)}\n`, "delta");
    bad(
      `${canonicalJson({ ...manifest, score_inputs: { ...manifest.score_inputs, extra: 1 } })}\n`,
      "score_inputs",
    );
    bad(
      `${canonicalJson({ ...manifest, attestations: [{ file: "../../etc/passwd", digest: manifest.base_digest }] })}\n`,
      "attestations[0]",
    );
  });

  it("attestation files must exist and match their digests", () => {
    const m = {
      attestations: [
        {
          file: `attestations/${"a".repeat(64)}.json`,
          role: "attestation",
          digest: sha256Digest(Buffer.from("x")),
        },
      ],
    } as unknown as Parameters<typeof checkAttestationFiles>[0];
    checkAttestationFiles(m, () => Buffer.from("x"), "m.json");
    assert.throws(() => {
      checkAttestationFiles(m, () => undefined, "m.json");
    }, /attestations\[0\]\.file: .* is missing/);
    assert.throws(() => {
      checkAttestationFiles(m, () => Buffer.from("y"), "m.json");
    }, /attestations\[0\]\.digest/);
  });

  it("the envelope must verify, be a delta statement about the target and carry this very manifest", async () => {
    const [a, b] = largePair();
    const { manifest } = await compute(a, b);
    const pair = generateKeyPair("ed25519");
    const other = generateKeyPair("ecdsa-p256");
    const key = loadPublicKey(pair.publicPem, "k.pub");
    const signer = keySigner(loadPrivateKey(pair.privatePem, "k.key"));
    const subjects = [{ name: "t", digest: { sha256: manifest.target_digest.slice(7) } }];
    const env = Buffer.from(
      envelopeToJson(
        await attest({
          subjects,
          predicateType: DELTA_PREDICATE_TYPE,
          predicate: manifest as unknown as JsonObject,
          signers: [signer],
        }),
      ),
    );
    const want = {
      predicateType: DELTA_PREDICATE_TYPE,
      subjectDigest: manifest.target_digest,
      predicate: manifest,
    };
    assert.deepEqual(verifyStatementEnvelope(env, [key], want, "e.json").verifiedKeyids, [pair.keyid]);
    const fails = (bytes: Uint8Array, keys: (typeof key)[], w: typeof want, field: RegExp): void => {
      assert.throws(
        () => verifyStatementEnvelope(bytes, keys, w, "e.json"),
        (err: unknown) =>
          err instanceof ManifestError && err.code === "MANIFEST_SIGNATURE" && field.test(err.field),
        String(field),
      );
    };
    fails(env, [loadPublicKey(other.publicPem, "o.pub")], want, /^signatures$/);
    fails(env, [key], { ...want, predicateType: "x" }, /^predicateType$/);
    fails(env, [key], { ...want, subjectDigest: manifest.base_digest }, /^subject$/);
    fails(env, [key], { ...want, predicate: { ...manifest, base_size: 1 } }, /^predicate\.base_size$/);
    fails(Buffer.from("{"), [key], want, /^\(document\)$/);
    // A flipped byte in the signature.
    const e = JSON.parse(env.toString()) as { signatures: { sig: string }[] };
    const sig = e.signatures[0]?.sig ?? "";
    (e.signatures[0] as { sig: string }).sig = (sig[5] === "A" ? "B" : "A") + sig.slice(1);
    fails(Buffer.from(JSON.stringify(e)), [key], want, /^signatures$/);
  });

  it("firstDifference names the first differing path", () => {
    assert.equal(firstDifference({ a: 1, b: [1, 2] }, { a: 1, b: [1, 2] }), undefined);
    assert.equal(firstDifference({ a: 1, b: [1, 2] }, { a: 1, b: [1, 3] }), "b[1]");
    assert.equal(firstDifference({ a: { c: 1 } }, { a: {} }), "a.c");
    assert.equal(firstDifference(1, 2), "(document)");
  });
});

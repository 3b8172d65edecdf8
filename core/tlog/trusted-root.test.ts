import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, test } from "node:test";

import { isStellaError } from "../errors.ts";
import { TRUSTED_ROOT_MEDIA_TYPE, makeTrustedRoot, parseTrustedRoot, rekorLogId } from "./trusted-root.ts";

// Test vectors from rekor-tiles v2.4.2 pkg/note/note_test.go TestKeyHash (origin "testkey"; its
// tests/testdata/pki keys), the log IDs Rekor v2 puts in entries and whose first 4 bytes hint its checkpoints.
const ED25519_PRIV = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGuZ8UWTFmXi/26ZgF4VYL8HfLSuW12TN5XMFQRt1Loc
-----END PRIVATE KEY-----
`;
const ECDSA_PRIV = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIOMZNOBbRU3CHBjZoc13R8HYNUoqsvce5UlOmRzlOZqUoAoGCCqGSM49
AwEHoUQDQgAEeLw7gX40qy1z7JUhGMAaaDITbV7p2D+C5G9xPEsy/PVAo9H0mgS4
NYzpGirkXxBht+IvvL19WR1X9ANXha5ldQ==
-----END EC PRIVATE KEY-----
`;

function pubPem(privPem: string): string {
  return createPublicKey(privPem).export({ type: "spki", format: "pem" }).toString();
}

function code(fn: () => unknown, expected: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isStellaError(err), String(err));
    assert.equal(err.code, expected, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

describe("rekorLogId", () => {
  test("Ed25519: SHA-256(origin \\n 0x01 key), as rekor-tiles computes it", () => {
    const id = rekorLogId("testkey", createPublicKey(ED25519_PRIV));
    assert.equal(id.toString("hex"), "e4de82e34c8c270d87612a3d6a1e297e2cd0ed9cb89ea7aeec8ce4d0b54e6775");
    assert.equal(id.readUInt32BE(0), 3839787747);
  });

  test("ECDSA: SHA-256 of the DER SubjectPublicKeyInfo, whatever the origin", () => {
    const key = createPublicKey(ECDSA_PRIV);
    const id = rekorLogId("testkey", key);
    assert.equal(id.toString("hex"), "8f92d720f56c219e34895a76a636a3353ddbf7813f9fa317e19982eafa945328");
    assert.deepEqual(rekorLogId("elsewhere", key), id);
  });

  test("the origin is part of an Ed25519 log's ID", () => {
    const key = createPublicKey(ED25519_PRIV);
    assert.notDeepEqual(rekorLogId("a.example", key), rekorLogId("b.example", key));
  });
});

describe("makeTrustedRoot / parseTrustedRoot", () => {
  const tlog = {
    baseUrl: "https://log2025-1.rekor.example.dev",
    origin: "log2025-1.rekor.example.dev",
    publicKeyPem: pubPem(ED25519_PRIV),
  };

  test("a TrustedRoot JSON that round-trips through text", () => {
    const root = makeTrustedRoot({ tlogs: [{ ...tlog, validFrom: new Date("2026-01-01T00:00:00Z") }] });
    assert.equal(root["mediaType"], TRUSTED_ROOT_MEDIA_TYPE);
    const [t] = root["tlogs"] as Record<string, unknown>[];
    assert.ok(t !== undefined);
    assert.equal(t["baseUrl"], tlog.baseUrl);
    assert.deepEqual(t["logId"], {
      keyId: rekorLogId(tlog.origin, createPublicKey(ED25519_PRIV)).toString("base64"),
    });
    assert.deepEqual(t["publicKey"], {
      rawBytes: createPublicKey(ED25519_PRIV).export({ type: "spki", format: "der" }).toString("base64"),
      keyDetails: "PKIX_ED25519",
      validFor: { start: "2026-01-01T00:00:00.000Z" },
    });
    assert.deepEqual(parseTrustedRoot(JSON.stringify(root), "root.json"), root);
  });

  test("ECDSA P-256 log keys are accepted; other curves are not", () => {
    const root = makeTrustedRoot({ tlogs: [{ ...tlog, publicKeyPem: pubPem(ECDSA_PRIV) }] });
    const [t] = root["tlogs"] as Record<string, unknown>[];
    assert.equal((t?.["publicKey"] as Record<string, unknown>)["keyDetails"], "PKIX_ECDSA_P256_SHA_256");
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey;
    code(
      () =>
        makeTrustedRoot({
          tlogs: [{ ...tlog, publicKeyPem: p384.export({ type: "spki", format: "pem" }).toString() }],
        }),
      "TLOG_UNSUPPORTED_KEY",
      /ecdsa-p384/,
    );
  });

  test("refuses a baseUrl that does not contain the origin (verifiers would match neither)", () => {
    code(
      () => makeTrustedRoot({ tlogs: [{ ...tlog, baseUrl: "https://other.example" }] }),
      "TLOG_TRUSTED_ROOT",
      /tlogs\[0\].*other\.example.*log2025-1/,
    );
    code(() => makeTrustedRoot({ tlogs: [{ ...tlog, origin: "a b" }] }), "TLOG_TRUSTED_ROOT", /origin/);
    code(() => makeTrustedRoot({ tlogs: [] }), "TLOG_TRUSTED_ROOT", /no tlogs/);
    code(() => makeTrustedRoot({ tlogs: [{ ...tlog, publicKeyPem: "nope" }] }), "TLOG_TRUSTED_ROOT", /PEM/);
  });

  test("parseTrustedRoot names the file and what is wrong", () => {
    code(() => parseTrustedRoot("{", "root.json"), "TLOG_TRUSTED_ROOT", /root\.json.*not JSON/);
    code(
      () => parseTrustedRoot("[]", "root.json"),
      "TLOG_TRUSTED_ROOT",
      /root\.json: not a sigstore trusted root/,
    );
    code(
      () => parseTrustedRoot('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}', "root.json"),
      "TLOG_TRUSTED_ROOT",
      /mediaType/,
    );
    code(
      () => parseTrustedRoot(JSON.stringify({ mediaType: TRUSTED_ROOT_MEDIA_TYPE, tlogs: [] }), "root.json"),
      "TLOG_TRUSTED_ROOT",
      /tlogs/,
    );
    const bad = makeTrustedRoot({ tlogs: [tlog] });
    const [t] = bad["tlogs"] as Record<string, unknown>[];
    (t?.["publicKey"] as Record<string, unknown>)["rawBytes"] = "AAAA";
    code(
      () => parseTrustedRoot(JSON.stringify(bad), "root.json"),
      "TLOG_TRUSTED_ROOT",
      /root\.json: invalid/,
    );
    code(() => parseTrustedRoot(" ".repeat(1024 * 1024 + 1), "big.json"), "TLOG_TRUSTED_ROOT", /big\.json/);
  });
});

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { isStellaError } from "../errors.ts";
import { attest, subjectFromFile } from "./attest.ts";
import { payloadBytes } from "./envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey } from "./keys.ts";
import { keySigner } from "./sign.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement } from "./statement.ts";
import { tempDir } from "./testdata/oracles.ts";
import { verifyEnvelope } from "./verify.ts";

describe("subjectFromFile", () => {
  it("is the file's SHA-256 (FIPS 180-2 'abc' vector), named by basename unless told", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, "abc.bin");
      writeFileSync(path, "abc");
      const sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
      assert.deepEqual(await subjectFromFile(path), { name: "abc.bin", digest: { sha256: sha } });
      assert.deepEqual(await subjectFromFile(path, "bin/abc"), { name: "bin/abc", digest: { sha256: sha } });
      await assert.rejects(subjectFromFile(join(dir, "missing")), (err) => isStellaError(err, "ATTEST_IO"));
    } finally {
      cleanup();
    }
  });
});

describe("attest", () => {
  it("signs an in-toto v1 Statement about the subjects, which verifies and parses back", async () => {
    const pair = generateKeyPair("ecdsa-p384");
    const env = await attest({
      subjects: [
        { name: "b", digest: { sha256: "b".repeat(64) } },
        { name: "a", digest: { sha256: "a".repeat(64) } },
      ],
      predicateType: "https://stella.example/BinaryDiff/v1",
      predicate: { changed: ["f"] },
      signers: [keySigner(loadPrivateKey(pair.privatePem, "k.key"))],
    });
    assert.equal(env.payloadType, IN_TOTO_PAYLOAD_TYPE);
    const result = verifyEnvelope(env, [loadPublicKey(pair.publicPem, "k.pub")], {
      payloadTypes: [IN_TOTO_PAYLOAD_TYPE],
    });
    const stmt = parseStatement(result.payload, "env");
    assert.equal(stmt._type, "https://in-toto.io/Statement/v1");
    assert.deepEqual(
      stmt.subject.map((s) => s.name),
      ["a", "b"],
    );
    assert.equal(stmt.predicateType, "https://stella.example/BinaryDiff/v1");
    assert.deepEqual(stmt.predicate, { changed: ["f"] });
  });

  it("takes another payloadType if asked", async () => {
    const pair = generateKeyPair("ed25519");
    const env = await attest({
      subjects: [{ name: "a", digest: { sha256: "a".repeat(64) } }],
      predicateType: "t",
      predicate: {},
      signers: [keySigner(loadPrivateKey(pair.privatePem, "k.key"))],
      payloadType: "application/vnd.example+json",
    });
    assert.equal(env.payloadType, "application/vnd.example+json");
    assert.match(
      new TextDecoder().decode(payloadBytes(env)),
      /^\{"_type":"https:\/\/in-toto\.io\/Statement\/v1"/,
    );
  });
});

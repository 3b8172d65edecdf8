import assert from "node:assert/strict";
import { test } from "node:test";

import { attest } from "../../core/dsse/attest.ts";
import type { Envelope } from "../../core/dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import { buildFuncProof, FUNCPROOF_PREDICATE_TYPE, type FuncProof } from "../../core/funcproof/funcproof.ts";
import { summarize } from "../../core/funcproof/summary.ts";
import { FileByteSource } from "../../core/io/byte-source.ts";
import { verifyFuncProofResource, type FuncProofSpecView } from "./funcproof-verify.ts";

const FIXTURE = new URL("../../core/testdata/out/prog-v1", import.meta.url).pathname;

function proof(): FuncProof {
  const src = new FileByteSource(FIXTURE);
  try {
    return buildFuncProof(src, { name: "prog-v1", tool: "test" });
  } finally {
    src.close();
  }
}

const trustedPair = generateKeyPair("ecdsa-p256");
const otherPair = generateKeyPair("ed25519");
const trusted = [loadPublicKey(trustedPair.publicPem, "trusted.pub")];

async function signed(
  p: FuncProof,
  pem = trustedPair.privatePem,
  predicateType = FUNCPROOF_PREDICATE_TYPE,
): Promise<Envelope> {
  return attest({
    subjects: [{ name: p.file.name, digest: { sha256: p.file.sha256 } }],
    predicateType,
    predicate: p as unknown as Record<string, unknown>,
    signers: [keySigner(loadPrivateKey(pem, "key.pem"))],
  });
}

async function spec(p: FuncProof, env?: Envelope): Promise<FuncProofSpecView> {
  return { ...summarize(p), envelope: env ?? (await signed(p)) };
}

test("a FuncProof signed by a trusted key whose spec matches is Verified", async () => {
  const p = proof();
  const d = verifyFuncProofResource(p.buildId!, await spec(p), trusted);
  assert.equal(d.status, "True");
  assert.equal(d.reason, "Verified");
  assert.deepEqual(d.verifiedKeyIds, [trustedPair.keyid]);
});

test("each failure has its own reason", async () => {
  const p = proof();
  const name = p.buildId!;
  const good = await spec(p);
  const env = good.envelope as Envelope;

  const tamperedPayload = Buffer.from(env.payload, "base64")
    .toString()
    .replace('"arch":"x86_64"', '"arch":"x86_65"');
  const tampered = {
    ...good,
    envelope: { ...env, payload: Buffer.from(tamperedPayload).toString("base64") },
  };
  assert.equal(verifyFuncProofResource(name, tampered, trusted).reason, "SignatureInvalid");

  const unknown = await spec(p, await signed(p, otherPair.privatePem));
  assert.equal(verifyFuncProofResource(name, unknown, trusted).reason, "UnknownKey");

  const mismatch = verifyFuncProofResource(name, { ...good, functionCount: good.functionCount + 1 }, trusted);
  assert.equal(mismatch.reason, "SpecMismatch");
  assert.match(mismatch.message, /functionCount/);

  const section = {
    ...good,
    sections: good.sections.map((s) => (s.name === ".text" ? { ...s, sha256: "0".repeat(64) } : s)),
  };
  assert.match(verifyFuncProofResource(name, section, trusted).message, /sections\[\.text\]/);

  const malformed = { ...good, envelope: { payloadType: "x", payload: "%%%", signatures: [] } };
  assert.equal(verifyFuncProofResource(name, malformed, trusted).reason, "MalformedEnvelope");

  const wrongType = await spec(p, await signed(p, trustedPair.privatePem, "stellaops.binarydiff.v1"));
  assert.equal(verifyFuncProofResource(name, wrongType, trusted).reason, "WrongPredicateType");

  assert.equal(verifyFuncProofResource("other", good, trusted).reason, "NameMismatch");
  assert.equal(verifyFuncProofResource(name, good, []).status, "Unknown");
  const ref = { ...summarize(p), envelopeRef: { digest: `sha256:${"a".repeat(64)}` } };
  assert.equal(verifyFuncProofResource(name, ref, trusted).reason, "EnvelopeNotInline");
});

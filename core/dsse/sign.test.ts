// Signatures checked by verifiers that share no code with ours: OpenSSL on the command line, and the
// Python securesystemslib DSSE implementation (core/dsse/testdata/verify_dsse.py); and the reverse.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { dsse as sigstoreDsse } from "@sigstore/core";

import { isStellaError } from "../errors.ts";
import { attest } from "./attest.ts";
import { decodeBase64, envelopeToJson, parseEnvelope, type Envelope } from "./envelope.ts";
import {
  KEY_TYPES,
  generateKeyPair,
  loadPrivateKey,
  loadPublicKey,
  type GeneratedKeyPair,
  type KeyType,
} from "./keys.ts";
import { keySigner, signEnvelope, type Signer } from "./sign.ts";
import { IN_TOTO_PAYLOAD_TYPE } from "./statement.ts";
import { opensslVerify, pythonDsse, tempDir, venvPython } from "./testdata/oracles.ts";
import { verifyEnvelope } from "./verify.ts";

const SUBJECTS = [
  { name: "libfoo.so", digest: { sha256: "b".repeat(64) } },
  { name: "app", digest: { sha256: "a".repeat(64) } },
];

/** The PAE computed by sigstore-js, not by us: OpenSSL then checks our signature over those bytes. */
function independentPae(env: Envelope): Uint8Array {
  return sigstoreDsse.preAuthEncoding(env.payloadType, Buffer.from(env.payload, "base64"));
}

function sigBytes(env: Envelope, i = 0): Uint8Array {
  const sig = env.signatures[i]?.sig;
  assert.ok(sig !== undefined);
  const bytes = decodeBase64(sig);
  assert.ok(bytes !== undefined);
  return bytes;
}

describe("sign → independent verifiers", () => {
  let dir = "";
  let cleanup = (): void => undefined;
  const pairs = new Map<KeyType, GeneratedKeyPair>();
  before(() => {
    ({ dir, cleanup } = tempDir());
    for (const type of KEY_TYPES) {
      const pair = generateKeyPair(type);
      pairs.set(type, pair);
      writeFileSync(join(dir, `${type}.key`), pair.privatePem);
      writeFileSync(join(dir, `${type}.pub`), pair.publicPem);
    }
  });
  after(() => {
    cleanup();
  });

  it("the securesystemslib venv is there (else: this failure says how to make it)", () => {
    assert.ok(venvPython());
  });

  async function signWith(type: KeyType): Promise<Envelope> {
    const pair = pairs.get(type)!;
    return attest({
      subjects: SUBJECTS,
      predicateType: "https://stella.example/FuncProof/v1",
      predicate: { tool: "stella", nested: { b: [1, 2], a: "é" } },
      signers: [keySigner(loadPrivateKey(pair.privatePem, `${type}.key`))],
    });
  }

  for (const type of KEY_TYPES) {
    describe(type, () => {
      it("OpenSSL verifies the signature over the PAE bytes (and refuses a one-byte change)", async () => {
        const pair = pairs.get(type)!;
        const env = await signWith(type);
        assert.equal(env.signatures[0]?.keyid, pair.keyid);
        const data = independentPae(env);
        const ok = await opensslVerify(dir, type, pair.publicPem, data, sigBytes(env));
        assert.equal(ok.code, 0, `openssl refused: ${ok.stdout}${ok.stderr}`);
        assert.match(ok.stdout, /Verified OK|Signature Verified Successfully/);

        const tampered = Uint8Array.from(data);
        tampered[tampered.length - 2] = (tampered[tampered.length - 2] ?? 0) ^ 0x01;
        const bad = await opensslVerify(dir, type, pair.publicPem, tampered, sigBytes(env));
        assert.notEqual(bad.code, 0, "openssl accepted a tampered PAE: the oracle is not checking anything");
      });

      it("securesystemslib verifies the envelope (and refuses it with another key)", async () => {
        const pair = pairs.get(type)!;
        const envPath = join(dir, `${type}.env.json`);
        writeFileSync(envPath, envelopeToJson(await signWith(type)));
        const r = await pythonDsse(["verify", envPath, join(dir, `${type}.pub`)]);
        assert.equal(r.code, 0, `securesystemslib refused: ${r.stdout}${r.stderr}`);
        assert.deepEqual(JSON.parse(r.stdout), { verified: [pair.keyid] });

        const other = KEY_TYPES.find((t) => t !== type)!;
        const wrong = await pythonDsse(["verify", envPath, join(dir, `${other}.pub`)]);
        assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
        assert.match(wrong.stdout, /VerificationError/);
      });

      it("securesystemslib computes the same keyid", async () => {
        const r = await pythonDsse(["keyid", join(dir, `${type}.pub`)]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), pairs.get(type)!.keyid);
      });

      it("an envelope securesystemslib signed verifies with ours", async () => {
        const pair = pairs.get(type)!;
        const payloadPath = join(dir, `${type}.payload`);
        writeFileSync(payloadPath, '{"_type":"https://in-toto.io/Statement/v1","x":"\u00e9"}');
        const r = await pythonDsse(["sign", join(dir, `${type}.key`), IN_TOTO_PAYLOAD_TYPE, payloadPath]);
        assert.equal(r.code, 0, r.stderr);
        const env = parseEnvelope(r.stdout, "python.json");
        const result = verifyEnvelope(env, [loadPublicKey(pair.publicPem, "k.pub")]);
        assert.deepEqual(result.verifiedKeyids, [pair.keyid]);
        assert.deepEqual(Buffer.from(result.payload), readFileSync(payloadPath));
        // …and a flipped payload byte makes ours refuse it.
        const payload = Buffer.from(env.payload, "base64");
        payload[5] = (payload[5] ?? 0) ^ 0x20;
        assert.throws(
          () =>
            verifyEnvelope({ ...env, payload: payload.toString("base64") }, [
              loadPublicKey(pair.publicPem, "k.pub"),
            ]),
          (err) => isStellaError(err, "DSSE_SIG_INVALID"),
        );
      });
    });
  }

  it("one envelope signed by all four keys: securesystemslib and ours both count 4 distinct keys", async () => {
    const signers: Signer[] = KEY_TYPES.map((t) =>
      keySigner(loadPrivateKey(pairs.get(t)!.privatePem, `${t}.key`)),
    );
    const env = await signEnvelope(IN_TOTO_PAYLOAD_TYPE, new TextEncoder().encode("{}"), signers);
    assert.equal(env.signatures.length, 4);
    const envPath = join(dir, "multi.env.json");
    writeFileSync(envPath, envelopeToJson(env));
    const pubs = KEY_TYPES.map((t) => join(dir, `${t}.pub`));
    const r = await pythonDsse(["verify", envPath, ...pubs, "--threshold", "4"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ids = KEY_TYPES.map((t) => pairs.get(t)!.keyid);
    assert.deepEqual(JSON.parse(r.stdout), { verified: [...ids].sort() });
    const ours = verifyEnvelope(
      env,
      KEY_TYPES.map((t) => loadPublicKey(pairs.get(t)!.publicPem, t)),
      { threshold: 4 },
    );
    assert.deepEqual(ours.verifiedKeyids, ids);
  });
});

describe("signEnvelope", () => {
  it("refuses no signers", async () => {
    await assert.rejects(signEnvelope("t", new Uint8Array(1), []), (err) =>
      isStellaError(err, "DSSE_NO_SIGNATURES"),
    );
  });

  it("refuses a payload whose envelope would be over the limit", async () => {
    const signer: Signer = { keyid: "x", sign: () => Promise.resolve(new Uint8Array(64)) };
    await assert.rejects(
      signEnvelope("t", new Uint8Array(49 * 1024 * 1024), [signer]),
      (err) => isStellaError(err, "DSSE_TOO_LARGE") && /64 MiB/.test(err.message),
    );
  });

  it("passes the PAE to a custom Signer (the KMS seam) and stores its bytes as given", async () => {
    let seen: Uint8Array | undefined;
    const signer: Signer = {
      keyid: "kms://key/1",
      sign: (data) => {
        seen = data;
        return Promise.resolve(new Uint8Array([1, 2, 3]));
      },
    };
    const env = await signEnvelope("text/plain", new TextEncoder().encode("hi"), [signer]);
    assert.equal(Buffer.from(seen!).toString(), "DSSEv1 10 text/plain 2 hi");
    assert.deepEqual(env, {
      payloadType: "text/plain",
      payload: "aGk=",
      signatures: [{ keyid: "kms://key/1", sig: "AQID" }],
    });
  });
});

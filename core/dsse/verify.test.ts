import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { describe, it } from "node:test";

import { isStellaError } from "../errors.ts";
import { MAX_ENVELOPE_BYTES, envelopeToJson, parseEnvelope, type Envelope } from "./envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey, type PublicKey } from "./keys.ts";
import { keySigner, signEnvelope } from "./sign.ts";
import { verifyEnvelope, type VerifyOptions } from "./verify.ts";

const TYPE = "application/vnd.in-toto+json";
const BODY = new TextEncoder().encode('{"_type":"https://in-toto.io/Statement/v1"}');

const A = generateKeyPair("ecdsa-p256");
const B = generateKeyPair("ed25519");
const pubA = loadPublicKey(A.publicPem, "a.pub");
const pubB = loadPublicKey(B.publicPem, "b.pub");
const signerA = keySigner(loadPrivateKey(A.privatePem, "a.key"));
const signerB = keySigner(loadPrivateKey(B.privatePem, "b.key"));

const byA = await signEnvelope(TYPE, BODY, [signerA]);
const byAB = await signEnvelope(TYPE, BODY, [signerA, signerB]);

type Json = Record<string, unknown>;
const clone = (env: Envelope): Json => JSON.parse(envelopeToJson(env)) as Json;
const sigs = (obj: Json): Json[] => obj["signatures"] as Json[];

/** The whole path a CLI input takes: JSON text → parseEnvelope → verifyEnvelope. */
function check(json: string, keys: PublicKey[], opts?: VerifyOptions): readonly string[] {
  return verifyEnvelope(parseEnvelope(json, "env.json"), keys, { name: "env.json", ...opts }).verifiedKeyids;
}

function refused(code: string, json: string, keys: PublicKey[] = [pubA, pubB], opts?: VerifyOptions): void {
  assert.throws(
    () => check(json, keys, opts),
    (err: unknown) => {
      assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
      assert.match(err.message, /env\.json|threshold/);
      return true;
    },
  );
}

function flipBase64Byte(b64: string, index: number): string {
  const bytes = Buffer.from(b64, "base64");
  bytes[index] = (bytes[index] ?? 0) ^ 0x01;
  return bytes.toString("base64");
}

describe("verifyEnvelope accepts", () => {
  it("a valid signature, reporting the keyid", () => {
    assert.deepEqual(check(envelopeToJson(byA), [pubA]), [A.keyid]);
    assert.deepEqual(check(envelopeToJson(byA), [pubB, pubA]), [A.keyid]);
  });

  it("signatures without keyid, trying each trusted key", () => {
    const env = clone(byAB);
    for (const s of sigs(env)) delete s["keyid"];
    assert.deepEqual(check(JSON.stringify(env), [pubB, pubA], { threshold: 2 }), [A.keyid, B.keyid]);
  });

  it("ignoring a signature whose keyid names no trusted key, when another verifies", () => {
    const env = clone(byA);
    sigs(env).unshift({ keyid: "someone-else", sig: "MEUCIQ==" });
    assert.deepEqual(check(JSON.stringify(env), [pubA]), [A.keyid]);
  });

  it("ignoring a bad extra signature when the threshold is met", () => {
    const env = clone(byAB);
    sigs(env)[1]!["sig"] = flipBase64Byte(String(sigs(env)[1]!["sig"]), 3);
    assert.deepEqual(check(JSON.stringify(env), [pubA, pubB]), [A.keyid]);
  });

  it("threshold 2 with two distinct keys", () => {
    assert.deepEqual(check(envelopeToJson(byAB), [pubA, pubB], { threshold: 2 }), [A.keyid, B.keyid]);
  });

  it("returns the authenticated payload", () => {
    const result = verifyEnvelope(byA, [pubA]);
    assert.deepEqual(Buffer.from(result.payload), Buffer.from(BODY));
    assert.equal(result.payloadType, TYPE);
  });
});

describe("verifyEnvelope refuses, with the right code", () => {
  it("the wrong key", () => {
    const env = clone(byA);
    refused("DSSE_NO_TRUSTED_KEY", JSON.stringify(env), [pubB]); // keyid names A, only B trusted
    sigs(env)[0]!["keyid"] = "";
    refused("DSSE_SIG_INVALID", JSON.stringify(env), [pubB]); // no keyid: B is tried, and fails
  });

  it("the payload changed by one byte", () => {
    const env = clone(byA);
    env["payload"] = flipBase64Byte(String(env["payload"]), 10);
    refused("DSSE_SIG_INVALID", JSON.stringify(env));
  });

  it("the payloadType changed", () => {
    refused(
      "DSSE_SIG_INVALID",
      JSON.stringify({ ...clone(byA), payloadType: "application/vnd.in-toto+jsoN" }),
    );
    refused("DSSE_SIG_INVALID", JSON.stringify({ ...clone(byA), payloadType: `${TYPE} ` }));
  });

  it("bad base64 in the payload and in a signature", () => {
    refused(
      "DSSE_BAD_BASE64",
      JSON.stringify({ ...clone(byA), payload: `${String(clone(byA)["payload"])}#` }),
    );
    const env = clone(byA);
    sigs(env)[0]!["sig"] = `${String(sigs(env)[0]!["sig"]).slice(0, -4)}a=b=`;
    refused("DSSE_BAD_BASE64", JSON.stringify(env));
    // A hand-built Envelope that skipped parseEnvelope is checked too.
    assert.throws(
      () => verifyEnvelope({ ...byA, payload: "!!" }, [pubA]),
      (e) => isStellaError(e, "DSSE_BAD_BASE64"),
    );
  });

  it("an empty signatures list", () => {
    refused("DSSE_NO_SIGNATURES", JSON.stringify({ ...clone(byA), signatures: [] }));
    assert.throws(
      () => verifyEnvelope({ ...byA, signatures: [] }, [pubA]),
      (e) => isStellaError(e, "DSSE_NO_SIGNATURES"),
    );
  });

  it("a truncated signature", () => {
    for (const cut of [1, 8, 40]) {
      const env = clone(byAB);
      for (const s of sigs(env)) {
        s["sig"] = Buffer.from(String(s["sig"]), "base64").subarray(0, -cut).toString("base64");
      }
      refused("DSSE_SIG_INVALID", JSON.stringify(env));
    }
  });

  it("a keyid pointing to a different key", () => {
    const env = clone(byA);
    sigs(env)[0]!["keyid"] = B.keyid; // signed by A, labelled B
    refused("DSSE_SIG_INVALID", JSON.stringify(env), [pubA, pubB]);
    refused("DSSE_NO_TRUSTED_KEY", JSON.stringify(env), [pubA]);
  });

  it("threshold 2 with one valid signature", () => {
    refused("DSSE_THRESHOLD_NOT_MET", envelopeToJson(byA), [pubA, pubB], { threshold: 2 });
  });

  it("threshold 2 met only by the same key signing twice", async () => {
    const twice = await signEnvelope(TYPE, BODY, [signerA, signerA]);
    refused("DSSE_THRESHOLD_NOT_MET", envelopeToJson(twice), [pubA, pubB], { threshold: 2 });
  });

  it("an oversize envelope", () => {
    const env = clone(byA);
    env["padding"] = "x".repeat(MAX_ENVELOPE_BYTES);
    refused("DSSE_TOO_LARGE", JSON.stringify(env));
  });

  it("JSON that isn't an object", () => {
    refused("DSSE_MALFORMED", "[]");
    refused("DSSE_MALFORMED", '"envelope"');
  });

  it("a signatures field that isn't an array", () => {
    refused("DSSE_MALFORMED", JSON.stringify({ ...clone(byA), signatures: sigs(clone(byA))[0] }));
  });

  it("a payloadType not among those accepted", () => {
    refused("DSSE_PAYLOAD_TYPE", envelopeToJson(byA), [pubA], { payloadTypes: ["application/json"] });
  });

  it("impossible thresholds", () => {
    for (const threshold of [0, -1, 1.5, Number.NaN]) {
      refused("DSSE_BAD_THRESHOLD", envelopeToJson(byA), [pubA], { threshold });
    }
    // The same key twice is one key.
    refused("DSSE_BAD_THRESHOLD", envelopeToJson(byAB), [pubA, pubA], { threshold: 2 });
    refused("DSSE_NO_TRUSTED_KEY", envelopeToJson(byA), []);
  });
});

describe("DSSE testvectors (secure-systems-lab/dsse testvectors/vectors.json)", () => {
  // RFC 8032 §7.1 TEST 1 and TEST 2 keys: Ed25519 is deterministic, so our signatures must equal the vectors'.
  const seeds = {
    A: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    B: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
  };
  const pem = (seed: string): string =>
    createPrivateKey({
      key: Buffer.from(`302e020100300506032b657004220420${seed}`, "hex"),
      format: "der",
      type: "pkcs8",
    })
      .export({ type: "pkcs8", format: "pem" })
      .toString();
  const priv = { A: loadPrivateKey(pem(seeds.A), "A"), B: loadPrivateKey(pem(seeds.B), "B") };
  // The vectors call the keys "A" and "B": trust them under those keyids.
  const trusted = { A: { ...priv.A.publicKey, keyid: "A" }, B: { ...priv.B.publicKey, keyid: "B" } };
  const STATEMENT = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==";
  const SIG_A = "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==";
  const SIG_B = "c1+67/aT0yqEpwx8PsVY3MLHsj9D0CZ014/Fv/QlG59P+9CobUZ7xECJ/V3USG0Ob9CiE5LjReEZUzNF2l7eBw==";

  it("the public keys are RFC 8032's", () => {
    const raw = (k: PublicKey): string =>
      Buffer.from(k.key.export({ format: "der", type: "spki" }))
        .subarray(12)
        .toString("hex");
    assert.equal(raw(trusted.A), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert.equal(raw(trusted.B), "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  });

  it("we produce the vectors' exact signatures", async () => {
    const one = { keyid: "A", sign: (d: Uint8Array) => keySigner(priv.A).sign(d) };
    const two = { keyid: "B", sign: (d: Uint8Array) => keySigner(priv.B).sign(d) };
    const env = await signEnvelope(TYPE, Buffer.from(STATEMENT, "base64"), [one, two]);
    assert.equal(env.payload, STATEMENT);
    assert.deepEqual(env.signatures, [
      { keyid: "A", sig: SIG_A },
      { keyid: "B", sig: SIG_B },
    ]);
    const exaemple = await signEnvelope("application/vnd.exämple+json", Buffer.from(STATEMENT, "base64"), [
      one,
    ]);
    assert.equal(
      exaemple.signatures[0]?.sig,
      "xmSk/ug66ysT7ayhkCIjhAq42zgZXSsEWuzUaNL7w2eGAdF/NU6/fRXPtmfN+5DNSAs5/i2lUnHjbbjPsu0tAw==",
    );
    const empty = await signEnvelope(TYPE, new Uint8Array(0), [one]);
    assert.equal(
      empty.signatures[0]?.sig,
      "gSggCAaTLTYyRH6FIDBem6meyIynsYy8RTHVzwx9tnTb7Bg/1jMWnuVgI/gffqmbsC2VX5/jHfkkDqsj7CDbDg==",
    );
  });

  const vectors: {
    id: string;
    payload: string;
    payloadType: string;
    signatures: { keyid?: string; sig: string }[];
    threshold: number;
    supported: string[];
    expect: string; // "accept", or the error code
  }[] = [
    {
      id: "single-signature",
      payload: STATEMENT,
      payloadType: TYPE,
      signatures: [{ keyid: "A", sig: SIG_A }],
      threshold: 1,
      supported: [TYPE],
      expect: "accept",
    },
    {
      id: "url-safe-base64",
      payload: "-_-_Pj8=",
      payloadType: TYPE,
      signatures: [
        {
          keyid: "A",
          sig: "P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==",
        },
      ],
      threshold: 1,
      supported: [TYPE],
      expect: "accept",
    },
    {
      id: "payload-type-swapped",
      payload: STATEMENT,
      payloadType: "application/vnd.example.other+json",
      signatures: [{ keyid: "A", sig: SIG_A }],
      threshold: 1,
      supported: [TYPE, "application/vnd.example.other+json"],
      expect: "DSSE_SIG_INVALID",
    },
    {
      id: "empty-payload-type",
      payload: STATEMENT,
      payloadType: "",
      signatures: [
        {
          keyid: "A",
          sig: "iC3q/+3Rm0+lpAJRueDmDh15PnwCfxKmS0NAfKsbv+zgulXQC/WM9trc+j1XEqlwDIg/vf/uNfebeD6sxInrDg==",
        },
      ],
      threshold: 1,
      supported: [TYPE],
      expect: "DSSE_PAYLOAD_TYPE",
    },
    {
      id: "threshold-two-distinct-keys",
      payload: STATEMENT,
      payloadType: TYPE,
      signatures: [
        { keyid: "A", sig: SIG_A },
        { keyid: "B", sig: SIG_B },
      ],
      threshold: 2,
      supported: [TYPE],
      expect: "accept",
    },
    {
      id: "threshold-two-one-key-twice",
      payload: STATEMENT,
      payloadType: TYPE,
      signatures: [
        { keyid: "A", sig: SIG_A },
        { keyid: "A", sig: SIG_A },
      ],
      threshold: 2,
      supported: [TYPE],
      expect: "DSSE_THRESHOLD_NOT_MET",
    },
    {
      id: "threshold-two-without-keyids",
      payload: STATEMENT,
      payloadType: TYPE,
      signatures: [{ sig: SIG_A }, { sig: SIG_B }],
      threshold: 2,
      supported: [TYPE],
      expect: "accept",
    },
  ];
  for (const v of vectors) {
    it(`${v.id}: ${v.expect}`, () => {
      const json = JSON.stringify({
        payload: v.payload,
        payloadType: v.payloadType,
        signatures: v.signatures,
      });
      const opts = { threshold: v.threshold, payloadTypes: v.supported };
      if (v.expect === "accept") assert.ok(check(json, [trusted.A, trusted.B], opts).length >= v.threshold);
      else refused(v.expect, json, [trusted.A, trusted.B], opts);
    });
  }
});

import assert from "node:assert/strict";
import { closeSync, ftruncateSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { isStellaError } from "../errors.ts";
import {
  MAX_ENVELOPE_BYTES,
  MAX_SIGNATURES,
  decodeBase64,
  envelopeToJson,
  parseEnvelope,
  readEnvelopeFile,
} from "./envelope.ts";
import { tempDir } from "./testdata/oracles.ts";

const GOOD = {
  payloadType: "application/vnd.in-toto+json",
  payload: "aGVsbG8gd29ybGQ=",
  signatures: [{ keyid: "k1", sig: "MEUCIQ==" }],
};

/** A copy of `obj` without `key`. */
function omit(obj: object, key: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => k !== key));
}

function rejects(json: string, code: string, message?: RegExp): void {
  assert.throws(
    () => parseEnvelope(json, "env.json"),
    (err: unknown) => {
      assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

function withFields(patch: Record<string, unknown>): string {
  return JSON.stringify({ ...GOOD, ...patch });
}

describe("decodeBase64 (strict)", () => {
  it("accepts standard and URL-safe alphabets, padded or not, and decodes them the same", () => {
    assert.deepEqual(decodeBase64("+/+/Pj8="), new Uint8Array([0xfb, 0xff, 0xbf, 0x3e, 0x3f]));
    assert.deepEqual(decodeBase64("-_-_Pj8="), new Uint8Array([0xfb, 0xff, 0xbf, 0x3e, 0x3f]));
    assert.deepEqual(decodeBase64("-_-_Pj8"), new Uint8Array([0xfb, 0xff, 0xbf, 0x3e, 0x3f]));
    assert.deepEqual(decodeBase64("aGk="), new TextEncoder().encode("hi"));
    assert.deepEqual(decodeBase64("aGk"), new TextEncoder().encode("hi"));
    assert.deepEqual(decodeBase64(""), new Uint8Array(0));
  });

  it("refuses what Buffer.from(…, 'base64') would silently accept", () => {
    for (const bad of [
      "aGVs bG8=", // whitespace
      "aGVs\nbG8=",
      "aGVsbG8*", // junk character
      "aGVsbG8=x", // data after padding
      "aGk==", // too much padding
      "aGVsbA=", // wrong padding
      "a", // impossible length
      "aGVsbG8===",
      "+/-_", // mixed alphabets
      "aGl=", // non-zero trailing bits (non-canonical, malleable)
      "=",
      "====",
    ]) {
      assert.equal(decodeBase64(bad), undefined, JSON.stringify(bad));
      assert.ok(Buffer.from(bad, "base64").length >= 0); // Node itself does not object
    }
  });
});

describe("parseEnvelope", () => {
  it("accepts a well-formed envelope, keeps the base64 strings as given, defaults a missing keyid to ''", () => {
    const env = parseEnvelope(
      JSON.stringify({
        ...GOOD,
        extra: 1,
        signatures: [{ sig: "-_-_Pj8=" }, { keyid: null, sig: "MEUCIQ==" }],
      }),
      "env.json",
    );
    assert.equal(env.payload, GOOD.payload);
    assert.deepEqual(env.signatures, [
      { keyid: "", sig: "-_-_Pj8=" },
      { keyid: "", sig: "MEUCIQ==" },
    ]);
  });

  it("accepts an empty payload", () => {
    assert.equal(parseEnvelope(withFields({ payload: "" }), "env.json").payload, "");
  });

  it("refuses JSON that is not an object", () => {
    for (const json of ["[]", "null", "42", '"x"', "true"])
      rejects(json, "DSSE_MALFORMED", /^env\.json: not a DSSE envelope/);
  });

  it("refuses text that is not JSON", () => {
    rejects("{", "DSSE_MALFORMED", /^env\.json: not JSON/);
    rejects("", "DSSE_MALFORMED", /^env\.json: not JSON/);
  });

  it("refuses missing or mistyped fields, naming the field", () => {
    rejects(JSON.stringify(omit(GOOD, "payloadType")), "DSSE_MALFORMED", /^env\.json: payloadType: missing$/);
    rejects(
      withFields({ payloadType: 7 }),
      "DSSE_MALFORMED",
      /^env\.json: payloadType: expected a string, got a number$/,
    );
    rejects(JSON.stringify(omit(GOOD, "payload")), "DSSE_MALFORMED", /^env\.json: payload: missing$/);
    rejects(
      withFields({ payload: ["x"] }),
      "DSSE_MALFORMED",
      /^env\.json: payload: expected a string, got an array$/,
    );
    rejects(
      withFields({ signatures: { sig: "MEUCIQ==" } }),
      "DSSE_MALFORMED",
      /^env\.json: signatures: expected an array, got an object$/,
    );
    rejects(
      withFields({ signatures: "MEUCIQ==" }),
      "DSSE_MALFORMED",
      /^env\.json: signatures: expected an array/,
    );
    rejects(JSON.stringify(omit(GOOD, "signatures")), "DSSE_MALFORMED", /^env\.json: signatures: missing$/);
    rejects(
      withFields({ signatures: ["MEUCIQ=="] }),
      "DSSE_MALFORMED",
      /^env\.json: signatures\[0\]: expected an object, got a string$/,
    );
    rejects(
      withFields({ signatures: [GOOD.signatures[0], {}] }),
      "DSSE_MALFORMED",
      /^env\.json: signatures\[1\]\.sig: missing$/,
    );
    rejects(
      withFields({ signatures: [{ sig: "" }] }),
      "DSSE_MALFORMED",
      /^env\.json: signatures\[0\]\.sig: empty$/,
    );
    rejects(
      withFields({ signatures: [{ sig: "MEUCIQ==", keyid: 3 }] }),
      "DSSE_MALFORMED",
      /signatures\[0\]\.keyid: expected a string/,
    );
    rejects(
      '{"payloadType":"a\\ud800","payload":"","signatures":[{"sig":"MEUCIQ=="}]}',
      "DSSE_MALFORMED",
      /payloadType: .*lone surrogate/,
    );
  });

  it("refuses bad base64 in the payload and in a signature, naming which", () => {
    rejects(
      withFields({ payload: "aGVsbG8gd29ybGQ=!" }),
      "DSSE_BAD_BASE64",
      /^env\.json: payload: not valid base64$/,
    );
    rejects(
      withFields({ payload: "aGVsbG8g d29ybGQ=" }),
      "DSSE_BAD_BASE64",
      /^env\.json: payload: not valid base64$/,
    );
    rejects(
      withFields({ signatures: [GOOD.signatures[0], { keyid: "k2", sig: "MEUCIQ=" }] }),
      "DSSE_BAD_BASE64",
      /^env\.json: signatures\[1\]\.sig: not valid base64$/,
    );
  });

  it("refuses an empty signatures list", () => {
    rejects(withFields({ signatures: [] }), "DSSE_NO_SIGNATURES", /^env\.json: signatures: /);
  });

  it(`refuses more than ${MAX_SIGNATURES} signatures`, () => {
    const sigs = Array.from({ length: MAX_SIGNATURES + 1 }, () => GOOD.signatures[0]);
    rejects(withFields({ signatures: sigs }), "DSSE_TOO_MANY_SIGNATURES", /over the limit of 64/);
    assert.equal(
      parseEnvelope(withFields({ signatures: sigs.slice(1) }), "env.json").signatures.length,
      MAX_SIGNATURES,
    );
  });

  it("refuses an envelope over 64 MiB, naming the limit", () => {
    const big = withFields({ payload: "A".repeat(MAX_ENVELOPE_BYTES) });
    rejects(big, "DSSE_TOO_LARGE", /^env\.json: DSSE envelope is \d+ bytes, over the 64 MiB limit$/);
  });
});

describe("readEnvelopeFile", () => {
  it("refuses an oversize file without reading it", () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, "huge.json");
      const fd = openSync(path, "w");
      ftruncateSync(fd, MAX_ENVELOPE_BYTES + 1); // sparse: costs nothing
      closeSync(fd);
      assert.throws(
        () => readEnvelopeFile(path),
        (err) => isStellaError(err, "DSSE_TOO_LARGE") && /over the 64 MiB limit/.test(err.message),
      );
    } finally {
      cleanup();
    }
  });

  it("reads a file, and reports a missing one or non-UTF-8 bytes with the path", () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, "env.json");
      writeFileSync(path, JSON.stringify(GOOD));
      assert.equal(readEnvelopeFile(path), JSON.stringify(GOOD));
      assert.throws(
        () => readEnvelopeFile(join(dir, "nope.json")),
        (err) => isStellaError(err, "DSSE_IO"),
      );
      writeFileSync(path, Buffer.from([0x7b, 0xff, 0x7d]));
      assert.throws(
        () => readEnvelopeFile(path),
        (err) => isStellaError(err, "DSSE_MALFORMED") && err.message.startsWith(path),
      );
    } finally {
      cleanup();
    }
  });
});

describe("envelopeToJson", () => {
  it("writes RFC 8785 canonical JSON that parses back to the same envelope", () => {
    const env = parseEnvelope(JSON.stringify(GOOD), "env.json");
    const json = envelopeToJson(env);
    assert.equal(
      json,
      '{"payload":"aGVsbG8gd29ybGQ=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"k1","sig":"MEUCIQ=="}]}',
    );
    assert.deepEqual(parseEnvelope(json, "again.json"), env);
  });
});

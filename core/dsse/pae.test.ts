import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { describe, it } from "node:test";

import { dsse } from "@sigstore/core";
import fc from "fast-check";

import { isStellaError } from "../errors.ts";
import { pae } from "./pae.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("pae", () => {
  it("matches the DSSE protocol.md example byte for byte", () => {
    const got = pae("http://example.com/HelloWorld", text("hello world"));
    assert.deepEqual(Buffer.from(got), Buffer.from("DSSEv1 29 http://example.com/HelloWorld 11 hello world"));
  });

  it("is what the protocol.md example signature covers (ECDSA P-256, raw r||s)", () => {
    // The spec's own test vector: key as decimal coordinates, signature from the reference implementation.
    const coord = (d: string): string =>
      Buffer.from(BigInt(d).toString(16).padStart(64, "0"), "hex").toString("base64url");
    const key = createPublicKey({
      key: {
        kty: "EC",
        crv: "P-256",
        x: coord("46950820868899156662930047687818585632848591499744589407958293238635476079160"),
        y: coord("5640078356564379163099075877009565129882514886557779369047442380624545832820"),
      },
      format: "jwk",
    });
    const sig = Buffer.from(
      "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==",
      "base64",
    );
    const data = pae("http://example.com/HelloWorld", text("hello world"));
    assert.equal(verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig), true);
    // …and not a PAE that is off by anything.
    const off = pae("http://example.com/HelloWorld", text("hello world!"));
    assert.equal(verify("sha256", off, { key, dsaEncoding: "ieee-p1363" }, sig), false);
  });

  it("matches sigstore-js dsse.test.ts vectors", () => {
    assert.deepEqual(
      Buffer.from(pae("text/plain", text("Hello, World!"))),
      Buffer.from("DSSEv1 10 text/plain 13 Hello, World!"),
    );
    // U+00E9 is 2 bytes in UTF-8: the type length is 17, not 16.
    const type = "application/typ\u00e9";
    assert.deepEqual(
      Buffer.from(pae(type, text("Hello, World!"))),
      Buffer.concat([Buffer.from("DSSEv1 17 "), Buffer.from(type, "utf8"), Buffer.from(" 13 Hello, World!")]),
    );
    // U+0174 has the same low byte as "t": an ASCII/latin1 encoder would collide them.
    assert.notDeepEqual(pae("text/plain", text("x")), pae("\u0174ext/plain", text("x")));
  });

  it("matches the DSSE testvectors PAE hex (byte lengths, empty payload's trailing space)", () => {
    const statement = text('{"_type":"https://in-toto.io/Statement/v1"}');
    assert.equal(
      hex(pae("application/vnd.in-toto+json", statement)),
      "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d",
    );
    assert.equal(
      hex(pae("application/vnd.exämple+json", statement)),
      "445353457631203239206170706c69636174696f6e2f766e642e6578c3a46d706c652b6a736f6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d",
    );
    assert.equal(
      hex(pae("application/vnd.in-toto+json", new Uint8Array(0))),
      "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203020",
    );
    assert.equal(Buffer.from(pae("", new Uint8Array(0))).toString("latin1"), "DSSEv1 0  0 ");
    // Binary payload bytes pass through untouched.
    assert.equal(
      hex(pae("application/vnd.in-toto+json", Buffer.from("fbffbf3e3f", "hex"))),
      "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203520fbffbf3e3f",
    );
  });

  it("counts lengths in bytes for multi-byte payloads too", () => {
    const body = text("€😀"); // 3 + 4 bytes, 3 UTF-16 units, 2 code points
    assert.equal(Buffer.from(pae("t", body)).subarray(0, 12).toString("latin1"), "DSSEv1 1 t 7");
  });

  it("refuses a payloadType with a lone surrogate (it has no UTF-8 encoding)", () => {
    assert.throws(
      () => pae("application/\ud800json", text("x")),
      (err) => isStellaError(err, "DSSE_MALFORMED"),
    );
  });

  it("agrees with @sigstore/core dsse.preAuthEncoding on random inputs", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.uint8Array({ maxLength: 300 }), (type, body) => {
        assert.deepEqual(Buffer.from(pae(type, body)), dsse.preAuthEncoding(type, Buffer.from(body)));
      }),
      { numRuns: 500 },
    );
  });
});

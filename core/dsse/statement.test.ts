import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { isStellaError } from "../errors.ts";
import { STATEMENT_TYPE_V1, makeStatement, parseStatement, statementBytes } from "./statement.ts";

const H1 = "a1".repeat(32);
const H2 = "b2".repeat(32);
const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

/** A copy of `obj` without `key`. */
function omit(obj: object, key: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => k !== key));
}

function refused(code: string, value: unknown, message: RegExp): void {
  assert.throws(
    () =>
      parseStatement(typeof value === "string" ? new TextEncoder().encode(value) : bytes(value), "env.json"),
    (err: unknown) => {
      assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

const GOOD = {
  _type: STATEMENT_TYPE_V1,
  subject: [{ name: "app", digest: { sha256: H1 } }],
  predicateType: "https://example.com/p/v1",
  predicate: { x: 1 },
};

describe("makeStatement / statementBytes", () => {
  it("serialises as RFC 8785 canonical JSON with subjects sorted by name", () => {
    const stmt = makeStatement(
      [
        { name: "zeta", digest: { sha256: H2 } },
        { name: "Alpha", digest: { sha512: "ab", sha256: H1 } },
        { name: "alpha", digest: { sha256: H1 } },
      ],
      "https://example.com/p/v1",
      { b: 1.0, a: [true, null, "é"], c: { z: 1e21, y: -0 } },
    );
    assert.equal(
      new TextDecoder().decode(statementBytes(stmt)),
      '{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":[true,null,"é"],"b":1,"c":{"y":0,"z":1e+21}},' +
        '"predicateType":"https://example.com/p/v1","subject":[' +
        `{"digest":{"sha256":"${H1}","sha512":"ab"},"name":"Alpha"},` +
        `{"digest":{"sha256":"${H1}"},"name":"alpha"},` +
        `{"digest":{"sha256":"${H2}"},"name":"zeta"}]}`,
    );
  });

  it("is deterministic whatever the input order", () => {
    const s1 = [
      { name: "a", digest: { sha256: H1 } },
      { name: "b", digest: { sha256: H2 } },
    ];
    const one = statementBytes(makeStatement(s1, "t", { q: 1, p: 2 }));
    const two = statementBytes(makeStatement([...s1].reverse(), "t", { p: 2, q: 1 }));
    assert.deepEqual(one, two);
  });

  it("refuses subjects without a proper sha256, duplicate names, no subjects, empty predicateType", () => {
    const code = (c: string) => (err: unknown) => isStellaError(err, c);
    assert.throws(
      () => makeStatement([{ name: "a", digest: { sha512: "ab" } }], "t", {}),
      code("STATEMENT_SUBJECT"),
    );
    assert.throws(
      () => makeStatement([{ name: "a", digest: { sha256: H1.toUpperCase() } }], "t", {}),
      code("STATEMENT_SUBJECT"),
    );
    assert.throws(
      () => makeStatement([{ name: "a", digest: { sha256: "abc" } }], "t", {}),
      code("STATEMENT_SUBJECT"),
    );
    assert.throws(
      () =>
        makeStatement(
          [
            { name: "a", digest: { sha256: H1 } },
            { name: "a", digest: { sha256: H2 } },
          ],
          "t",
          {},
        ),
      code("STATEMENT_SUBJECT"),
    );
    assert.throws(() => makeStatement([], "t", {}), code("STATEMENT_SUBJECT"));
    assert.throws(
      () => makeStatement([{ name: "a", digest: { sha256: H1 } }], "", {}),
      code("STATEMENT_MALFORMED"),
    );
  });

  it("refuses a predicate canonical JSON cannot represent (lone surrogate)", () => {
    assert.throws(
      () => statementBytes(makeStatement([{ name: "a", digest: { sha256: H1 } }], "t", { s: "\ud800" })),
      (err) => isStellaError(err, "STATEMENT_MALFORMED"),
    );
  });
});

describe("parseStatement", () => {
  it("round-trips what makeStatement wrote", () => {
    const stmt = makeStatement(GOOD.subject, GOOD.predicateType, GOOD.predicate);
    assert.deepEqual(parseStatement(statementBytes(stmt), "env.json"), stmt);
  });

  it("accepts v0.1 statements and a missing predicate", () => {
    assert.equal(
      parseStatement(bytes({ ...omit(GOOD, "predicate"), _type: "https://in-toto.io/Statement/v0.1" }), "e")
        .predicate,
      undefined,
    );
  });

  it("refuses a wrong or missing _type", () => {
    refused(
      "STATEMENT_TYPE",
      { ...GOOD, _type: "https://in-toto.io/Statement/v2" },
      /^env\.json: payload\._type: /,
    );
    refused("STATEMENT_TYPE", omit(GOOD, "_type"), /got nothing/);
  });

  it("refuses subjects without a 64-lowercase-hex sha256", () => {
    const sub = (digest: unknown) => ({ ...GOOD, subject: [GOOD.subject[0], { name: "b", digest }] });
    refused(
      "STATEMENT_SUBJECT",
      sub({ sha512: "ab" }),
      /^env\.json: payload\.subject\[1\]\.digest\.sha256: missing$/,
    );
    refused(
      "STATEMENT_SUBJECT",
      sub({ sha256: H1.toUpperCase() }),
      /subject\[1\]\.digest\.sha256: expected lowercase hex/,
    );
    refused(
      "STATEMENT_SUBJECT",
      sub({ sha256: `${H1}0` }),
      /subject\[1\]\.digest\.sha256: expected 64 lowercase hex/,
    );
    refused("STATEMENT_SUBJECT", sub({ sha256: 5 }), /subject\[1\]\.digest\.sha256/);
    refused("STATEMENT_SUBJECT", sub("sha256:abc"), /subject\[1\]\.digest: expected an object/);
    refused(
      "STATEMENT_SUBJECT",
      { ...GOOD, subject: [{ digest: { sha256: H1 } }] },
      /subject\[0\]\.name: expected a string/,
    );
    refused("STATEMENT_SUBJECT", { ...GOOD, subject: [] }, /payload\.subject: expected a non-empty array/);
    refused("STATEMENT_SUBJECT", { ...GOOD, subject: "app" }, /payload\.subject/);
  });

  it("keeps a '__proto__' digest key as data", () => {
    const json = `{"_type":"${STATEMENT_TYPE_V1}","predicateType":"t","subject":[{"name":"a","digest":{"sha256":"${H1}","__proto__":"ab"}}]}`;
    const digest = parseStatement(new TextEncoder().encode(json), "e").subject[0]?.digest;
    assert.equal(Object.getPrototypeOf(digest), Object.prototype);
    assert.deepEqual(Object.keys(digest ?? {}), ["sha256", "__proto__"]);
  });

  it("refuses a missing predicateType, a non-object predicate, non-JSON, non-UTF-8, non-objects", () => {
    refused(
      "STATEMENT_MALFORMED",
      omit(GOOD, "predicateType"),
      /payload\.predicateType: expected a non-empty string/,
    );
    refused("STATEMENT_MALFORMED", { ...GOOD, predicateType: "" }, /payload\.predicateType/);
    refused(
      "STATEMENT_MALFORMED",
      { ...GOOD, predicate: [1] },
      /payload\.predicate: expected an object, got an array/,
    );
    refused("STATEMENT_MALFORMED", "{", /^env\.json: payload: not a JSON document/);
    refused("STATEMENT_MALFORMED", [GOOD], /^env\.json: payload: expected a JSON object, got an array/);
    assert.throws(
      () => parseStatement(new Uint8Array([0x7b, 0xc3, 0x7d]), "env.json"),
      (err) => isStellaError(err, "STATEMENT_MALFORMED"),
    );
  });
});

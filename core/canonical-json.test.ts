// RFC 8785 (JCS) vectors: the RFC's own examples (§3.2.2 sample, §3.2.3 sorting) and ECMAScript
// number serialisation cases of its Appendix B.
import assert from "node:assert/strict";
import { test } from "node:test";

import { canonicalBytes, canonicalJson } from "./canonical-json.ts";

test("RFC 8785 §3.2.2 sample: literals, numbers and string escaping", () => {
  const input = JSON.parse(
    '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
      '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
  ) as unknown;
  assert.equal(
    canonicalJson(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test("RFC 8785 §3.2.3: properties sorted by UTF-16 code units, not code points", () => {
  const input = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
  };
  const keys = Object.keys(JSON.parse(canonicalJson(input)) as object);
  // Object.keys would put "1" first (integer-like); read the order from the text instead.
  const order = [...canonicalJson(input).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map(
    (m) => JSON.parse(`"${m[1]!}"`) as string,
  );
  assert.deepEqual(order, ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"]);
  assert.equal(keys.length, 7);
});

test("RFC 8785 Appendix B: numbers serialise as ECMAScript does", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [-0, "0"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [9007199254740992, "9007199254740992"],
    [1e21, "1e+21"],
    [1e20, "100000000000000000000"],
    [0.000001, "0.000001"],
    [1e-7, "1e-7"],
    [-1.5, "-1.5"],
  ];
  for (const [n, s] of cases) assert.equal(canonicalJson(n), s, String(n));
});

test("values JSON cannot carry are refused", () => {
  assert.throws(() => canonicalJson(Number.NaN));
  assert.throws(() => canonicalJson(Infinity));
  assert.throws(() => canonicalJson(undefined));
  assert.throws(() => canonicalJson({ a: 1n }));
});

test("canonical bytes are UTF-8 of the canonical text", () => {
  assert.deepEqual([...canonicalBytes({ b: "é", a: 1 })], [...Buffer.from('{"a":1,"b":"é"}', "utf8")]);
});

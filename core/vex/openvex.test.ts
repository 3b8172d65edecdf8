import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { canonicalJson } from "../canonical-json.ts";
import {
  assertValidOpenVex,
  buildOpenVexDocument,
  DEFAULT_ACTION_STATEMENT,
  OPENVEX_CONTEXT,
  openVexDigest,
  OpenVexError,
  validateOpenVex,
} from "./openvex.ts";
import { AFFECTED, IMAGE, NOT_IN_PATH, NOT_PRESENT } from "./testdata.ts";

const OPTS = {
  id: "urn:uuid:6f1e2d3c-0000-4000-8000-000000000001",
  author: "stella-operator",
  timestamp: "2024-05-01T14:00:00Z",
  version: 1,
};

describe("OpenVEX v0.2.0 documents", () => {
  test("affected: the fields of the spec, and an action statement", () => {
    const doc = buildOpenVexDocument(AFFECTED, { ...OPTS, statusNotes: "seen" });
    assert.deepEqual(doc, {
      "@context": OPENVEX_CONTEXT,
      "@id": OPTS.id,
      author: "stella-operator",
      timestamp: "2024-05-01T14:00:00Z",
      version: 1,
      tooling: "stella-operator",
      statements: [
        {
          vulnerability: { name: "CVE-2024-1234", aliases: ["GHSA-abcd-efgh-ijkl"] },
          products: [{ "@id": IMAGE, hashes: { "sha-256": "ab".repeat(32) } }],
          status: "affected",
          timestamp: "2024-05-01T14:00:00Z",
          action_statement: DEFAULT_ACTION_STATEMENT,
          status_notes: "seen",
        },
      ],
    });
    assert.deepEqual(validateOpenVex(doc), []);
  });

  test("not_affected documents validate and carry their justification", () => {
    for (const d of [NOT_IN_PATH, NOT_PRESENT]) {
      const doc = buildOpenVexDocument(d, OPTS);
      assert.deepEqual(validateOpenVex(doc), []);
      assert.equal(doc.statements[0]?.justification, d.justification);
    }
    const both = buildOpenVexDocument(NOT_PRESENT, OPTS);
    assert.deepEqual(both.statements[0]?.products, [
      {
        "@id": IMAGE,
        hashes: { "sha-256": "ab".repeat(32) },
        subcomponents: [
          {
            "@id": "pkg:deb/debian/openssl@3.0.11-1",
            identifiers: { purl: "pkg:deb/debian/openssl@3.0.11-1" },
          },
        ],
      },
    ]);
  });

  test("purl-only product", () => {
    const doc = buildOpenVexDocument({ ...AFFECTED, product: { purl: "pkg:npm/left-pad@1.0.0" } }, OPTS);
    assert.deepEqual(doc.statements[0]?.products, [
      { "@id": "pkg:npm/left-pad@1.0.0", identifiers: { purl: "pkg:npm/left-pad@1.0.0" } },
    ]);
  });

  test("deterministic: same inputs, same canonical bytes and digest", () => {
    const a = buildOpenVexDocument(AFFECTED, OPTS);
    const b = buildOpenVexDocument(
      { ...AFFECTED, vulnerability: { id: "CVE-2024-1234", aliases: ["GHSA-abcd-efgh-ijkl"] } },
      { ...OPTS, timestamp: new Date(Date.UTC(2024, 4, 1, 14)) },
    );
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(openVexDigest(a), openVexDigest(b));
    assert.match(openVexDigest(a), /^sha256:[0-9a-f]{64}$/);
  });

  test("broken documents fail the official schema", () => {
    const good = buildOpenVexDocument(AFFECTED, OPTS);
    const broken: [string, unknown][] = [
      ["no @context", { ...good, "@context": undefined }],
      ["unknown status", { ...good, statements: [{ ...good.statements[0], status: "maybe" }] }],
      [
        "affected without action_statement",
        { ...good, statements: [{ ...good.statements[0], action_statement: undefined }] },
      ],
      [
        "not_affected without justification or impact_statement",
        {
          ...good,
          statements: [{ ...good.statements[0], status: "not_affected", action_statement: undefined }],
        },
      ],
      ["version 0", { ...good, version: 0 }],
      ["an @id that is not an IRI", { ...good, "@id": "not an iri" }],
      ["a timestamp that is not a date-time", { ...good, timestamp: "yesterday" }],
      ["an extra field", { ...good, extra: 1 }],
    ];
    for (const [what, doc] of broken) {
      const plain = JSON.parse(JSON.stringify(doc)) as unknown;
      assert.notDeepEqual(validateOpenVex(plain), [], what);
      assert.throws(
        () => {
          assertValidOpenVex(plain);
        },
        (e: unknown) => e instanceof OpenVexError && e.code === "OPENVEX_INVALID",
      );
    }
  });

  test("bad inputs are refused before the schema", () => {
    assert.throws(() => buildOpenVexDocument(AFFECTED, { ...OPTS, version: 0 }), /version/);
    assert.throws(() => buildOpenVexDocument({ ...AFFECTED, product: {} }, OPTS), /product/);
  });
});

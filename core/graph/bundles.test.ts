/**
 * Edge bundles: which edges are selected and why, the 512 cap and the stable (bundle_reason, edge_id) order,
 * bundle_id recomputed with an independent sorted-key serialiser, revocation, and refusal of bundles that
 * were changed or name edges the graph does not have.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import {
  bundleBytes,
  bundleId,
  checkBundleAgainstGraph,
  EdgeBundleError,
  makeBundles,
  parseBundle,
  revokeEdges,
  selectBundleEdges,
  type EdgeBundle,
} from "./bundles.ts";
import { RICHGRAPH_SCHEMA, type RichGraphBody } from "./model.ts";
import { finalizeGraph } from "./richgraph.ts";
import { appGraph, edge, fn, sha } from "./test-helpers.ts";

/** JSON with object keys sorted: equal to RFC 8785 for the ASCII strings and short decimals used here. */
function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

function throwsBundle(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EdgeBundleError, `expected an EdgeBundleError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  });
}

function withRuntime(): ReturnType<typeof appGraph> & { rt: ReturnType<typeof edge> } {
  const app = appGraph();
  const rt = edge(app.n.main, app.n.parse, "runtime", [sha("stack-1"), sha("stack-2")], 1);
  app.body.edges.push(rt);
  return { ...app, rt };
}

describe("selectBundleEdges and makeBundles", () => {
  const { body, n, e, rt } = withRuntime();
  const g = finalizeGraph(body);

  it("selects runtime, init-root, third-party and disputed edges, one reason each, sorted", () => {
    const sel = selectBundleEdges(g, { disputed: [e.deadVuln.id, rt.id] });
    assert.deepEqual(
      sel.map((s) => [s.bundle_reason, s.edge.id]),
      [
        // disputed wins over runtime-hit for rt; the rest by reason name, then edge id.
        ...[e.deadVuln.id, rt.id].sort().map((id) => ["disputed", id]),
        ["init-root", e.initCtor.id],
        ["third-party", e.mainMemcpy.id],
      ],
    );
    assert.deepEqual(
      selectBundleEdges(g).map((s) => s.bundle_reason),
      ["init-root", "runtime-hit", "third-party"],
    );
    assert.deepEqual(
      selectBundleEdges(g, { reasons: ["runtime-hit"] }).map((s) => s.edge.id),
      [rt.id],
    );
    throwsBundle(
      () => selectBundleEdges(g, { disputed: ["e:" + "0".repeat(32)] }),
      "BUNDLE_UNKNOWN_EDGE",
      "disputed",
    );
  });

  it("builds one bundle per reason with SHA-256 evidence, callee digest and purl; bundle_id by hand", () => {
    const bundles = makeBundles(g);
    assert.deepEqual(
      bundles.map((b) => b.bundle_reason),
      ["init-root", "runtime-hit", "third-party"],
    );
    const tp = bundles[2]!;
    assert.deepEqual(tp.edges, [
      {
        edge_id: e.mainMemcpy.id,
        from: n.main.id,
        to: n.memcpy.id,
        reason: "third-party",
        confidence: 0.8,
        phase: "static",
        symbol_digest: n.memcpy.symbol_digest,
        purl: "pkg:deb/debian/libc6@2.36",
        evidence_hashes: [`sha256:${sha256("0x1020")}`],
      },
    ]);
    assert.deepEqual(bundles[1]!.edges[0]!.evidence_hashes, [sha("stack-1"), sha("stack-2")].sort());
    for (const b of bundles) {
      const { bundle_id, ...rest } = b;
      assert.equal(bundle_id, `sha256:${sha256(sortedJson(rest))}`);
      assert.equal(Buffer.from(bundleBytes(b)).toString("utf8"), sortedJson(b));
      assert.equal(b.graph_hash, g.graph_hash);
    }
  });

  it("cuts at 512 edges in edge_id order", () => {
    const root = fn("0x10", "root", "cc");
    const callees = Array.from({ length: 1100 }, (_, i) =>
      fn(`0x${(0x1000 + i * 0x100).toString(16)}`, `f${i}`, "cc"),
    );
    const big: RichGraphBody = {
      schema: RICHGRAPH_SCHEMA,
      analyzer: { name: "t", version: "1", arch: [] },
      policy_hash: sha("p"),
      inputs: [],
      nodes: [root, ...callees],
      edges: callees.map((c, i) => edge(root, c, "runtime", [sha(`s${i}`)], 1)),
      roots: [{ node: root.id, reason: "main" }],
    };
    const bg = finalizeGraph(big);
    const bundles = makeBundles(bg);
    assert.deepEqual(
      bundles.map((b) => b.edges.length),
      [512, 512, 76],
    );
    const all = bundles.flatMap((b) => b.edges.map((x) => x.edge_id));
    assert.deepEqual(all, bg.edges.map((x) => x.id).sort());
    assert.equal(new Set(bundles.map((b) => b.bundle_id)).size, 3);
  });
});

describe("revokeEdges", () => {
  const { body, e } = withRuntime();
  const g = finalizeGraph(body);

  it("makes a disputed bundle with the edges revoked, carrying a base bundle's edges over", () => {
    const r = revokeEdges(g, [e.helperVuln.id]);
    assert.equal(r.bundle_reason, "disputed");
    assert.deepEqual(
      r.edges.map((x) => [x.edge_id, x.revoked]),
      [[e.helperVuln.id, true]],
    );
    const base = makeBundles(g, { reasons: ["third-party"] })[0]!;
    const both = revokeEdges(g, [e.helperVuln.id], base);
    assert.deepEqual(
      both.edges.map((x) => [x.edge_id, x.revoked]),
      [
        [e.helperVuln.id, true],
        [e.mainMemcpy.id, undefined],
      ].sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
    );
    assert.equal(both.bundle_id, bundleId(both));
  });

  it("refuses unknown edges and a base bundle of another graph", () => {
    throwsBundle(() => revokeEdges(g, ["e:" + "1".repeat(32)]), "BUNDLE_UNKNOWN_EDGE", "edgeIds[0]");
    const other: EdgeBundle = {
      ...revokeEdges(g, [e.helperVuln.id]),
      graph_hash: `blake3:${"0".repeat(64)}`,
    };
    throwsBundle(() => revokeEdges(g, [e.helperVuln.id], other), "BUNDLE_MALFORMED", "graph_hash");
  });
});

describe("parseBundle and checkBundleAgainstGraph", () => {
  const { body, e, n } = withRuntime();
  const g = finalizeGraph(body);
  const b = revokeEdges(g, [e.helperVuln.id, e.mainParse.id]);
  const text = Buffer.from(bundleBytes(b)).toString("utf8");

  it("round-trips", () => {
    assert.deepEqual(parseBundle(bundleBytes(b), "b.json"), b);
    checkBundleAgainstGraph(b, g, "b.json");
  });

  it("refuses a changed edge with both ids in the message", () => {
    const changed = text.replace('"confidence":0.9', '"confidence":0.5');
    assert.notEqual(changed, text);
    const rest: Record<string, unknown> = JSON.parse(changed) as EdgeBundle & Record<string, unknown>;
    delete rest["bundle_id"];
    const got = `sha256:${sha256(sortedJson(rest))}`;
    throwsBundle(
      () => parseBundle(Buffer.from(changed), "b.json"),
      "BUNDLE_ID_MISMATCH",
      "b.json: bundle_id",
      b.bundle_id,
      got,
    );
  });

  it("refuses unsorted edges, bad fields and too many edges, naming the field", () => {
    const doc = JSON.parse(text) as EdgeBundle;
    throwsBundle(
      () => parseBundle(Buffer.from(JSON.stringify({ ...doc, edges: [...doc.edges].reverse() })), "b.json"),
      "BUNDLE_MALFORMED",
      "edges[1].edge_id",
    );
    throwsBundle(
      () =>
        parseBundle(
          Buffer.from(JSON.stringify({ ...doc, edges: [{ ...doc.edges[0], revoked: false }] })),
          "b.json",
        ),
      "BUNDLE_MALFORMED",
      "edges[0].revoked",
    );
    const many = Array.from({ length: 513 }, () => doc.edges[0]);
    throwsBundle(
      () => parseBundle(Buffer.from(JSON.stringify({ ...doc, edges: many })), "b.json"),
      "BUNDLE_LIMIT",
      "513",
    );
  });

  it("refuses a bundle naming an edge the graph does not have, or with another from/to", () => {
    const ghost = edge(n.vuln, n.main);
    const forged = { ...b, edges: [{ ...b.edges[0]!, edge_id: ghost.id, from: ghost.from, to: ghost.to }] };
    const sealed = { ...forged, bundle_id: bundleId(forged) };
    assert.deepEqual(parseBundle(bundleBytes(sealed), "f.json"), sealed);
    throwsBundle(
      () => {
        checkBundleAgainstGraph(sealed, g, "f.json");
      },
      "BUNDLE_UNKNOWN_EDGE",
      "f.json: edges[0].edge_id",
      ghost.id,
    );
    const moved = { ...b, edges: [{ ...b.edges[0]!, to: n.dead.id }] };
    throwsBundle(
      () => {
        checkBundleAgainstGraph(moved, g, "m.json");
      },
      "BUNDLE_UNKNOWN_EDGE",
      "edges[0].to",
    );
  });
});

/**
 * Reachability and traces on hand-built graphs whose answers are worked out on paper (in the comments).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import { RICHGRAPH_SCHEMA, type GraphNode, type RichGraphBody } from "./model.ts";
import { finalizeGraph } from "./richgraph.ts";
import { appGraph, edge, fn, sha } from "./test-helpers.ts";
import { edgeListHash, explainTraces, reachable, resolveSinks, shortestTraces } from "./traces.ts";

describe("reachable", () => {
  const { body, n, e } = appGraph();
  const g = finalizeGraph(body);

  it("is everything but dead", () => {
    const want = [n.main, n.parse, n.helper, n.vuln, n.init, n.ctor, n.system, n.memcpy]
      .map((x) => x.id)
      .sort();
    assert.deepEqual([...reachable(g)].sort(), want);
  });

  it("loses vuln when helper → vuln is dropped (dead → vuln does not help: dead is unreachable)", () => {
    const r = reachable(g, { dropEdges: new Set([e.helperVuln.id]) });
    assert.ok(!r.has(n.vuln.id));
    assert.ok(r.has(n.helper.id));
    assert.equal(r.size, 7);
  });

  it("loses parse, helper and vuln when main → parse is dropped", () => {
    const r = reachable(g, { dropEdges: new Set([e.mainParse.id]) });
    assert.deepEqual(
      [n.parse, n.helper, n.vuln].map((x) => r.has(x.id)),
      [false, false, false],
    );
  });
});

describe("shortestTraces", () => {
  const { body, n, e } = appGraph();
  const g = finalizeGraph(body);

  it("gives main → parse → helper → vuln, with the edge list hash recomputed by hand", () => {
    const [t] = shortestTraces(g, ["vuln"]);
    assert.ok(t !== undefined);
    assert.equal(t.root, n.main.id);
    assert.deepEqual(t.nodes, [n.main.id, n.parse.id, n.helper.id, n.vuln.id]);
    assert.deepEqual(t.edges, [e.mainParse.id, e.parseHelper.id, e.helperVuln.id]);
    const json = `["${e.mainParse.id}","${e.parseHelper.id}","${e.helperVuln.id}"]`;
    assert.equal(t.edge_list_hash, `sha256:${createHash("sha256").update(json).digest("hex")}`);
    assert.equal(edgeListHash(t.edges), t.edge_list_hash);
  });

  it("resolves sinks by node id or symbol, leaves out unreachable and unknown ones, roots trace to themselves", () => {
    const traces = shortestTraces(g, [n.system.id, "dead", "nope", "main"]);
    assert.deepEqual(
      traces.map((t) => t.sink),
      [n.main.id, n.system.id].sort(),
    );
    const main = traces.find((t) => t.sink === n.main.id);
    assert.deepEqual(main?.nodes, [n.main.id]);
    assert.deepEqual(main?.edges, []);
    const sys = traces.find((t) => t.sink === n.system.id);
    assert.deepEqual(sys?.nodes, [n.init.id, n.ctor.id, n.system.id]);
    assert.deepEqual(resolveSinks(g, ["nope"]).get("nope"), []);
  });

  it("returns nothing for vuln once helper → vuln is dropped", () => {
    assert.deepEqual(shortestTraces(g, ["vuln"], { dropEdges: new Set([e.helperVuln.id]) }), []);
  });
});

/**
 * The diamond (build "bb"; ids fn:bb:0x10 < 0x20 < 0x30 < 0x40 < 0x50 < 0x60 < 0x70):
 *
 *   r1(0x10) ─▶ a(0x30) ─▶ s(0x70)        roots: r1, r2
 *   r1       ─▶ b(0x40) ─▶ s
 *   a        ─▶ b
 *   r2(0x20) ─▶ c(0x50) ─▶ d(0x60) ─▶ s
 *   a ─runtime▶ s                          (a second edge a → s, another reason)
 *
 * Simple root → s paths by length: 2: r1 a s (direct), r1 a s (runtime), r1 b s; 3: r1 a b s, r2 c d s.
 * Shortest: BFS from r1 first, r1's out-edges by target id (a before b), a's by (target, edge id).
 */
function diamond(): { body: RichGraphBody; v: Record<string, GraphNode> } {
  const v = {
    r1: fn("0x10", "r1", "bb"),
    r2: fn("0x20", "r2", "bb"),
    a: fn("0x30", "a", "bb"),
    b: fn("0x40", "b", "bb"),
    c: fn("0x50", "c", "bb"),
    d: fn("0x60", "d", "bb"),
    s: fn("0x70", "sink", "bb"),
  };
  const edges = [
    edge(v.r1, v.a),
    edge(v.r1, v.b),
    edge(v.a, v.b),
    edge(v.a, v.s),
    edge(v.a, v.s, "runtime", [sha("stack")], 1),
    edge(v.b, v.s),
    edge(v.r2, v.c),
    edge(v.c, v.d),
    edge(v.d, v.s),
  ];
  return {
    v,
    body: {
      schema: RICHGRAPH_SCHEMA,
      analyzer: { name: "t", version: "1", arch: ["x86_64"] },
      policy_hash: sha("p"),
      inputs: [],
      nodes: Object.values(v),
      edges,
      roots: [
        { node: v.r2.id, reason: "exported" },
        { node: v.r1.id, reason: "main" },
      ],
    },
  };
}

describe("explainTraces (Yen's k shortest simple paths)", () => {
  const { body, v } = diamond();
  const g = finalizeGraph(body);
  const path = (...xs: GraphNode[]): string[] => xs.map((x) => x.id);
  const ab = (x: GraphNode, y: GraphNode, reason: "direct-call" | "runtime" = "direct-call"): string =>
    edge(x, y, reason).id;

  it("lists the five paths in (length, node ids, edge ids) order", () => {
    const traces = explainTraces(g, v.s!.id, 10);
    const aToS = [ab(v.a!, v.s!), ab(v.a!, v.s!, "runtime")].sort();
    assert.deepEqual(
      traces.map((t) => t.nodes),
      [
        path(v.r1!, v.a!, v.s!),
        path(v.r1!, v.a!, v.s!),
        path(v.r1!, v.b!, v.s!),
        path(v.r1!, v.a!, v.b!, v.s!),
        path(v.r2!, v.c!, v.d!, v.s!),
      ],
    );
    assert.deepEqual(
      traces.slice(0, 2).map((t) => t.edges[1]),
      aToS,
    );
    assert.equal(new Set(traces.map((t) => t.edge_list_hash)).size, 5);
    for (const t of traces) assert.equal(t.edge_list_hash, edgeListHash(t.edges));
  });

  it("starts with shortestTraces' trace and honours k and dropped edges", () => {
    const [first] = shortestTraces(g, ["sink"]);
    assert.deepEqual(explainTraces(g, v.s!.id, 1), [first]);
    assert.equal(explainTraces(g, v.s!.id).length, 5);
    assert.equal(explainTraces(g, v.s!.id, 3).length, 3);
    // Without r1's edges only r2 c d s is left.
    const drop = new Set([ab(v.r1!, v.a!), ab(v.r1!, v.b!)]);
    assert.deepEqual(
      explainTraces(g, v.s!.id, 5, { dropEdges: drop }).map((t) => t.nodes),
      [path(v.r2!, v.c!, v.d!, v.s!)],
    );
    assert.deepEqual(explainTraces(g, "fn:bb:0x999"), []);
  });
});

/**
 * richgraph-v1: canonical order and hash (BLAKE3 cross-checked with @noble/hashes, a second implementation),
 * determinism under shuffled input, duplicate merging, referential integrity, parsing untrusted bytes, and
 * runtime edges from agent stacks (evidence hashes recomputed here from hand-written canonical JSON).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import { edgeId, type RichGraphBody } from "./model.ts";
import {
  addressResolver,
  finalizeGraph,
  GraphError,
  graphBodyBytes,
  graphBytes,
  mergeRuntimeEdges,
  parseGraph,
  stackEvidenceHash,
  stacksFromRecording,
  type RecordedStack,
} from "./richgraph.ts";
import { appGraph, BID, edge, sha, shuffled } from "./test-helpers.ts";

const ids = (xs: readonly { id: string }[]): string[] => xs.map((x) => x.id);
const sortedCopy = (xs: readonly string[]): string[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

function throwsGraph(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GraphError, `expected a GraphError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  });
}

describe("finalizeGraph", () => {
  it("sorts everything and hashes the canonical body with BLAKE3 (checked against @noble/hashes)", () => {
    const { body } = appGraph();
    const g = finalizeGraph(body);
    assert.deepEqual(ids(g.nodes), sortedCopy(ids(body.nodes)));
    assert.deepEqual(ids(g.edges), sortedCopy(ids(body.edges)));
    assert.deepEqual(
      g.roots.map((r) => r.node),
      sortedCopy(body.roots.map((r) => r.node)),
    );
    assert.deepEqual(
      g.inputs.map((i) => i.file),
      ["/lib/libc.so.6", "/usr/bin/app"],
    );
    const bytes = graphBodyBytes(g);
    // The body bytes are JSON without graph_hash, keys sorted (RFC 8785): check by hand on the first keys.
    const text = Buffer.from(bytes).toString("utf8");
    assert.ok(text.startsWith('{"analyzer":{"arch":["x86_64"],"name":"stella","version":"0.1.0"},"edges":['));
    assert.ok(!text.includes("graph_hash"));
    assert.equal(g.graph_hash, `blake3:${bytesToHex(nobleBlake3(bytes))}`);
    // graphBytes = whole graph + "\n", and parses back to the same graph.
    const file = graphBytes(g);
    assert.equal(file[file.length - 1], 0x0a);
    assert.deepEqual(parseGraph(file, "g.json"), g);
  });

  it("gives identical bytes and hash for shuffled input (nodes, edges, roots, inputs, evidence)", () => {
    const { body } = appGraph();
    const want = graphBytes(finalizeGraph(body));
    for (let seed = 1; seed <= 20; seed++) {
      const s: RichGraphBody = {
        ...body,
        analyzer: { ...body.analyzer, arch: shuffled(["x86_64", "x86_64"], seed) },
        inputs: shuffled(body.inputs, seed),
        nodes: shuffled(body.nodes, seed + 100),
        edges: shuffled(body.edges, seed + 200).map((e) => ({ ...e, evidence: shuffled(e.evidence, seed) })),
        roots: shuffled([...body.roots, ...body.roots], seed + 300),
      };
      assert.deepEqual(graphBytes(finalizeGraph(s)), want, `seed ${seed}`);
    }
  });

  it("merges duplicate edges: evidence union (sorted, 16 smallest), max confidence", () => {
    const { body, n } = appGraph();
    const many = Array.from({ length: 20 }, (_, i) => `0x${(0x1300 + i).toString(16)}`);
    const dupA = edge(n.helper, n.vuln, "direct-call", ["0x1220", ...many.slice(0, 10)], 0.5);
    const dupB = edge(n.helper, n.vuln, "direct-call", ["0x1210", ...many.slice(8)], 0.7);
    const g = finalizeGraph({ ...body, edges: [...body.edges, dupA, dupB] });
    const merged = g.edges.filter((e) => e.id === edgeId(n.helper.id, n.vuln.id, "direct-call"));
    assert.equal(merged.length, 1);
    const all = sortedCopy([...new Set(["0x1210", "0x1220", ...many])]);
    assert.equal(all.length, 22);
    assert.deepEqual(merged[0]?.evidence, all.slice(0, 16));
    assert.equal(merged[0]?.confidence, 0.9);
    assert.equal(g.edges.length, body.edges.length);
  });

  it("a static and a runtime edge between the same pair are two edges (the reason is part of the id)", () => {
    const { body, n } = appGraph();
    const rt = edge(n.main, n.parse, "runtime", [sha("stack")], 1);
    const g = finalizeGraph({ ...body, edges: [...body.edges, rt] });
    assert.equal(g.edges.length, body.edges.length + 1);
    assert.notEqual(rt.id, edgeId(n.main.id, n.parse.id, "direct-call"));
  });

  it("refuses dangling edges and roots, naming them", () => {
    const { body, n } = appGraph();
    const ghost = { ...n.vuln, id: "fn:aabbccdd:0x9999" };
    const bad = edge(n.main, ghost);
    throwsGraph(
      () => finalizeGraph({ ...body, edges: [...body.edges, bad] }),
      "GRAPH_REFERENCE",
      bad.id,
      ghost.id,
      ".to",
    );
    throwsGraph(
      () => finalizeGraph({ ...body, roots: [...body.roots, { node: ghost.id, reason: "exported" }] }),
      "GRAPH_REFERENCE",
      "roots[2].node",
      ghost.id,
    );
  });

  it("refuses an edge whose id is not edgeId(from, to, reason), two different nodes with one id", () => {
    const { body, n } = appGraph();
    const e = { ...edge(n.main, n.parse), reason: "plt" as const };
    throwsGraph(() => finalizeGraph({ ...body, edges: [e] }), "GRAPH_MALFORMED", "edges[0].id");
    throwsGraph(
      () => finalizeGraph({ ...body, nodes: [...body.nodes, { ...n.main, symbol: "other" }] }),
      "GRAPH_DUPLICATE",
      n.main.id,
    );
  });
});

describe("parseGraph", () => {
  const { body } = appGraph();
  const g = finalizeGraph(body);
  const text = Buffer.from(graphBytes(g)).toString("utf8");

  it("refuses a changed body with both hashes in the message", () => {
    const tampered = text.replace('"symbol":"helper"', '"symbol":"helpeR"');
    assert.notEqual(tampered, text);
    const other = finalizeGraph({
      ...body,
      nodes: body.nodes.map((x) => (x.symbol === "helper" ? { ...x, symbol: "helpeR" } : x)),
    });
    throwsGraph(
      () => parseGraph(Buffer.from(tampered), "g.json"),
      "GRAPH_HASH_MISMATCH",
      "g.json",
      "graph_hash",
      g.graph_hash,
      other.graph_hash,
    );
  });

  it("accepts a bare body only against an expected hash", () => {
    const bare = graphBodyBytes(g);
    assert.deepEqual(parseGraph(bare, "b", { expectHash: g.graph_hash }), g);
    throwsGraph(() => parseGraph(bare, "b"), "GRAPH_MALFORMED", "b: graph_hash: missing");
    throwsGraph(
      () => parseGraph(bare, "b", { expectHash: `blake3:${"0".repeat(64)}` }),
      "GRAPH_HASH_MISMATCH",
    );
  });

  it("refuses unsorted lists, duplicates, bad types, over-long strings and too much evidence, naming file and field", () => {
    const doc = JSON.parse(text) as Record<string, unknown> & {
      nodes: unknown[];
      edges: { evidence: string[] }[];
    };
    const with_ = (patch: (d: typeof doc) => void): Buffer => {
      const d = structuredClone(doc);
      patch(d);
      return Buffer.from(JSON.stringify(d));
    };
    throwsGraph(
      () =>
        parseGraph(
          with_((d) => d.nodes.reverse()),
          "f.json",
        ),
      "GRAPH_NOT_CANONICAL",
      "f.json: nodes",
    );
    throwsGraph(
      () =>
        parseGraph(
          with_((d) => d.nodes.push(d.nodes[0])),
          "f.json",
        ),
      "GRAPH_DUPLICATE",
      "nodes[9]",
    );
    throwsGraph(
      () =>
        parseGraph(
          with_((d) => (d["policy_hash"] = 7)),
          "f.json",
        ),
      "GRAPH_MALFORMED",
      "f.json: policy_hash: expected a string",
    );
    throwsGraph(
      () =>
        parseGraph(
          with_((d) => ((d.nodes[0] as Record<string, unknown>)["symbol"] = "x".repeat(20_000))),
          "f.json",
        ),
      "GRAPH_LIMIT",
      "nodes[0].symbol",
      "16384",
    );
    const seventeen = Array.from({ length: 17 }, (_, i) => `0x${(0x100 + i).toString(16)}`);
    throwsGraph(
      () =>
        parseGraph(
          with_((d) => ((d.edges[0] as { evidence: string[] }).evidence = seventeen)),
          "f.json",
        ),
      "GRAPH_LIMIT",
      "edges[0].evidence",
      "16",
    );
    throwsGraph(() => parseGraph(Buffer.from("{"), "f.json"), "GRAPH_MALFORMED", "f.json: (document)");
  });
});

describe("mergeRuntimeEdges", () => {
  const { body, n, e } = appGraph();
  // Frames leaf first, as `stella agent record --format json` prints them.
  const nat = (symbol: string | undefined, fileOffset: number): Record<string, unknown> =>
    symbol === undefined
      ? { kind: "native", buildId: BID, fileOffset }
      : { kind: "native", buildId: BID, fileOffset, symbol, offset: 4 };
  const recording = {
    window: { startUnixMs: 1, endUnixMs: 2 },
    hz: 49,
    endedEarly: null,
    samples: [
      {
        pid: 1,
        comm: "app",
        count: 3,
        attribution: {},
        frames: [nat("vuln", 0x304), nat("helper", 0x214), nat("parse", 0x114), nat("main", 0x14)],
      },
      {
        pid: 1,
        comm: "app",
        count: 1,
        attribution: {},
        frames: [
          nat("helper", 0x218),
          nat("parse", 0x118),
          { kind: "kernel", symbol: "x", offset: 0 },
          nat("main", 0x18),
        ],
      },
      {
        pid: 1,
        comm: "app",
        count: 1,
        attribution: {},
        frames: [nat(undefined, 0x308), nat("dead", 0x404), { kind: "unresolved", reason: "no-mapping" }],
      },
    ],
    stats: {},
  };
  const stacks: RecordedStack[] = stacksFromRecording(recording, "rec.json");

  // The evidence hash by hand: RFC 8785 of the frame list is keys in code-unit order, no spaces.
  const handFrame = (f: Record<string, unknown>): string =>
    f["kind"] === "native"
      ? `{"buildId":"${BID}","fileOffset":${f["fileOffset"] as number},"kind":"native"${f["symbol"] === undefined ? "" : `,"offset":4,"symbol":"${f["symbol"] as string}"`}}`
      : f["kind"] === "kernel"
        ? '{"kind":"kernel","offset":0,"symbol":"x"}'
        : '{"kind":"unresolved","reason":"no-mapping"}';
  const handHash = (frames: Record<string, unknown>[]): string =>
    `sha256:${createHash("sha256")
      .update(`[${frames.map(handFrame).join(",")}]`)
      .digest("hex")}`;
  const [h0, h1, h2] = recording.samples.map((s) => handHash(s.frames));

  it("hashes each stack's canonical frame list", () => {
    assert.equal(stackEvidenceHash(stacks[0]!), h0);
    assert.equal(stackEvidenceHash(stacks[2]!), h2);
  });

  it("adds a runtime edge per adjacent resolved caller → callee pair, evidence = the distinct stacks", () => {
    const merged = finalizeGraph(mergeRuntimeEdges(body, stacks));
    const runtime = merged.edges.filter((x) => x.reason === "runtime");
    const want = new Map([
      [edgeId(n.helper.id, n.vuln.id, "runtime"), [h0]],
      [edgeId(n.parse.id, n.helper.id, "runtime"), sortedCopy([h0!, h1!])],
      [edgeId(n.main.id, n.parse.id, "runtime"), [h0]],
    ]);
    // Stack 1's kernel frame breaks main → parse; stack 2's vuln frame has no symbol (default resolver).
    assert.deepEqual(sortedCopy(ids(runtime)), sortedCopy([...want.keys()]));
    for (const r of runtime) {
      assert.deepEqual(r.evidence, want.get(r.id));
      assert.equal(r.confidence, 1);
      assert.equal(r.phase, "runtime");
    }
    // The static edges are still there, unchanged.
    assert.deepEqual(
      merged.edges.find((x) => x.id === e.mainParse.id),
      e.mainParse,
    );
  });

  it("resolves symbol-less frames with a resolver callback (file offset → address → function)", () => {
    // The app's text: file offset x maps to address 0x1000 + x.
    const resolver = addressResolver(body, (b, off) => (b === BID ? 0x1000n + BigInt(off) : undefined));
    const merged = mergeRuntimeEdges(body, stacks, { resolver });
    const deadVuln = merged.edges.find((x) => x.id === edgeId(n.dead.id, n.vuln.id, "runtime"));
    assert.deepEqual(deadVuln?.evidence, [h2]);
    // Out of every function's range: not resolved.
    assert.equal(resolver(BID, 0x3000, undefined), undefined);
    assert.equal(resolver(BID, 0x13f, undefined), n.parse.id);
    assert.equal(resolver(BID, 0x140, undefined), undefined);
  });

  it("refuses a malformed recording, naming the field", () => {
    throwsGraph(
      () => stacksFromRecording({ samples: [{ frames: [{ kind: "native", fileOffset: -1 }] }] }, "rec.json"),
      "GRAPH_MALFORMED",
      "rec.json: samples[0].frames[0].fileOffset",
    );
  });
});

// Reachability over a richgraph: what the roots reach (optionally with edges dropped, e.g. revoked ones),
// the shortest root → sink trace per sink, and up to k shortest distinct traces for `explain`.
import { createHash } from "node:crypto";

import { canonicalJson } from "../canonical-json.ts";
import type { GraphEdge, RichGraphBody } from "./model.ts";
import { compareStrings } from "./richgraph.ts";

export interface ReachOptions {
  /** Edge ids to ignore (revoked, quarantined). */
  dropEdges?: ReadonlySet<string>;
}

/** A root → sink path. `edge_list_hash` is what a FuncProof's `traces[]` carries. */
export interface Trace {
  sink: string;
  root: string;
  /** Node ids, root first, sink last. */
  nodes: string[];
  /** Edge ids, nodes.length - 1 of them. */
  edges: string[];
  /** See edgeListHash(). */
  edge_list_hash: string;
}

/** "sha256:" + SHA-256 of the RFC 8785 JSON of the edge id list (a JSON array of strings, in path order). */
export function edgeListHash(edges: readonly string[]): string {
  return `sha256:${createHash("sha256").update(canonicalJson(edges)).digest("hex")}`;
}

interface Adjacency {
  /** Out-edges per node, sorted by (to, edge id). */
  out: Map<string, GraphEdge[]>;
  /** Root node ids, sorted and unique. */
  roots: string[];
}

function adjacency(graph: RichGraphBody, drop?: ReadonlySet<string>): Adjacency {
  const out = new Map<string, GraphEdge[]>();
  for (const e of graph.edges) {
    if (drop?.has(e.id) === true) continue;
    let list = out.get(e.from);
    if (list === undefined) out.set(e.from, (list = []));
    list.push(e);
  }
  for (const list of out.values())
    list.sort((a, b) => compareStrings(a.to, b.to) || compareStrings(a.id, b.id));
  const roots = [...new Set(graph.roots.map((r) => r.node))].sort(compareStrings);
  return { out, roots };
}

/** Node ids reachable from the roots (roots included), following edges not in opts.dropEdges. */
export function reachable(graph: RichGraphBody, opts: ReachOptions = {}): Set<string> {
  const { out, roots } = adjacency(graph, opts.dropEdges);
  const seen = new Set<string>(roots);
  const queue = [...roots];
  for (let i = 0; i < queue.length; i++) {
    for (const e of out.get(queue[i] as string) ?? []) {
      if (!seen.has(e.to)) {
        seen.add(e.to);
        queue.push(e.to);
      }
    }
  }
  return seen;
}

/**
 * Sink names to node ids: a string that is a node id means that node; otherwise every node whose symbol is
 * that string (functions and externals alike). Unknown names map to [].
 */
export function resolveSinks(graph: RichGraphBody, sinks: readonly string[]): Map<string, string[]> {
  const ids = new Set(graph.nodes.map((n) => n.id));
  const bySymbol = new Map<string, string[]>();
  for (const n of graph.nodes) {
    let list = bySymbol.get(n.symbol);
    if (list === undefined) bySymbol.set(n.symbol, (list = []));
    list.push(n.id);
  }
  const out = new Map<string, string[]>();
  for (const s of sinks) {
    out.set(s, ids.has(s) ? [s] : [...(bySymbol.get(s) ?? [])].sort(compareStrings));
  }
  return out;
}

interface Path {
  nodes: string[];
  edges: string[];
}

/**
 * BFS from `sources` (visited in the given order) to `target`, skipping blocked nodes and edges; out-edges
 * are followed in (target id, edge id) order and a node's parent is the first edge that discovers it. So of
 * all shortest paths, the one returned is fixed by the content alone.
 */
function bfsPath(
  adj: Adjacency,
  sources: readonly string[],
  target: string,
  blockedNodes: ReadonlySet<string> = new Set(),
  blockedEdges: ReadonlySet<string> = new Set(),
): Path | undefined {
  const parent = new Map<string, GraphEdge | null>();
  const queue: string[] = [];
  for (const s of sources) {
    if (blockedNodes.has(s) || parent.has(s)) continue;
    parent.set(s, null);
    queue.push(s);
  }
  let found = parent.has(target);
  for (let i = 0; i < queue.length && !found; i++) {
    for (const e of adj.out.get(queue[i] as string) ?? []) {
      if (parent.has(e.to) || blockedNodes.has(e.to) || blockedEdges.has(e.id)) continue;
      parent.set(e.to, e);
      if (e.to === target) {
        found = true;
        break;
      }
      queue.push(e.to);
    }
  }
  if (!found) return undefined;
  const nodes = [target];
  const edges: string[] = [];
  for (let e = parent.get(target); e !== null && e !== undefined; e = parent.get(e.from)) {
    nodes.push(e.from);
    edges.push(e.id);
  }
  return { nodes: nodes.reverse(), edges: edges.reverse() };
}

function toTrace(sink: string, p: Path): Trace {
  return {
    sink,
    root: p.nodes[0] as string,
    nodes: p.nodes,
    edges: p.edges,
    edge_list_hash: edgeListHash(p.edges),
  };
}

/**
 * For each sink node (see resolveSinks) reachable from the roots, the shortest root → sink trace: one BFS
 * from all roots at once (roots in id order), out-edges in (target id, edge id) order, a node's parent the
 * first edge to discover it. A root that is itself a sink gives a one-node trace with no edges. Sorted by
 * sink id, each sink once; unreachable and unknown sinks are left out.
 */
export function shortestTraces(
  graph: RichGraphBody,
  sinks: readonly string[],
  opts: ReachOptions = {},
): Trace[] {
  const adj = adjacency(graph, opts.dropEdges);
  const targets = [...new Set([...resolveSinks(graph, sinks).values()].flat())].sort(compareStrings);
  const out: Trace[] = [];
  for (const t of targets) {
    const p = bfsPath(adj, adj.roots, t);
    if (p !== undefined) out.push(toTrace(t, p));
  }
  return out;
}

const SUPER = "\u0000roots";

function comparePaths(a: Path, b: Path): number {
  if (a.edges.length !== b.edges.length) return a.edges.length - b.edges.length;
  for (let i = 0; i < a.nodes.length; i++) {
    const d = compareStrings(a.nodes[i] as string, b.nodes[i] as string);
    if (d !== 0) return d;
  }
  for (let i = 0; i < a.edges.length; i++) {
    const d = compareStrings(a.edges[i] as string, b.edges[i] as string);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Up to `k` (default 5, at most 64) shortest distinct root → sink traces to one sink node, for `explain`:
 * Yen's k-shortest simple paths (J. Y. Yen, 1971) over unit-weight edges, with a virtual source joined to
 * every root so that paths from different roots compete. "Distinct" means a different edge-id list (two
 * edges with different reasons between the same pair give two traces); paths are simple (no repeated node).
 * Spur paths use the same deterministic BFS as shortestTraces; candidates are taken in order of (length,
 * node ids, edge ids). The first trace equals shortestTraces' trace for that sink.
 */
export function explainTraces(graph: RichGraphBody, sink: string, k = 5, opts: ReachOptions = {}): Trace[] {
  const limit = Math.max(0, Math.min(64, Math.floor(k)));
  const base = adjacency(graph, opts.dropEdges);
  if (limit === 0 || !graph.nodes.some((n) => n.id === sink)) return [];
  // The virtual source's edges are "\u0000root:<id>", which sort before any real edge id.
  const out = new Map(base.out);
  out.set(
    SUPER,
    base.roots.map((r) => ({
      id: `\u0000root:${r}`,
      from: SUPER,
      to: r,
      reason: "direct-call",
      confidence: 1,
      phase: "static",
      evidence: [],
    })),
  );
  const adj: Adjacency = { out, roots: [SUPER] };
  const first = bfsPath(adj, [SUPER], sink);
  if (first === undefined) return [];
  const found: Path[] = [first];
  const candidates: Path[] = [];
  const key = (p: Path): string => p.edges.join("\n");
  const known = new Set([key(first)]);
  while (found.length < limit) {
    const last = found[found.length - 1] as Path;
    for (let i = 0; i + 1 < last.nodes.length; i++) {
      const spur = last.nodes[i] as string;
      const rootNodes = last.nodes.slice(0, i + 1);
      const rootEdges = last.edges.slice(0, i);
      const blockedEdges = new Set<string>();
      for (const p of found) {
        if (
          p.edges.length > i &&
          key({ nodes: [], edges: p.edges.slice(0, i) }) === key({ nodes: [], edges: rootEdges })
        ) {
          blockedEdges.add(p.edges[i] as string);
        }
      }
      const blockedNodes = new Set(rootNodes.slice(0, -1));
      const tail = bfsPath(adj, [spur], sink, blockedNodes, blockedEdges);
      if (tail === undefined) continue;
      const cand: Path = {
        nodes: [...rootNodes, ...tail.nodes.slice(1)],
        edges: [...rootEdges, ...tail.edges],
      };
      if (known.has(key(cand))) continue;
      known.add(key(cand));
      candidates.push(cand);
    }
    if (candidates.length === 0) break;
    candidates.sort(comparePaths);
    found.push(candidates.shift() as Path);
  }
  return found.map((p) => toTrace(sink, { nodes: p.nodes.slice(1), edges: p.edges.slice(1) }));
}

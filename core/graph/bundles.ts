// Edge bundles (Level 1 of the seed "Hybrid Reachability Attestation"): selected edges of one graph, at most
// 512 per bundle, each bundle signed on its own so an edge can be proved or revoked without re-signing the
// graph. Inside bundles every hash is SHA-256 (the graph hash stays BLAKE3).
import { createHash } from "node:crypto";

import { canonicalJson } from "../canonical-json.ts";
import { StellaError } from "../errors.ts";
import { EDGE_REASONS, MAX_BUNDLE_EDGES, type EdgeReason, type GraphEdge, type RichGraph } from "./model.ts";
import { compareStrings } from "./richgraph.ts";
import { describe, isObject } from "../json-shape.ts";

export const EDGE_BUNDLE_SCHEMA = "richgraph-edges-v1";

/** Why an edge is in a bundle; when several apply, the first in this order wins. */
export type BundleReason = "disputed" | "runtime-hit" | "init-root" | "third-party";
export const BUNDLE_REASONS: readonly BundleReason[] = [
  "disputed",
  "runtime-hit",
  "init-root",
  "third-party",
];

export interface BundleEdge {
  edge_id: string;
  from: string;
  to: string;
  reason: EdgeReason;
  confidence: number;
  phase: "static" | "runtime";
  /** The callee's symbol_digest ("sha256:<hex>"); absent when the callee has none (external nodes). */
  symbol_digest?: string;
  /** The callee's purl, when known. */
  purl?: string;
  /** See evidenceHashes(). */
  evidence_hashes: string[];
  /** Present (true) only on edges this bundle revokes. */
  revoked?: true;
}

export interface EdgeBundle {
  schema: typeof EDGE_BUNDLE_SCHEMA;
  graph_hash: string;
  bundle_reason: BundleReason;
  /** See bundleId(). */
  bundle_id: string;
  /** Sorted by edge_id, unique, 1..512. */
  edges: BundleEdge[];
}

export type BundleErrorCode =
  "BUNDLE_MALFORMED" | "BUNDLE_LIMIT" | "BUNDLE_ID_MISMATCH" | "BUNDLE_UNKNOWN_EDGE";

export class EdgeBundleError extends StellaError<BundleErrorCode> {
  readonly file: string;
  readonly field: string;
  constructor(code: BundleErrorCode, file: string, field: string, why: string) {
    super(code, `${file}: ${field}: ${why}`);
    this.file = file;
    this.field = field;
  }
}

export interface BundleCriteria {
  /** Edge ids contested (Unknowns registry, policy quarantine): bundle_reason `disputed`. */
  disputed?: Iterable<string>;
  /** Which reasons to emit (default: all four). */
  reasons?: readonly BundleReason[];
}

export interface SelectedEdge {
  edge: GraphEdge;
  bundle_reason: BundleReason;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const SHA256_REF = /^sha256:[0-9a-f]{64}$/;

/**
 * An edge's evidence as SHA-256 references: runtime evidence already is ("sha256:" of the stack record) and is
 * kept; any other entry (a static call-site address "0x…") becomes "sha256:" + SHA-256 of its UTF-8 text.
 * Sorted and unique.
 */
export function evidenceHashes(edge: GraphEdge): string[] {
  const out = edge.evidence.map((e) => (SHA256_REF.test(e) ? e : `sha256:${sha256Hex(e)}`));
  return [...new Set(out)].sort(compareStrings);
}

/**
 * The edges that go into bundles, each with one bundle_reason, sorted by (bundle_reason, edge_id). An edge
 * is listed once, under the first reason that applies: `disputed` (its id is in criteria.disputed),
 * `runtime-hit` (reason `runtime`), `init-root` (reason `init-root`), `third-party` (reason `third-party`,
 * or caller and callee both have a purl and they differ). Disputed ids that are not edges of the graph are
 * an error (BUNDLE_UNKNOWN_EDGE): a quarantine must name real edges.
 */
export function selectBundleEdges(graph: RichGraph, criteria: BundleCriteria = {}): SelectedEdge[] {
  const wanted = new Set(criteria.reasons ?? BUNDLE_REASONS);
  const disputed = new Set(criteria.disputed ?? []);
  const ids = new Set(graph.edges.map((e) => e.id));
  for (const id of [...disputed].sort(compareStrings)) {
    if (!ids.has(id)) {
      throw new EdgeBundleError(
        "BUNDLE_UNKNOWN_EDGE",
        "<criteria>",
        "disputed",
        `${id} is not an edge of ${graph.graph_hash}`,
      );
    }
  }
  const purl = new Map(graph.nodes.map((n) => [n.id, n.purl]));
  const out: SelectedEdge[] = [];
  for (const edge of graph.edges) {
    const from = purl.get(edge.from);
    const to = purl.get(edge.to);
    const applies: Record<BundleReason, boolean> = {
      disputed: disputed.has(edge.id),
      "runtime-hit": edge.reason === "runtime",
      "init-root": edge.reason === "init-root",
      "third-party": edge.reason === "third-party" || (from !== undefined && to !== undefined && from !== to),
    };
    const reason = BUNDLE_REASONS.find((r) => applies[r]);
    if (reason !== undefined && wanted.has(reason)) out.push({ edge, bundle_reason: reason });
  }
  return out.sort(
    (a, b) => compareStrings(a.bundle_reason, b.bundle_reason) || compareStrings(a.edge.id, b.edge.id),
  );
}

function bundleEdge(edge: GraphEdge, nodes: Map<string, RichGraph["nodes"][number]>): BundleEdge {
  const callee = nodes.get(edge.to);
  const out: BundleEdge = {
    edge_id: edge.id,
    from: edge.from,
    to: edge.to,
    reason: edge.reason,
    confidence: edge.confidence,
    phase: edge.phase,
    evidence_hashes: evidenceHashes(edge),
  };
  if (callee?.symbol_digest !== undefined) out.symbol_digest = callee.symbol_digest;
  if (callee?.purl !== undefined) out.purl = callee.purl;
  return out;
}

/**
 * bundle_id = "sha256:" + SHA-256 of the RFC 8785 canonical JSON of the bundle object without its
 * `bundle_id` field (schema, graph_hash, bundle_reason, edges). The CAS file is the canonical JSON of the
 * whole bundle (bundle_id included), stored under the bundle_id's hex.
 */
export function bundleId(bundle: Omit<EdgeBundle, "bundle_id"> | EdgeBundle): string {
  const rest: Record<string, unknown> = { ...bundle };
  delete rest["bundle_id"];
  return `sha256:${sha256Hex(canonicalJson(rest))}`;
}

function seal(graphHash: string, reason: BundleReason, edges: BundleEdge[]): EdgeBundle {
  const sorted = [...edges].sort((a, b) => compareStrings(a.edge_id, b.edge_id));
  const body = {
    schema: EDGE_BUNDLE_SCHEMA,
    graph_hash: graphHash,
    bundle_reason: reason,
    edges: sorted,
  } as const;
  return { ...body, bundle_id: bundleId(body) };
}

/**
 * The bundles for a graph: selectBundleEdges' list, in its (bundle_reason, edge_id) order, cut into bundles
 * of one reason and at most 512 edges each (the first bundle of a reason holds its 512 smallest edge ids).
 */
export function makeBundles(graph: RichGraph, criteria: BundleCriteria = {}): EdgeBundle[] {
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const out: EdgeBundle[] = [];
  let reason: BundleReason | undefined;
  let batch: BundleEdge[] = [];
  const flush = (): void => {
    if (reason !== undefined && batch.length > 0) out.push(seal(graph.graph_hash, reason, batch));
    batch = [];
  };
  for (const s of selectBundleEdges(graph, criteria)) {
    if (s.bundle_reason !== reason || batch.length === MAX_BUNDLE_EDGES) {
      flush();
      reason = s.bundle_reason;
    }
    batch.push(bundleEdge(s.edge, nodes));
  }
  flush();
  return out;
}

/**
 * A `disputed` bundle revoking `edgeIds` of `graph`: every listed edge is present with `revoked: true`. With
 * `base` (an earlier bundle of the same graph), its edges are carried over (keeping their own revoked flags)
 * so one signed bundle can both keep and revoke. Refused: an id that is not an edge of the graph, a base for
 * another graph, more than 512 edges in the result.
 */
export function revokeEdges(graph: RichGraph, edgeIds: readonly string[], base?: EdgeBundle): EdgeBundle {
  if (base !== undefined && base.graph_hash !== graph.graph_hash) {
    throw new EdgeBundleError(
      "BUNDLE_MALFORMED",
      "<base bundle>",
      "graph_hash",
      `the base bundle is for ${base.graph_hash}, not ${graph.graph_hash}`,
    );
  }
  const edges = new Map(graph.edges.map((e) => [e.id, e]));
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const out = new Map<string, BundleEdge>();
  for (const e of base?.edges ?? []) out.set(e.edge_id, { ...e });
  edgeIds.forEach((id, i) => {
    const edge = edges.get(id);
    if (edge === undefined) {
      throw new EdgeBundleError(
        "BUNDLE_UNKNOWN_EDGE",
        "<revocation>",
        `edgeIds[${i}]`,
        `${id} is not an edge of ${graph.graph_hash}`,
      );
    }
    out.set(id, { ...(out.get(id) ?? bundleEdge(edge, nodes)), revoked: true });
  });
  if (out.size === 0) throw new EdgeBundleError("BUNDLE_MALFORMED", "<revocation>", "edgeIds", "no edges");
  if (out.size > MAX_BUNDLE_EDGES) {
    throw new EdgeBundleError(
      "BUNDLE_LIMIT",
      "<revocation>",
      "edges",
      `${out.size} edges, over the bundle limit of ${MAX_BUNDLE_EDGES}`,
    );
  }
  return seal(graph.graph_hash, "disputed", [...out.values()]);
}

/** The bundle file: RFC 8785 canonical JSON (bundle_id included), no trailing newline. */
export function bundleBytes(bundle: EdgeBundle): Uint8Array {
  return Buffer.from(canonicalJson(bundle), "utf8");
}

/** Largest bundle file read: 512 edges with 16 evidence hashes each and long ids fit well within it. */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;
const MAX_STRING = 16_384;

/**
 * Parses UNTRUSTED bundle bytes: shape, limits (≤ 512 edges, ≤ 16 evidence hashes per edge, string lengths),
 * edges sorted by edge_id and unique, and bundle_id recomputed (BUNDLE_ID_MISMATCH names both). Errors name
 * the file and the field. Whether the edges are the graph's is checkBundleAgainstGraph's job.
 */
export function parseBundle(bytes: Uint8Array, file: string): EdgeBundle {
  const fail = (code: BundleErrorCode, field: string, why: string): never => {
    throw new EdgeBundleError(code, file, field, why);
  };
  if (bytes.length > MAX_BUNDLE_BYTES) {
    fail("BUNDLE_LIMIT", "(document)", `${bytes.length} bytes, over the limit of ${MAX_BUNDLE_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    fail(
      "BUNDLE_MALFORMED",
      "(document)",
      `not a UTF-8 JSON document: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
  const str = (o: Record<string, unknown>, k: string, field: string, re?: RegExp): string => {
    const v = o[k];
    if (typeof v !== "string")
      return fail("BUNDLE_MALFORMED", field, `expected a string, got ${describe(v)}`);
    if (v.length > MAX_STRING)
      fail("BUNDLE_LIMIT", field, `${v.length} characters, over the limit of ${MAX_STRING}`);
    if (re !== undefined && !re.test(v))
      fail("BUNDLE_MALFORMED", field, `${JSON.stringify(v)} does not match ${String(re)}`);
    return v;
  };
  if (!isObject(value))
    return fail("BUNDLE_MALFORMED", "(document)", `expected an object, got ${describe(value)}`);
  if (value["schema"] !== EDGE_BUNDLE_SCHEMA) {
    fail(
      "BUNDLE_MALFORMED",
      "schema",
      `expected ${JSON.stringify(EDGE_BUNDLE_SCHEMA)}, got ${JSON.stringify(value["schema"]) ?? "nothing"}`,
    );
  }
  const graph_hash = str(value, "graph_hash", "graph_hash", /^blake3:[0-9a-f]{64}$/);
  const reasonText = str(value, "bundle_reason", "bundle_reason");
  const bundle_reason = BUNDLE_REASONS.find((r) => r === reasonText);
  if (bundle_reason === undefined) {
    return fail(
      "BUNDLE_MALFORMED",
      "bundle_reason",
      `${JSON.stringify(reasonText)} is not one of ${BUNDLE_REASONS.join(", ")}`,
    );
  }
  const bundle_id = str(value, "bundle_id", "bundle_id", SHA256_REF);
  const rawEdges = value["edges"];
  if (!Array.isArray(rawEdges))
    return fail("BUNDLE_MALFORMED", "edges", `expected an array, got ${describe(rawEdges)}`);
  if (rawEdges.length === 0) fail("BUNDLE_MALFORMED", "edges", "empty");
  if (rawEdges.length > MAX_BUNDLE_EDGES) {
    fail("BUNDLE_LIMIT", "edges", `${rawEdges.length} edges, over the bundle limit of ${MAX_BUNDLE_EDGES}`);
  }
  const edges = rawEdges.map((raw: unknown, i): BundleEdge => {
    const f = `edges[${i}]`;
    if (!isObject(raw)) return fail("BUNDLE_MALFORMED", f, `expected an object, got ${describe(raw)}`);
    const reason = str(raw, "reason", `${f}.reason`);
    if (!(EDGE_REASONS as readonly string[]).includes(reason)) {
      fail(
        "BUNDLE_MALFORMED",
        `${f}.reason`,
        `${JSON.stringify(reason)} is not one of ${EDGE_REASONS.join(", ")}`,
      );
    }
    const phase = str(raw, "phase", `${f}.phase`, /^(static|runtime)$/) as "static" | "runtime";
    const confidence = raw["confidence"];
    if (typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1)) {
      fail("BUNDLE_MALFORMED", `${f}.confidence`, `expected a number in [0, 1], got ${String(confidence)}`);
    }
    const ev = raw["evidence_hashes"];
    if (!Array.isArray(ev))
      return fail("BUNDLE_MALFORMED", `${f}.evidence_hashes`, `expected an array, got ${describe(ev)}`);
    if (ev.length > 16)
      fail("BUNDLE_LIMIT", `${f}.evidence_hashes`, `${ev.length} entries, over the limit of 16`);
    const out: BundleEdge = {
      edge_id: str(raw, "edge_id", `${f}.edge_id`, /^e:[0-9a-f]{32}$/),
      from: str(raw, "from", `${f}.from`),
      to: str(raw, "to", `${f}.to`),
      reason: reason as EdgeReason,
      confidence: confidence as number,
      phase,
      evidence_hashes: ev.map((e: unknown, j) => {
        if (typeof e !== "string" || !SHA256_REF.test(e)) {
          return fail("BUNDLE_MALFORMED", `${f}.evidence_hashes[${j}]`, "expected sha256:<64 hex>");
        }
        return e;
      }),
    };
    if (raw["symbol_digest"] !== undefined)
      out.symbol_digest = str(raw, "symbol_digest", `${f}.symbol_digest`, SHA256_REF);
    if (raw["purl"] !== undefined) out.purl = str(raw, "purl", `${f}.purl`);
    if (raw["revoked"] !== undefined) {
      if (raw["revoked"] !== true) fail("BUNDLE_MALFORMED", `${f}.revoked`, "expected true or absent");
      out.revoked = true;
    }
    const prev = i > 0 ? (rawEdges[i - 1] as Record<string, unknown>)["edge_id"] : undefined;
    if (typeof prev === "string" && !(prev < out.edge_id)) {
      fail("BUNDLE_MALFORMED", `${f}.edge_id`, "edges are not sorted by edge_id, or an edge is listed twice");
    }
    return out;
  });
  const bundle: EdgeBundle = { schema: EDGE_BUNDLE_SCHEMA, graph_hash, bundle_reason, bundle_id, edges };
  const computed = bundleId(bundle);
  if (computed !== bundle_id) {
    fail(
      "BUNDLE_ID_MISMATCH",
      "bundle_id",
      `the file states ${bundle_id}, its content hashes to ${computed}`,
    );
  }
  return bundle;
}

/**
 * Checks a parsed bundle against the graph it names: same graph_hash, and every edge_id an edge of the graph
 * with the same from, to and reason (BUNDLE_UNKNOWN_EDGE naming the bundle edge otherwise).
 */
export function checkBundleAgainstGraph(bundle: EdgeBundle, graph: RichGraph, file: string): void {
  if (bundle.graph_hash !== graph.graph_hash) {
    throw new EdgeBundleError(
      "BUNDLE_UNKNOWN_EDGE",
      file,
      "graph_hash",
      `the bundle is for ${bundle.graph_hash}, not ${graph.graph_hash}`,
    );
  }
  const edges = new Map(graph.edges.map((e) => [e.id, e]));
  bundle.edges.forEach((be, i) => {
    const e = edges.get(be.edge_id);
    if (e === undefined) {
      throw new EdgeBundleError(
        "BUNDLE_UNKNOWN_EDGE",
        file,
        `edges[${i}].edge_id`,
        `${be.edge_id} is not an edge of ${graph.graph_hash}`,
      );
    }
    for (const k of ["from", "to", "reason"] as const) {
      if (be[k] !== e[k]) {
        throw new EdgeBundleError(
          "BUNDLE_UNKNOWN_EDGE",
          file,
          `edges[${i}].${k}`,
          `edge ${be.edge_id}: the bundle says ${JSON.stringify(be[k])}, the graph ${JSON.stringify(e[k])}`,
        );
      }
    }
  });
}

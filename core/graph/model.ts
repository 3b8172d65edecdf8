// The reachability graph's data model (richgraph-v1, issue 8; seed "Hybrid Reachability Attestation"): the shapes
// the static call-graph builder produces, runtime edges are merged into, and the canonical serialiser, edge
// bundles, traces and verification read. Identifiers are derived from content, never from input order, so the
// same binaries give byte-identical graphs.
import { createHash } from "node:crypto";

export const RICHGRAPH_SCHEMA = "richgraph-v1";
export const RICHGRAPH_PREDICATE_TYPE = "stellaops.richgraph.v1";
export const EDGE_BUNDLE_PREDICATE_TYPE = "stellaops.richgraph-edges.v1";
/** Most edges in one edge bundle (the seed's cap). */
export const MAX_BUNDLE_EDGES = 512;

/**
 * - `function`: a function defined in one of the analysed binaries;
 * - `external`: a symbol a binary imports that no analysed binary defines (e.g. libc when only the app is
 *   analysed);
 * - `synthetic`: a root that is not a function (`<init>`: the loader running `.preinit_array`, `.init_array`
 *   and `DT_INIT` of one binary).
 */
export type NodeKind = "function" | "external" | "synthetic";

export interface GraphNode {
  /** See nodeId(). */
  id: string;
  kind: NodeKind;
  /** Lower-case hex GNU build id of the binary defining (function, synthetic) or importing (external) it; "" when none. */
  build_id: string;
  /** Path of that binary as given (or inside the image). */
  file: string;
  /** Symbol name (mangled as in the symbol table); `<init>` for the synthetic loader root. */
  symbol: string;
  /** Functions: [start, end) virtual addresses as "0x…" hex strings. */
  address?: { start: string; end: string };
  /** Functions: "sha256:<hex>" of the function's bytes (FuncProof's function sha256). */
  symbol_digest?: string;
  /** Package URL of the binary's package, when known (e.g. from dpkg status). */
  purl?: string;
}

/**
 * - `direct-call`: a `call rel32` (or tail `jmp rel32`) to another function, decoded from the code;
 * - `plt`: a call through the PLT to an imported symbol (to the defining function when it is analysed, else to
 *   the external node);
 * - `init-root`: from a binary's `<init>` node to a function in `.preinit_array`/`.init_array`/`DT_INIT`;
 * - `runtime`: a caller → callee pair observed in the agents' stacks;
 * - `third-party`: a call into a function of another package (purl differs from the caller's).
 */
export type EdgeReason = "direct-call" | "plt" | "init-root" | "runtime" | "third-party";
export const EDGE_REASONS: readonly EdgeReason[] = [
  "direct-call",
  "plt",
  "init-root",
  "runtime",
  "third-party",
];

export interface GraphEdge {
  /** See edgeId(). */
  id: string;
  from: string;
  to: string;
  reason: EdgeReason;
  /** 0..1: how sure the analyser is that this call can happen. */
  confidence: number;
  /** Where the edge was found: static analysis or the agents' stacks. */
  phase: "static" | "runtime";
  /**
   * Static: call-site addresses ("0x…", sorted, at most 16). Runtime: "sha256:<hex>" of the stack records it
   * was seen in (sorted, at most 16).
   */
  evidence: string[];
}

export type RootReason = "main" | "exported" | "init" | "entry";

export interface GraphRoot {
  node: string;
  reason: RootReason;
}

export interface RichGraphBody {
  schema: typeof RICHGRAPH_SCHEMA;
  analyzer: { name: string; version: string; arch: string[] };
  /** "sha256:<hex>" of the canonical build options (sinks, bundle criteria), so a replay can check them. */
  policy_hash: string;
  /** The binaries analysed: file, build id, sha256, purl. Sorted by file. */
  inputs: { file: string; build_id: string; sha256: string; purl?: string }[];
  /** Sorted by id. */
  nodes: GraphNode[];
  /** Sorted by id. */
  edges: GraphEdge[];
  /** Sorted by (node, reason). */
  roots: GraphRoot[];
}

/** The signed document: the body and `graph_hash` = "blake3:<hex>" of the body's RFC 8785 canonical bytes. */
export interface RichGraph extends RichGraphBody {
  graph_hash: string;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Node ids: `fn:<build_id>:<start>` for functions (a symbol name is not unique: two static functions may share
 * one), `ext:<build_id>:<symbol>` for externals, `init:<build_id>` for a binary's loader root. A binary without
 * a build id uses "sha256-<first 16 hex of its sha256>" in place of it.
 */
export function nodeId(kind: NodeKind, binary: string, symbolOrStart: string): string {
  switch (kind) {
    case "function":
      return `fn:${binary}:${symbolOrStart}`;
    case "external":
      return `ext:${binary}:${symbolOrStart}`;
    case "synthetic":
      return `init:${binary}`;
  }
}

/** Edge ids: "e:" + the first 32 hex of sha256(from \n to \n reason): stable across builds and input order. */
export function edgeId(from: string, to: string, reason: EdgeReason): string {
  return `e:${sha256Hex(`${from}\n${to}\n${reason}`).slice(0, 32)}`;
}

// The richgraph-v1 document (issue 8, Level 0 of the seed "Hybrid Reachability Attestation"): validation,
// the canonical order, duplicate merging, referential integrity, graph_hash, parsing untrusted bytes, and
// merging the agents' runtime stacks in as `runtime` edges.
//
// graph_hash = "blake3:" + hex BLAKE3-256 of the RFC 8785 canonical JSON of the body (every field but
// graph_hash). Those body bytes are also what the CAS stores under reachability/graphs/{hex} (cas.ts) and
// what the graph envelope's sha256 subject digest is over (attest.ts).
import { createHash } from "node:crypto";

import { canonicalBytes, canonicalJson } from "../canonical-json.ts";
import { StellaError } from "../errors.ts";
import { Blake3 } from "../hash/digest.ts";
import {
  EDGE_REASONS,
  RICHGRAPH_SCHEMA,
  edgeId,
  type EdgeReason,
  type GraphEdge,
  type GraphNode,
  type GraphRoot,
  type NodeKind,
  type RichGraph,
  type RichGraphBody,
  type RootReason,
} from "./model.ts";
import { describe, isObject } from "../json-shape.ts";

// One hasher for the module: hash-wasm instantiates its WASM asynchronously, once; hashing is then synchronous.
const BLAKE3 = await Blake3.create();

export type GraphErrorCode =
  | "GRAPH_MALFORMED"
  | "GRAPH_LIMIT"
  | "GRAPH_REFERENCE"
  | "GRAPH_DUPLICATE"
  | "GRAPH_HASH_MISMATCH"
  | "GRAPH_NOT_CANONICAL";

/** Every graph error names the file (or "<graph>" for an in-memory body) and the field. */
export class GraphError extends StellaError<GraphErrorCode> {
  readonly file: string;
  readonly field: string;
  constructor(code: GraphErrorCode, file: string, field: string, why: string) {
    super(code, `${file}: ${field}: ${why}`);
    this.file = file;
    this.field = field;
  }
}

/** Limits parseGraph (and finalizeGraph) enforce: a graph over them is refused, naming the limit. */
export const GRAPH_LIMITS = {
  /** Largest serialised graph read. */
  maxBytes: 256 * 1024 * 1024,
  maxNodes: 2_000_000,
  maxEdges: 8_000_000,
  maxRoots: 2_000_000,
  maxInputs: 65_536,
  /** Longest string anywhere (symbol names: C++ mangled names can be long). */
  maxString: 16_384,
  /** Most evidence entries per edge (the model's cap). */
  maxEvidence: 16,
} as const;

const NODE_KINDS: readonly NodeKind[] = ["function", "external", "synthetic"];
const ROOT_REASONS: readonly RootReason[] = ["main", "exported", "init", "entry"];
const NODE_ID_PREFIX: Readonly<Record<NodeKind, string>> = {
  function: "fn:",
  external: "ext:",
  synthetic: "init:",
};
const HEX_ADDR = /^0x[0-9a-f]+$/;
const SHA256_REF = /^sha256:[0-9a-f]{64}$/;
const BLAKE3_REF = /^blake3:[0-9a-f]{64}$/;
const BUILD_ID = /^([0-9a-f]*|sha256-[0-9a-f]{16})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const EDGE_ID = /^e:[0-9a-f]{32}$/;

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// ---------------------------------------------------------------------------------------------------------
// Shape validation of untrusted values (parseGraph) and of in-memory bodies (finalizeGraph).

class Checker {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  fail(code: GraphErrorCode, field: string, why: string): never {
    throw new GraphError(code, this.file, field, why);
  }
  object(value: unknown, field: string): Record<string, unknown> {
    if (!isObject(value)) this.fail("GRAPH_MALFORMED", field, `expected an object, got ${describe(value)}`);
    return value;
  }
  array(value: unknown, field: string, max: number, limitName: string): unknown[] {
    if (!Array.isArray(value))
      this.fail("GRAPH_MALFORMED", field, `expected an array, got ${describe(value)}`);
    if (value.length > max) {
      this.fail("GRAPH_LIMIT", field, `${value.length} entries, over the ${limitName} limit of ${max}`);
    }
    return value;
  }
  string(value: unknown, field: string, pattern?: RegExp, patternName?: string): string {
    if (typeof value !== "string")
      this.fail("GRAPH_MALFORMED", field, `expected a string, got ${describe(value)}`);
    if (value.length > GRAPH_LIMITS.maxString) {
      this.fail(
        "GRAPH_LIMIT",
        field,
        `${value.length} characters, over the string limit of ${GRAPH_LIMITS.maxString}`,
      );
    }
    if (!value.isWellFormed()) this.fail("GRAPH_MALFORMED", field, "not a well-formed Unicode string");
    if (pattern !== undefined && !pattern.test(value)) {
      this.fail(
        "GRAPH_MALFORMED",
        field,
        `${JSON.stringify(value)} is not ${patternName ?? String(pattern)}`,
      );
    }
    return value;
  }
  nonEmpty(value: unknown, field: string): string {
    const s = this.string(value, field);
    if (s === "") this.fail("GRAPH_MALFORMED", field, "empty");
    return s;
  }
  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
    const s = this.string(value, field);
    if (!(allowed as readonly string[]).includes(s)) {
      this.fail("GRAPH_MALFORMED", field, `${JSON.stringify(s)} is not one of ${allowed.join(", ")}`);
    }
    return s as T;
  }
}

function checkNode(c: Checker, value: unknown, field: string): GraphNode {
  const o = c.object(value, field);
  const kind = c.oneOf(o["kind"], `${field}.kind`, NODE_KINDS);
  const id = c.nonEmpty(o["id"], `${field}.id`);
  if (!id.startsWith(NODE_ID_PREFIX[kind])) {
    c.fail("GRAPH_MALFORMED", `${field}.id`, `a ${kind} node's id must start with ${NODE_ID_PREFIX[kind]}`);
  }
  const node: GraphNode = {
    id,
    kind,
    build_id: c.string(o["build_id"], `${field}.build_id`, BUILD_ID, "lower-case hex or sha256-<16 hex>"),
    file: c.string(o["file"], `${field}.file`),
    symbol: c.string(o["symbol"], `${field}.symbol`),
  };
  if (o["address"] !== undefined) {
    const a = c.object(o["address"], `${field}.address`);
    const start = c.string(a["start"], `${field}.address.start`, HEX_ADDR, "a 0x… lower-case hex address");
    const end = c.string(a["end"], `${field}.address.end`, HEX_ADDR, "a 0x… lower-case hex address");
    if (BigInt(end) < BigInt(start))
      c.fail("GRAPH_MALFORMED", `${field}.address`, `end ${end} < start ${start}`);
    node.address = { start, end };
  }
  if (o["symbol_digest"] !== undefined) {
    node.symbol_digest = c.string(
      o["symbol_digest"],
      `${field}.symbol_digest`,
      SHA256_REF,
      "sha256:<64 hex>",
    );
  }
  if (o["purl"] !== undefined) node.purl = c.nonEmpty(o["purl"], `${field}.purl`);
  return node;
}

function checkEdge(c: Checker, value: unknown, field: string): GraphEdge {
  const o = c.object(value, field);
  const from = c.nonEmpty(o["from"], `${field}.from`);
  const to = c.nonEmpty(o["to"], `${field}.to`);
  const reason = c.oneOf(o["reason"], `${field}.reason`, EDGE_REASONS);
  const id = c.string(o["id"], `${field}.id`, EDGE_ID, "e:<32 hex>");
  const want = edgeId(from, to, reason);
  if (id !== want) {
    c.fail("GRAPH_MALFORMED", `${field}.id`, `${id} is not the id of (from, to, reason), which is ${want}`);
  }
  const confidence = o["confidence"];
  if (typeof confidence !== "number" || !Number.isFinite(confidence) || confidence < 0 || confidence > 1) {
    c.fail(
      "GRAPH_MALFORMED",
      `${field}.confidence`,
      `expected a number in [0, 1], got ${String(confidence)}`,
    );
  }
  const phase = c.oneOf(o["phase"], `${field}.phase`, ["static", "runtime"] as const);
  const evidence = c
    .array(o["evidence"], `${field}.evidence`, Number.MAX_SAFE_INTEGER, "evidence")
    .map((e, i) =>
      c.string(
        e,
        `${field}.evidence[${i}]`,
        phase === "runtime" ? SHA256_REF : HEX_ADDR,
        evidenceForm(phase),
      ),
    );
  return { id, from, to, reason, confidence, phase, evidence };
}

function evidenceForm(phase: "static" | "runtime"): string {
  return phase === "runtime" ? "sha256:<64 hex> (a stack record)" : "a 0x… call-site address";
}

function checkRoot(c: Checker, value: unknown, field: string): GraphRoot {
  const o = c.object(value, field);
  return {
    node: c.nonEmpty(o["node"], `${field}.node`),
    reason: c.oneOf(o["reason"], `${field}.reason`, ROOT_REASONS),
  };
}

function checkInput(c: Checker, value: unknown, field: string): RichGraphBody["inputs"][number] {
  const o = c.object(value, field);
  const input: RichGraphBody["inputs"][number] = {
    file: c.nonEmpty(o["file"], `${field}.file`),
    build_id: c.string(o["build_id"], `${field}.build_id`, BUILD_ID, "lower-case hex or sha256-<16 hex>"),
    sha256: c.string(o["sha256"], `${field}.sha256`, SHA256_HEX, "64 lower-case hex digits"),
  };
  if (o["purl"] !== undefined) input.purl = c.nonEmpty(o["purl"], `${field}.purl`);
  return input;
}

/** Checks shape and limits of a body (unknown fields are dropped); order and references are not checked here. */
function checkBody(value: unknown, file: string): RichGraphBody {
  const c = new Checker(file);
  const o = c.object(value, "(document)");
  if (o["schema"] !== RICHGRAPH_SCHEMA) {
    c.fail(
      "GRAPH_MALFORMED",
      "schema",
      `expected ${JSON.stringify(RICHGRAPH_SCHEMA)}, got ${JSON.stringify(o["schema"]) ?? "nothing"}`,
    );
  }
  const an = c.object(o["analyzer"], "analyzer");
  const analyzer = {
    name: c.nonEmpty(an["name"], "analyzer.name"),
    version: c.string(an["version"], "analyzer.version"),
    arch: c
      .array(an["arch"], "analyzer.arch", 64, "architectures")
      .map((a, i) => c.nonEmpty(a, `analyzer.arch[${i}]`)),
  };
  const policy_hash = c.string(o["policy_hash"], "policy_hash", SHA256_REF, "sha256:<64 hex>");
  const inputs = c
    .array(o["inputs"], "inputs", GRAPH_LIMITS.maxInputs, "inputs")
    .map((v, i) => checkInput(c, v, `inputs[${i}]`));
  const nodes = c
    .array(o["nodes"], "nodes", GRAPH_LIMITS.maxNodes, "nodes")
    .map((v, i) => checkNode(c, v, `nodes[${i}]`));
  const edges = c
    .array(o["edges"], "edges", GRAPH_LIMITS.maxEdges, "edges")
    .map((v, i) => checkEdge(c, v, `edges[${i}]`));
  const roots = c
    .array(o["roots"], "roots", GRAPH_LIMITS.maxRoots, "roots")
    .map((v, i) => checkRoot(c, v, `roots[${i}]`));
  return { schema: RICHGRAPH_SCHEMA, analyzer, policy_hash, inputs, nodes, edges, roots };
}

// ---------------------------------------------------------------------------------------------------------
// Canonical order, duplicates, references.

function uniqueSorted(items: readonly string[]): string[] {
  return [...new Set(items)].sort(compareStrings);
}

/**
 * Sorts, merges duplicates and checks references (see finalizeGraph for the rules). `strict`: duplicates
 * and over-long evidence lists are errors (parseGraph: a signed graph is already final) rather than merged.
 */
function normalizeBody(body: RichGraphBody, file: string, strict: boolean): RichGraphBody {
  const c = new Checker(file);
  const dup = (field: string, why: string): void => {
    if (strict) c.fail("GRAPH_DUPLICATE", field, why);
  };

  const inputs = new Map<string, RichGraphBody["inputs"][number]>();
  body.inputs.forEach((input, i) => {
    const prev = inputs.get(input.file);
    if (prev === undefined) inputs.set(input.file, input);
    else if (canonicalJson(prev) !== canonicalJson(input)) {
      c.fail(
        "GRAPH_DUPLICATE",
        `inputs[${i}]`,
        `two different inputs for file ${JSON.stringify(input.file)}`,
      );
    } else dup(`inputs[${i}]`, `file ${JSON.stringify(input.file)} is listed twice`);
  });

  const nodes = new Map<string, GraphNode>();
  body.nodes.forEach((node, i) => {
    const prev = nodes.get(node.id);
    if (prev === undefined) nodes.set(node.id, node);
    else if (canonicalJson(prev) !== canonicalJson(node)) {
      c.fail("GRAPH_DUPLICATE", `nodes[${i}]`, `two different nodes with id ${node.id}`);
    } else dup(`nodes[${i}]`, `node ${node.id} is listed twice`);
  });

  const edges = new Map<string, GraphEdge>();
  body.edges.forEach((edge, i) => {
    if (strict && edge.evidence.length > GRAPH_LIMITS.maxEvidence) {
      c.fail(
        "GRAPH_LIMIT",
        `edges[${i}].evidence`,
        `${edge.evidence.length} entries, over the evidence limit of ${GRAPH_LIMITS.maxEvidence}`,
      );
    }
    if (strict && canonicalJson(edge.evidence) !== canonicalJson(uniqueSorted(edge.evidence))) {
      c.fail("GRAPH_NOT_CANONICAL", `edges[${i}].evidence`, "not sorted and unique");
    }
    if (!nodes.has(edge.from)) {
      c.fail(
        "GRAPH_REFERENCE",
        `edges[${i}].from`,
        `edge ${edge.id}: ${edge.from} is not a node of the graph`,
      );
    }
    if (!nodes.has(edge.to)) {
      c.fail("GRAPH_REFERENCE", `edges[${i}].to`, `edge ${edge.id}: ${edge.to} is not a node of the graph`);
    }
    const prev = edges.get(edge.id);
    if (prev === undefined) {
      edges.set(edge.id, { ...edge, evidence: [...edge.evidence] });
      return;
    }
    dup(`edges[${i}]`, `edge ${edge.id} is listed twice`);
    // Same id ⇒ same (from, to, reason): merge what was observed.
    prev.evidence.push(...edge.evidence);
    prev.confidence = Math.max(prev.confidence, edge.confidence);
    if (edge.phase === "runtime") prev.phase = "runtime";
  });
  for (const edge of edges.values()) {
    edge.evidence = uniqueSorted(edge.evidence).slice(0, GRAPH_LIMITS.maxEvidence);
    if (edge.phase === "runtime" && edge.evidence.some((e) => !SHA256_REF.test(e))) {
      // A static edge merged into a runtime one keeps only the stack hashes: the phase says what evidence is.
      edge.evidence = edge.evidence.filter((e) => SHA256_REF.test(e));
    }
  }

  const roots = new Map<string, GraphRoot>();
  body.roots.forEach((root, i) => {
    if (!nodes.has(root.node)) {
      c.fail(
        "GRAPH_REFERENCE",
        `roots[${i}].node`,
        `root (${root.node}, ${root.reason}): not a node of the graph`,
      );
    }
    const key = `${root.node}\n${root.reason}`;
    if (roots.has(key)) dup(`roots[${i}]`, `root (${root.node}, ${root.reason}) is listed twice`);
    roots.set(key, { node: root.node, reason: root.reason });
  });

  const byKey = <T>(m: Map<string, T>): T[] =>
    [...m.entries()].sort((a, b) => compareStrings(a[0], b[0])).map(([, v]) => v);
  return {
    schema: RICHGRAPH_SCHEMA,
    analyzer: {
      name: body.analyzer.name,
      version: body.analyzer.version,
      arch: uniqueSorted(body.analyzer.arch),
    },
    policy_hash: body.policy_hash,
    inputs: byKey(inputs),
    nodes: byKey(nodes),
    edges: byKey(edges),
    roots: byKey(roots),
  };
}

/** The body of a graph (every field but graph_hash), as a fresh object with only the model's fields. */
export function graphBody(g: RichGraphBody): RichGraphBody {
  return {
    schema: g.schema,
    analyzer: g.analyzer,
    policy_hash: g.policy_hash,
    inputs: g.inputs,
    nodes: g.nodes,
    edges: g.edges,
    roots: g.roots,
  };
}

/** RFC 8785 bytes of the body: what graph_hash is over and what the CAS stores. */
export function graphBodyBytes(g: RichGraphBody): Uint8Array {
  return canonicalBytes(graphBody(g));
}

/** "blake3:<hex>" of bytes. */
export function blake3Ref(bytes: Uint8Array): string {
  return `blake3:${BLAKE3.hex(bytes)}`;
}

/**
 * Validates and canonicalises a body and computes its graph_hash:
 * - shape and limits as parseGraph (GRAPH_LIMITS), unknown fields dropped, edge ids checked against
 *   edgeId(from, to, reason);
 * - inputs sorted by file (two different entries for one file: error; identical repeats: one kept);
 * - nodes sorted by id (two different nodes with one id: error; identical repeats: one kept);
 * - edges sorted by id. Duplicates (same id, hence the same from, to and reason) are merged into one:
 *   evidence = the sorted union (capped at the 16 smallest), confidence = the maximum, phase = `runtime` if
 *   any duplicate was observed at runtime (it then keeps only its sha256 stack evidence), else `static`;
 * - evidence sorted, deduplicated, capped at 16 (the lexicographically smallest);
 * - roots sorted by (node, reason), repeats dropped; analyzer.arch sorted and deduplicated;
 * - every edge's from and to, and every root, must be a node (GRAPH_REFERENCE naming the edge or root).
 */
export function finalizeGraph(body: RichGraphBody): RichGraph {
  const norm = normalizeBody(checkBody(body, "<graph>"), "<graph>", false);
  return { ...norm, graph_hash: blake3Ref(canonicalBytes(norm)) };
}

/** The graph as a file: RFC 8785 canonical JSON of the whole graph (graph_hash included) and "\n". */
export function graphBytes(g: RichGraph): Uint8Array {
  return Buffer.from(`${canonicalJson({ ...graphBody(g), graph_hash: g.graph_hash })}\n`, "utf8");
}

function parseJson(bytes: Uint8Array, file: string): unknown {
  if (bytes.length > GRAPH_LIMITS.maxBytes) {
    throw new GraphError(
      "GRAPH_LIMIT",
      file,
      "(document)",
      `${bytes.length} bytes, over the limit of ${GRAPH_LIMITS.maxBytes}`,
    );
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown;
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new GraphError("GRAPH_MALFORMED", file, "(document)", `not a UTF-8 JSON document: ${why}`);
  }
}

export interface ParseGraphOptions {
  /**
   * The graph_hash the bytes must have: required when they are a bare body (the CAS object, no graph_hash
   * field); when both are present they must agree.
   */
  expectHash?: string;
}

/**
 * Parses UNTRUSTED bytes as a graph (graphBytes output) or a bare body (CAS object): shape and limits
 * (GRAPH_LIMITS; errors name the file and the field), canonical order (a duplicate or unsorted list is
 * refused: a signed graph is final), referential integrity, and graph_hash recomputed from the body and
 * compared with the stated one (GRAPH_HASH_MISMATCH names both).
 */
export function parseGraph(bytes: Uint8Array, file: string, opts: ParseGraphOptions = {}): RichGraph {
  const value = parseJson(bytes, file);
  const body = checkBody(value, file);
  const norm = normalizeBody(body, file, true);
  const bodyJson = canonicalJson(norm);
  if (canonicalJson(body) !== bodyJson) {
    const field = (["inputs", "nodes", "edges", "roots", "analyzer"] as const).find(
      (k) => canonicalJson(body[k]) !== canonicalJson(norm[k]),
    );
    throw new GraphError("GRAPH_NOT_CANONICAL", file, field ?? "(document)", "not in canonical order");
  }
  const computed = blake3Ref(Buffer.from(bodyJson, "utf8"));
  const stated = isObject(value) ? value["graph_hash"] : undefined;
  if (stated !== undefined) {
    const s = new Checker(file).string(stated, "graph_hash", BLAKE3_REF, "blake3:<64 hex>");
    if (s !== computed) {
      throw new GraphError(
        "GRAPH_HASH_MISMATCH",
        file,
        "graph_hash",
        `the file states ${s}, the body hashes to ${computed}`,
      );
    }
  } else if (opts.expectHash === undefined) {
    throw new GraphError("GRAPH_MALFORMED", file, "graph_hash", "missing");
  }
  if (opts.expectHash !== undefined && opts.expectHash !== computed) {
    throw new GraphError(
      "GRAPH_HASH_MISMATCH",
      file,
      "graph_hash",
      `expected ${opts.expectHash}, the body hashes to ${computed}`,
    );
  }
  return { ...norm, graph_hash: computed };
}

// ---------------------------------------------------------------------------------------------------------
// Runtime edges from the agents' stacks.

/** One frame as `stella agent record --format json` prints it (leaf first in `frames`). */
export interface RecordedFrame {
  kind: string;
  buildId?: string;
  fileOffset?: number;
  symbol?: string;
  offset?: number;
  reason?: string;
}

export interface RecordedStack {
  frames: readonly RecordedFrame[];
}

/** Maps a native frame to a graph node id (e.g. file offset → virtual address → function), or undefined. */
export type FrameResolver = (
  buildId: string,
  fileOffset: number,
  symbol: string | undefined,
) => string | undefined;

/**
 * The stacks of a `stella agent record --format json` document (`samples[].frames`). Only the frames are
 * kept; counts, processes and attribution do not change which edges exist. `file` names errors.
 */
export function stacksFromRecording(value: unknown, file: string): RecordedStack[] {
  const c = new Checker(file);
  const o = c.object(value, "(document)");
  return c.array(o["samples"], "samples", Number.MAX_SAFE_INTEGER, "samples").map((s, i) => {
    const so = c.object(s, `samples[${i}]`);
    const frames = c.array(so["frames"], `samples[${i}].frames`, 4096, "frames per stack").map((f, j) => {
      const where = `samples[${i}].frames[${j}]`;
      const fo = c.object(f, where);
      const frame: RecordedFrame = { kind: c.nonEmpty(fo["kind"], `${where}.kind`) };
      if (fo["buildId"] !== undefined) frame.buildId = c.string(fo["buildId"], `${where}.buildId`);
      for (const k of ["fileOffset", "offset"] as const) {
        const v = fo[k];
        if (v === undefined) continue;
        if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
          c.fail(
            "GRAPH_MALFORMED",
            `${where}.${k}`,
            `expected a non-negative integer, got ${JSON.stringify(v)}`,
          );
        }
        frame[k] = v as number;
      }
      if (fo["symbol"] !== undefined) frame.symbol = c.string(fo["symbol"], `${where}.symbol`);
      if (fo["reason"] !== undefined) frame.reason = c.string(fo["reason"], `${where}.reason`);
      return frame;
    });
    return { frames };
  });
}

/** The frame's fields that identify it, in a fixed shape: what a stack's evidence hash is over. */
function canonicalFrame(f: RecordedFrame): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: f.kind };
  for (const k of ["buildId", "fileOffset", "symbol", "offset", "reason"] as const) {
    if (f[k] !== undefined) out[k] = f[k];
  }
  return out;
}

/**
 * "sha256:" + SHA-256 of the RFC 8785 JSON of the stack's frame list (leaf first), each frame reduced to
 * {kind, buildId?, fileOffset?, symbol?, offset?, reason?}: a runtime edge's evidence entry.
 */
export function stackEvidenceHash(stack: RecordedStack): string {
  return `sha256:${sha256Hex(canonicalJson(stack.frames.map(canonicalFrame)))}`;
}

/**
 * The default resolver: the function node of that build id whose symbol is the frame's symbol, when exactly
 * one has it (two static functions may share a name: then the frame is not resolved by symbol).
 */
export function symbolResolver(body: RichGraphBody): FrameResolver {
  const bySymbol = new Map<string, string | null>();
  for (const n of body.nodes) {
    if (n.kind !== "function") continue;
    const key = `${n.build_id}\n${n.symbol}`;
    bySymbol.set(key, bySymbol.has(key) ? null : n.id);
  }
  return (buildId, _fileOffset, symbol) =>
    symbol === undefined ? undefined : (bySymbol.get(`${buildId}\n${symbol}`) ?? undefined);
}

/**
 * A resolver by address: `toAddress` maps (build id, file offset) to a virtual address (the caller knows the
 * binary's program headers or sections), and the function node of that build id whose [start, end) holds it
 * is the answer.
 */
export function addressResolver(
  body: RichGraphBody,
  toAddress: (buildId: string, fileOffset: number) => bigint | undefined,
): FrameResolver {
  const ranges = new Map<string, { start: bigint; end: bigint; id: string }[]>();
  for (const n of body.nodes) {
    if (n.kind !== "function" || n.address === undefined) continue;
    let list = ranges.get(n.build_id);
    if (list === undefined) ranges.set(n.build_id, (list = []));
    list.push({ start: BigInt(n.address.start), end: BigInt(n.address.end), id: n.id });
  }
  for (const list of ranges.values())
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return (buildId, fileOffset) => {
    const list = ranges.get(buildId);
    const addr = list === undefined ? undefined : toAddress(buildId, fileOffset);
    if (list === undefined || addr === undefined) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((list[mid] as { start: bigint }).start <= addr) lo = mid + 1;
      else hi = mid;
    }
    const r = list[lo - 1];
    return r !== undefined && addr >= r.start && addr < r.end ? r.id : undefined;
  };
}

export interface MergeRuntimeOptions {
  /** Tried first for every native frame; the symbol resolver (symbolResolver) is the fallback. */
  resolver?: FrameResolver;
}

/**
 * Adds `runtime` edges observed in the agents' stacks. Frames are leaf first, so for each adjacent pair
 * (frames[i+1] → frames[i]) whose both frames are native and resolve to function nodes of the graph, an edge
 * caller → callee with reason `runtime`, phase `runtime`, confidence 1 and evidence = the stackEvidenceHash
 * of every distinct stack it was seen in (sorted, the 16 smallest kept). A non-native or unresolved frame
 * breaks the chain: no edge is made across it. A static edge between the same pair stays as it is: the
 * runtime edge is separate evidence with its own id. Returns the normalised body (not yet hashed: pass it
 * to finalizeGraph).
 */
export function mergeRuntimeEdges(
  body: RichGraphBody,
  stacks: readonly RecordedStack[],
  opts: MergeRuntimeOptions = {},
): RichGraphBody {
  const bySymbol = symbolResolver(body);
  const functions = new Set(body.nodes.filter((n) => n.kind === "function").map((n) => n.id));
  const resolve = (f: RecordedFrame): string | undefined => {
    if (f.kind !== "native" || f.buildId === undefined || f.buildId === "" || f.fileOffset === undefined) {
      return undefined;
    }
    const id =
      opts.resolver?.(f.buildId, f.fileOffset, f.symbol) ?? bySymbol(f.buildId, f.fileOffset, f.symbol);
    return id !== undefined && functions.has(id) ? id : undefined;
  };
  const added = new Map<string, GraphEdge>();
  for (const stack of stacks) {
    const ids = stack.frames.map(resolve);
    let evidence: string | undefined;
    for (let i = 0; i + 1 < ids.length; i++) {
      const callee = ids[i];
      const caller = ids[i + 1];
      if (callee === undefined || caller === undefined) continue;
      evidence ??= stackEvidenceHash(stack);
      const reason: EdgeReason = "runtime";
      const id = edgeId(caller, callee, reason);
      const prev = added.get(id);
      if (prev === undefined) {
        added.set(id, {
          id,
          from: caller,
          to: callee,
          reason,
          confidence: 1,
          phase: "runtime",
          evidence: [evidence],
        });
      } else if (!prev.evidence.includes(evidence)) prev.evidence.push(evidence);
    }
  }
  return normalizeBody(
    checkBody({ ...graphBody(body), edges: [...body.edges, ...added.values()] }, "<graph>"),
    "<graph>",
    false,
  );
}

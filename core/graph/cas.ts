// The reachability content-addressed store on disk (the seed's layout, under a root directory):
//
//   reachability/graphs/{hex}                       the graph body: RFC 8785 bytes without graph_hash;
//                                                   hex = BLAKE3 of these bytes = graph_hash without "blake3:"
//   reachability/graphs/{hex}.dsse                  the graph's DSSE envelope (canonical JSON)
//   reachability/edges/{graph hex}/{bundle hex}     an edge bundle (canonical JSON, bundle_id included);
//                                                   bundle hex = bundle_id without "sha256:"
//   reachability/edges/{graph hex}/{bundle hex}.dsse  its envelope
//
// (Hex only in names: a ":" is not portable in file names.) Writes are atomic (a temporary file in the same
// directory, then rename) and idempotent (an object already present with the right content is left alone; a
// damaged one is replaced). Reads check the content against the name: a tampered object is CAS_TAMPERED,
// naming the path and both hashes.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { StellaError } from "../errors.ts";
import { envelopeToJson, parseEnvelope, type Envelope } from "../dsse/envelope.ts";
import { bundleBytes, bundleId, MAX_BUNDLE_BYTES, type EdgeBundle } from "./bundles.ts";
import { blake3Ref, graphBodyBytes, GRAPH_LIMITS } from "./richgraph.ts";
import type { RichGraph } from "./model.ts";

export type CasErrorCode = "CAS_IO" | "CAS_MISSING" | "CAS_TAMPERED" | "CAS_BAD_NAME";

export class CasError extends StellaError<CasErrorCode> {
  readonly path: string;
  constructor(code: CasErrorCode, path: string, why: string) {
    super(code, `${path}: ${why}`);
    this.path = path;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function hexOf(ref: string, prefix: "blake3:" | "sha256:", what: string): string {
  const hex = ref.startsWith(prefix) ? ref.slice(prefix.length) : ref;
  if (!HEX64.test(hex))
    throw new CasError("CAS_BAD_NAME", what, `${JSON.stringify(ref)} is not ${prefix}<64 hex>`);
  return hex;
}

/** Paths of the store's objects; hashes may be given with or without their "blake3:"/"sha256:" prefix. */
export const casPaths = {
  graph: (root: string, graphHash: string): string =>
    join(root, "reachability", "graphs", hexOf(graphHash, "blake3:", "graph hash")),
  graphEnvelope: (root: string, graphHash: string): string => `${casPaths.graph(root, graphHash)}.dsse`,
  bundleDir: (root: string, graphHash: string): string =>
    join(root, "reachability", "edges", hexOf(graphHash, "blake3:", "graph hash")),
  bundle: (root: string, graphHash: string, id: string): string =>
    join(casPaths.bundleDir(root, graphHash), hexOf(id, "sha256:", "bundle id")),
  bundleEnvelope: (root: string, graphHash: string, id: string): string =>
    `${casPaths.bundle(root, graphHash, id)}.dsse`,
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Writes `bytes` to `path` atomically; a file already there with the same bytes is left untouched. */
export function writeAtomic(path: string, bytes: Uint8Array): void {
  try {
    if (existsSync(path) && sameBytes(readFileSync(path), bytes)) return;
    const dir = join(path, "..");
    mkdirSync(dir, { recursive: true });
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
    try {
      writeFileSync(tmp, bytes, { flag: "wx", mode: 0o644 });
      renameSync(tmp, path);
    } catch (cause) {
      rmSync(tmp, { force: true });
      throw cause;
    }
  } catch (cause) {
    if (cause instanceof CasError) throw cause;
    throw new CasError(
      "CAS_IO",
      path,
      `cannot write: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
}

function readObject(path: string, max: number): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CasError("CAS_MISSING", path, "not in the store");
    throw new CasError(
      "CAS_IO",
      path,
      `cannot read: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
  if (bytes.length > max)
    throw new CasError("CAS_IO", path, `${bytes.length} bytes, over the limit of ${max}`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Stores the graph body; returns its path. */
export function putGraph(root: string, graph: RichGraph): string {
  const bytes = graphBodyBytes(graph);
  const got = blake3Ref(bytes);
  if (got !== graph.graph_hash) {
    throw new CasError(
      "CAS_TAMPERED",
      casPaths.graph(root, graph.graph_hash),
      `the graph states ${graph.graph_hash}, its body hashes to ${got}: not stored`,
    );
  }
  const path = casPaths.graph(root, graph.graph_hash);
  writeAtomic(path, bytes);
  return path;
}

/** The graph body bytes, checked: BLAKE3 of the bytes must be the name (CAS_TAMPERED names both). */
export function getGraphBytes(root: string, graphHash: string): Uint8Array {
  const path = casPaths.graph(root, graphHash);
  const bytes = readObject(path, GRAPH_LIMITS.maxBytes);
  const want = `blake3:${hexOf(graphHash, "blake3:", "graph hash")}`;
  const got = blake3Ref(bytes);
  if (got !== want)
    throw new CasError("CAS_TAMPERED", path, `content hashes to ${got}, its name says ${want}`);
  return bytes;
}

export function putEnvelope(path: string, env: Envelope): void {
  writeAtomic(path, Buffer.from(envelopeToJson(env), "utf8"));
}

/** Parses the envelope at `path` (shape only: signatures are verify.ts's job). */
export function getEnvelope(path: string): Envelope {
  const bytes = readObject(path, 64 * 1024 * 1024);
  return parseEnvelope(Buffer.from(bytes).toString("utf8"), path);
}

/** Stores a bundle under its graph; returns its path. */
export function putBundle(root: string, bundle: EdgeBundle): string {
  const path = casPaths.bundle(root, bundle.graph_hash, bundle.bundle_id);
  const got = bundleId(bundle);
  if (got !== bundle.bundle_id) {
    throw new CasError(
      "CAS_TAMPERED",
      path,
      `the bundle states ${bundle.bundle_id}, its content hashes to ${got}: not stored`,
    );
  }
  writeAtomic(path, bundleBytes(bundle));
  return path;
}

/**
 * A bundle's bytes, checked: the bundle id recomputed from the content (bundles.ts bundleId: SHA-256 of the
 * canonical JSON without bundle_id) must be the name, and the bytes must be that canonical JSON.
 */
export function getBundleBytes(root: string, graphHash: string, id: string): Uint8Array {
  const path = casPaths.bundle(root, graphHash, id);
  const bytes = readObject(path, MAX_BUNDLE_BYTES);
  const want = `sha256:${hexOf(id, "sha256:", "bundle id")}`;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new CasError("CAS_TAMPERED", path, `not a JSON document, its name says ${want}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CasError("CAS_TAMPERED", path, `not a JSON object, its name says ${want}`);
  }
  const got = bundleId(value as EdgeBundle);
  if (got !== want)
    throw new CasError("CAS_TAMPERED", path, `content hashes to ${got}, its name says ${want}`);
  return bytes;
}

/** Ids ("sha256:<hex>") of the bundles stored for a graph, sorted. */
export function listBundles(root: string, graphHash: string): string[] {
  const dir = casPaths.bundleDir(root, graphHash);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new CasError(
      "CAS_IO",
      dir,
      `cannot list: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
  return names
    .filter((n) => HEX64.test(n))
    .sort()
    .map((n) => `sha256:${n}`);
}

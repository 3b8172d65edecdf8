/**
 * delta-manifest.json: what a delta changes and why it is (or is not) safe, beside delta.bin.
 * RFC 8785 canonical JSON, no clock unless one is injected (`created`): the same inputs give the
 * same bytes. Fields: docs/delta.md. This module builds the manifest (`computeDelta`), parses it
 * (`parseManifest`), cross-checks it against delta.bin (`checkManifestAgainstDelta`) and checks the
 * DSSE envelope signing it (`verifyDeltaEnvelope`). Pure apart from reading the inputs it is given.
 */
import { createHash } from "node:crypto";

import { canonicalJson } from "../canonical-json.ts";
import { parseSignedDocument } from "../dsse/bundle.ts";
import { DsseError, DSSE_VERIFY_FAILURES } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { parseStatement, type Statement } from "../dsse/statement.ts";
import { verifyEnvelope } from "../dsse/verify.ts";
import { StellaError } from "../errors.ts";
import { attestationInputs, entropyInputs, provenanceInputs, type TrustedKey } from "../risk/inputs.ts";
import { parseScoreInputs, type AttestationInputs, type ScoreInputs } from "../risk/score.ts";
import { type ChangedChunk, createDelta, type DeltaParams, type DeltaSummary } from "./create.ts";
import { countOps, type ParsedDelta, parseDelta } from "./format.ts";
import { functionsChanged, type FunctionsChanged } from "./functions.ts";
import { diffEntries, type DeltaArtifactType, type DeltaInput, type PackageRef } from "./inputs.ts";
import { materialsDelta, type MaterialsDelta } from "./materials.ts";

export const DELTA_PREDICATE_TYPE = "stellaops.delta.v1";
export const MANIFEST_SCHEMA = "stellaops.delta-manifest.v1";
export const MANIFEST_FILE = "delta-manifest.json";
export const DELTA_FILE = "delta.bin";
export const ENVELOPE_FILE = "delta.dsse.json";
export const ATTESTATIONS_DIR = "attestations";
/** changed_chunks and entries_delta path lists are cut at these lengths (totals stay exact). */
export const MAX_CHANGED_CHUNKS = 10_000;
export const MAX_LISTED_PATHS = 1000;

export type ManifestErrorCode =
  /** The manifest is not JSON, not canonical, or lacks / mistypes a field. */
  | "MANIFEST_MALFORMED"
  /** The manifest disagrees with delta.bin, the base, an attestation file or the signed predicate. */
  | "MANIFEST_MISMATCH"
  /** The envelope is missing, does not verify, or is not a delta statement about the target. */
  | "MANIFEST_SIGNATURE";

/** Errors name the file and the field: `delta-manifest.json: ops.addedBytes: …`. */
export class ManifestError extends StellaError<ManifestErrorCode> {
  readonly file: string;
  readonly field: string;
  constructor(code: ManifestErrorCode, file: string, field: string, why: string) {
    super(code, `${file}: ${field}: ${why}`);
    this.file = file;
    this.field = field;
  }
}

export interface AttestationRef {
  /** Path relative to the delta directory: `attestations/<sha256>.json`. */
  file: string;
  /** `provenance` (SLSA, --provenance) or `attestation` (other signed evidence, --attestation). */
  role: "provenance" | "attestation";
  /** sha256 of the file's bytes. */
  digest: string;
  /** The envelope's statement predicateType, when it parses (unverified). */
  predicate_type?: string;
}

export interface EntriesDelta {
  added: number;
  removed: number;
  modified: number;
  unchanged: number;
  /** Up to MAX_LISTED_PATHS of each, sorted. */
  paths: { added: string[]; removed: string[]; modified: string[] };
  truncated: boolean;
}

export interface DeltaManifest {
  schema: typeof MANIFEST_SCHEMA;
  base_digest: string;
  target_digest: string;
  base_size: number;
  target_size: number;
  /** The target's input type (docs/delta-inputs.md); the base's is `base_artifact_type`. */
  artifact_type: DeltaArtifactType;
  base_artifact_type: DeltaArtifactType;
  /** Images: the manifest (oci) or config (docker-archive) digest of each side. */
  image_digests?: { base?: string; target?: string };
  delta: { file: typeof DELTA_FILE; digest: string; size: number; format_version: 1; codec: string };
  parameters: DeltaParams;
  ops: DeltaSummary & { opCount: number; chunkTableEntries: number };
  changed_chunks: ChangedChunk[];
  changed_chunks_total: number;
  entries_delta: EntriesDelta;
  functions_changed: FunctionsChanged;
  materials_delta: MaterialsDelta & { source: "inputs" | "sbom" };
  attestations: AttestationRef[];
  score_inputs: ScoreInputs;
  tool: { name: string; version: string };
  created?: string;
}

export interface EvidenceDocument {
  /** The file's name in messages. */
  name: string;
  /** Its bytes (JSON text of a DSSE envelope or sigstore bundle). */
  bytes: Uint8Array;
}

export interface ComputeOptions {
  params?: Partial<DeltaParams>;
  /** Packages from SBOMs, replacing those found inside the inputs. */
  sbom?: { base: PackageRef[]; target: PackageRef[] };
  provenance?: readonly EvidenceDocument[];
  attestations?: readonly EvidenceDocument[];
  /** Keys trusted to sign provenance and attestations. */
  trustedKeys?: readonly TrustedKey[];
  /** SLSA level per builder id. */
  builderLevels?: Readonly<Record<string, number>>;
  /** RFC 3339; the clock for signature ages. Without it ages are left unknown (no wall clock). */
  created?: string;
  tool?: { name: string; version: string };
  platform?: string;
  /** Called between the (slow) phases. */
  onPhase?: (phase: string) => void;
}

export interface ComputedDelta {
  manifest: DeltaManifest;
  bin: Uint8Array;
  /** The evidence files to write under attestations/, by manifest-relative path. */
  attestationFiles: Map<string, Uint8Array>;
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function hex(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.length).toString("hex");
}

/**
 * Bytes that differ from the base, as written by the ops: literal ADD bytes and the ADD-rel bytes
 * whose difference is non-zero (their count is the summary's changedBytes).
 */
export function changedTargetBytes(parsed: ParsedDelta, target: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let o = 0;
  let di = 0;
  for (const op of parsed.ops) {
    switch (op.op) {
      case "copy-chunk":
        o += parsed.chunks[op.chunk]?.length ?? 0;
        break;
      case "copy-range":
        o += op.length;
        break;
      case "add":
        parts.push(target.subarray(o, o + op.length));
        o += op.length;
        break;
      case "add-rel": {
        const picked: number[] = [];
        for (let k = 0; k < op.length; k++) if (parsed.diff[di + k] !== 0) picked.push(target[o + k] ?? 0);
        if (picked.length > 0) parts.push(Uint8Array.from(picked));
        di += op.length;
        o += op.length;
        break;
      }
    }
  }
  return Buffer.concat(parts);
}

/** The ops summary recomputed from a parsed delta.bin (what the manifest's `ops` must say). */
export function summaryOf(parsed: ParsedDelta): DeltaManifest["ops"] {
  const s: DeltaManifest["ops"] = {
    ...countOps(parsed.ops, parsed.chunks),
    changedBytes: parsed.literalRawSize,
    addedBytesCompressed: parsed.sizes.literal + parsed.sizes.diff,
    codec: "zstd",
    opCount: parsed.ops.length,
    chunkTableEntries: parsed.chunks.length,
  };
  for (const b of parsed.diff) if (b !== 0) s.changedBytes++;
  return s;
}

function entriesDelta(base: DeltaInput, target: DeltaInput): EntriesDelta {
  const d = diffEntries(base.entries, target.entries);
  const cut = <T>(l: T[]): T[] => l.slice(0, MAX_LISTED_PATHS);
  return {
    added: d.added.length,
    removed: d.removed.length,
    modified: d.modified.length,
    unchanged: d.unchanged,
    paths: {
      added: cut(d.added.map((e) => e.path)),
      removed: cut(d.removed.map((e) => e.path)),
      modified: cut(d.modified.map((e) => e.path)),
    },
    truncated: [d.added, d.removed, d.modified].some((l) => l.length > MAX_LISTED_PATHS),
  };
}

function predicateTypeOf(doc: EvidenceDocument): string | undefined {
  try {
    const parsed = parseSignedDocument(Buffer.from(doc.bytes).toString("utf8"), doc.name);
    const payload = Buffer.from(parsed.envelope.payload, "base64");
    return parseStatement(payload, doc.name).predicateType;
  } catch {
    return undefined;
  }
}

/** Attestation part of score_inputs; without an injected clock the ages are dropped (unknown). */
function attestationPart(
  docs: readonly EvidenceDocument[],
  keys: readonly TrustedKey[],
  subject: string,
  created: string | undefined,
): AttestationInputs {
  const texts = docs.map((d) => Buffer.from(d.bytes).toString("utf8"));
  if (texts.length === 0 || keys.length === 0) {
    return {
      signatures: 0,
      trustedSignatures: 0,
      notes: [texts.length === 0 ? "no signed attestation supplied" : "no trusted key given to verify them"],
    };
  }
  const r = attestationInputs({
    envelopes: texts,
    trustedKeys: keys,
    now: created ?? "1970-01-01T00:00:00Z",
    subjectDigest: subject,
  });
  if (created !== undefined) return r;
  const notes = [...(r.notes ?? []), "no creation time given (--created / SOURCE_DATE_EPOCH): ages unknown"];
  return {
    signatures: r.signatures,
    trustedSignatures: r.trustedSignatures,
    ...(r.expired === undefined ? {} : { expired: r.expired }),
    notes,
  };
}

/**
 * Creates delta.bin and its manifest from two opened inputs: the delta (createDelta), the ops
 * recomputed from the encoded file, the entries, functions and materials that changed, and the
 * score inputs (entropy of the changed bytes, dependencies, provenance and attestations verified
 * against `trustedKeys`, changed functions).
 */
export async function computeDelta(
  base: DeltaInput,
  target: DeltaInput,
  opts: ComputeOptions = {},
): Promise<ComputedDelta> {
  const phase = opts.onPhase ?? ((): void => undefined);
  phase("reading inputs");
  const [a, b] = await Promise.all([base.bytes(), target.bytes()]);
  phase("computing the delta");
  const result = createDelta(a, b, opts.params ?? {});
  const parsed = parseDelta(result.bin, DELTA_FILE);
  phase("comparing functions");
  const entries = entriesDelta(base, target);
  const fns = await functionsChanged(base, target, diffEntries(base.entries, target.entries), {
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
  });
  phase("scoring");
  const materials = opts.sbom
    ? { ...materialsDelta(opts.sbom.base, opts.sbom.target), source: "sbom" as const }
    : { ...materialsDelta(base.packages, target.packages), source: "inputs" as const };
  const subject = target.imageDigest ?? target.digest;
  const keys = opts.trustedKeys ?? [];
  const prov = opts.provenance ?? [];
  const atts = opts.attestations ?? [];
  const provenance = provenanceInputs({
    provenanceEnvelopes: prov.map((d) => Buffer.from(d.bytes).toString("utf8")),
    attestationEnvelopes: atts.map((d) => Buffer.from(d.bytes).toString("utf8")),
    trustedKeys: keys,
    subjectDigest: subject,
    names: prov.map((d) => d.name),
    ...(opts.builderLevels === undefined ? {} : { builderLevels: opts.builderLevels }),
  });
  const score_inputs: ScoreInputs = parseScoreInputs({
    provenance,
    entropy: entropyInputs({
      copiedBytes: result.summary.copiedBytes,
      targetBytes: b.length,
      added: changedTargetBytes(parsed, b),
    }),
    deps: {
      added: materials.added.length,
      removed: materials.removed.length,
      changed: materials.changed.length,
    },
    attestation: attestationPart([...prov, ...atts], keys, subject, opts.created),
    functions: {
      added: fns.summary.added,
      removed: fns.summary.removed,
      modified: fns.summary.modified,
      changed: fns.changed,
    },
  });

  const attestationFiles = new Map<string, Uint8Array>();
  const refs: AttestationRef[] = [];
  for (const [role, docs] of [
    ["provenance", prov],
    ["attestation", atts],
  ] as const) {
    for (const d of docs) {
      const digest = sha256Digest(d.bytes);
      const file = `${ATTESTATIONS_DIR}/${digest.slice(7)}.json`;
      if (attestationFiles.has(file)) continue;
      attestationFiles.set(file, d.bytes);
      const pt = predicateTypeOf(d);
      refs.push({ file, role, digest, ...(pt === undefined ? {} : { predicate_type: pt }) });
    }
  }
  refs.sort((x, y) => (x.file < y.file ? -1 : x.file > y.file ? 1 : 0));

  const images: { base?: string; target?: string } = {};
  if (base.imageDigest !== undefined) images.base = base.imageDigest;
  if (target.imageDigest !== undefined) images.target = target.imageDigest;
  const manifest: DeltaManifest = {
    schema: MANIFEST_SCHEMA,
    base_digest: result.baseDigest,
    target_digest: result.targetDigest,
    base_size: a.length,
    target_size: b.length,
    artifact_type: target.type,
    base_artifact_type: base.type,
    ...(Object.keys(images).length > 0 ? { image_digests: images } : {}),
    delta: {
      file: DELTA_FILE,
      digest: sha256Digest(result.bin),
      size: result.bin.length,
      format_version: 1,
      codec: result.summary.codec,
    },
    parameters: result.params,
    ops: summaryOf(parsed),
    changed_chunks: result.changedChunks.slice(0, MAX_CHANGED_CHUNKS),
    changed_chunks_total: result.changedChunks.length,
    entries_delta: entries,
    functions_changed: fns.summary,
    materials_delta: materials,
    attestations: refs,
    score_inputs,
    tool: opts.tool ?? { name: "stella", version: "0" },
    ...(opts.created === undefined ? {} : { created: opts.created }),
  };
  return { manifest, bin: result.bin, attestationFiles };
}

/** The manifest file's bytes: canonical JSON and a newline. */
export function manifestBytes(m: DeltaManifest): Uint8Array {
  return Buffer.from(`${canonicalJson(m)}\n`, "utf8");
}

// ---- reading and checking -------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Parses delta-manifest.json (UNTRUSTED): JSON, canonical form (a re-serialised or edited manifest
 * is refused: its bytes are what a signature covers), the fields verify and apply rely on, and
 * score_inputs through core/risk's validator.
 */
export function parseManifest(bytes: Uint8Array, file: string): DeltaManifest {
  const text = Buffer.from(bytes).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ManifestError("MANIFEST_MALFORMED", file, "(document)", `not JSON: ${(err as Error).message}`);
  }
  if (!isObject(value))
    throw new ManifestError("MANIFEST_MALFORMED", file, "(document)", "not a JSON object");
  const bad = (field: string, why: string): never => {
    throw new ManifestError("MANIFEST_MALFORMED", file, field, why);
  };
  if (value.schema !== MANIFEST_SCHEMA)
    bad("schema", `expected "${MANIFEST_SCHEMA}", got ${JSON.stringify(value.schema)}`);
  for (const f of ["base_digest", "target_digest"]) {
    if (typeof value[f] !== "string" || !DIGEST.test(value[f])) bad(f, "not a sha256:<64 hex> digest");
  }
  for (const f of ["base_size", "target_size"]) {
    if (!Number.isSafeInteger(value[f]) || (value[f] as number) < 0) bad(f, "not a byte count");
  }
  for (const f of ["artifact_type", "base_artifact_type"])
    if (typeof value[f] !== "string") bad(f, "not a string");
  const delta = value.delta;
  if (!isObject(delta)) return bad("delta", "missing or not an object");
  if (delta.file !== DELTA_FILE) bad("delta.file", `expected "${DELTA_FILE}"`);
  if (typeof delta.digest !== "string" || !DIGEST.test(delta.digest))
    bad("delta.digest", "not a sha256 digest");
  if (!Number.isSafeInteger(delta.size)) bad("delta.size", "not a byte count");
  for (const f of [
    "parameters",
    "ops",
    "entries_delta",
    "functions_changed",
    "materials_delta",
    "score_inputs",
  ]) {
    if (!isObject(value[f])) bad(f, "missing or not an object");
  }
  if (!Array.isArray(value.changed_chunks)) bad("changed_chunks", "missing or not an array");
  if (!Array.isArray(value.attestations)) bad("attestations", "missing or not an array");
  (value.attestations as unknown[]).forEach((r, i) => {
    if (
      !isObject(r) ||
      typeof r.file !== "string" ||
      !/^attestations\/[0-9a-f]{64}\.json$/.test(r.file) ||
      typeof r.digest !== "string" ||
      !DIGEST.test(r.digest)
    ) {
      bad(`attestations[${i}]`, "not {file: attestations/<hex>.json, digest: sha256:<hex>, …}");
    }
  });
  try {
    parseScoreInputs(value.score_inputs, `${file}: score_inputs`);
  } catch (err) {
    throw new ManifestError("MANIFEST_MALFORMED", file, "score_inputs", (err as Error).message);
  }
  if (`${canonicalJson(value)}\n` !== text) {
    bad("(document)", "not in RFC 8785 canonical form followed by a newline (edited after creation?)");
  }
  return value as unknown as DeltaManifest;
}

/** The first JSON path where two values differ (for messages), or undefined when equal. */
export function firstDifference(a: unknown, b: unknown, path = ""): string | undefined {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const d = firstDifference(a[k], b[k], path === "" ? k : `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : path === "" ? "(document)" : path;
}

/**
 * Checks the manifest against the bytes of delta.bin (already parsed): the file's digest and size,
 * the header's digests, sizes and CDC parameters, and the ops summary recomputed from the op stream.
 */
export function checkManifestAgainstDelta(
  m: DeltaManifest,
  bin: Uint8Array,
  parsed: ParsedDelta,
  names: { manifest: string; delta: string },
): void {
  const mismatch = (field: string, why: string): never => {
    throw new ManifestError("MANIFEST_MISMATCH", names.manifest, field, why);
  };
  const digest = sha256Digest(bin);
  if (digest !== m.delta.digest)
    mismatch("delta.digest", `${names.delta} is ${digest}, the manifest names ${m.delta.digest}`);
  if (bin.length !== m.delta.size)
    mismatch("delta.size", `${names.delta} is ${bin.length} bytes, the manifest says ${m.delta.size}`);
  const pairs: [string, unknown, unknown][] = [
    ["base_digest", m.base_digest, `sha256:${hex(parsed.baseSha256)}`],
    ["target_digest", m.target_digest, `sha256:${hex(parsed.targetSha256)}`],
    ["base_size", m.base_size, parsed.baseSize],
    ["target_size", m.target_size, parsed.targetSize],
  ];
  for (const [field, mine, theirs] of pairs) {
    if (mine !== theirs)
      mismatch(field, `${JSON.stringify(mine)}, but ${names.delta}'s header says ${JSON.stringify(theirs)}`);
  }
  const p = m.parameters as Partial<DeltaParams>;
  const cdc = p.cdc ?? ({} as Partial<DeltaParams["cdc"]>);
  for (const k of Object.keys(parsed.cdc) as (keyof typeof parsed.cdc)[]) {
    if (cdc[k] !== parsed.cdc[k]) {
      mismatch(
        `parameters.cdc.${k}`,
        `${JSON.stringify(cdc[k])}, but ${names.delta}'s header says ${parsed.cdc[k]}`,
      );
    }
  }
  if (p.level !== parsed.zstdLevel) {
    mismatch(
      "parameters.level",
      `${JSON.stringify(p.level)}, but ${names.delta}'s header says ${parsed.zstdLevel}`,
    );
  }
  const want = summaryOf(parsed);
  const d = firstDifference(m.ops, want, "ops");
  if (d !== undefined) {
    const get = (o: unknown, path: string): unknown =>
      path
        .split(".")
        .slice(1)
        .reduce<unknown>((v, k) => (isObject(v) ? v[k] : undefined), o);
    mismatch(
      d,
      `${JSON.stringify(get(m.ops, d))}, but ${names.delta}'s op stream gives ${JSON.stringify(get(want, d))}`,
    );
  }
}

/** Checks each attestation file referenced by the manifest against its digest. */
export function checkAttestationFiles(
  m: DeltaManifest,
  read: (file: string) => Uint8Array | undefined,
  manifestName: string,
): void {
  m.attestations.forEach((ref, i) => {
    const bytes = read(ref.file);
    if (bytes === undefined) {
      throw new ManifestError(
        "MANIFEST_MISMATCH",
        manifestName,
        `attestations[${i}].file`,
        `${ref.file} is missing`,
      );
    }
    const d = sha256Digest(bytes);
    if (d !== ref.digest) {
      throw new ManifestError(
        "MANIFEST_MISMATCH",
        manifestName,
        `attestations[${i}].digest`,
        `${ref.file} is ${d}, the manifest names ${ref.digest}`,
      );
    }
  });
}

export interface EnvelopeCheck {
  verifiedKeyids: readonly string[];
  statement: Statement;
}

/**
 * Verifies the DSSE envelope over a statement: signature by one of `keys`, in-toto statement with
 * `predicateType`, a subject whose sha256 is `subjectDigest`, and (when `predicate` is given) a
 * predicate equal to it, else the first differing field is named.
 */
export function verifyStatementEnvelope(
  bytes: Uint8Array,
  keys: readonly PublicKey[],
  want: { predicateType: string; subjectDigest: string; predicate?: unknown },
  file: string,
): EnvelopeCheck {
  const sig = (field: string, why: string): never => {
    throw new ManifestError("MANIFEST_SIGNATURE", file, field, why);
  };
  let result;
  try {
    const doc = parseSignedDocument(Buffer.from(bytes).toString("utf8"), file);
    result = verifyEnvelope(doc.envelope, keys, { name: file });
  } catch (err) {
    if (err instanceof DsseError && DSSE_VERIFY_FAILURES.has(err.code))
      return sig("signatures", `${err.code}: ${err.message}`);
    if (err instanceof StellaError) return sig("(document)", `${err.code}: ${err.message}`);
    throw err;
  }
  let st: Statement;
  try {
    st = parseStatement(result.payload, file);
  } catch (err) {
    return sig("payload", (err as Error).message);
  }
  if (st.predicateType !== want.predicateType) {
    sig("predicateType", `expected ${want.predicateType}, got ${st.predicateType}`);
  }
  const hexWant = want.subjectDigest.replace(/^sha256:/, "");
  if (!st.subject.some((s) => s.digest["sha256"] === hexWant)) {
    sig(
      "subject",
      `no subject has sha256 ${hexWant} (subjects: ${st.subject.map((s) => s.digest["sha256"] ?? "?").join(", ")})`,
    );
  }
  if (want.predicate !== undefined) {
    const d = firstDifference(st.predicate, want.predicate);
    if (d !== undefined) {
      sig(
        `predicate.${d}`,
        "the signed predicate differs from the manifest file here (the manifest was changed after signing)",
      );
    }
  }
  return { verifiedKeyids: result.verifiedKeyids, statement: st };
}

// Computing ScoreInputs parts from evidence: entropy of the ADD bytes, SLSA provenance checked with
// core/dsse, signature counts and ages. Everything time-dependent takes `now` as an argument, so the
// caller decides (and records) the clock; the results go into the manifest's `score_inputs`.
import { isStellaError } from "../errors.ts";
import { parseSignedDocument } from "../dsse/bundle.ts";
import { payloadBytes, type Envelope } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement, type Statement } from "../dsse/statement.ts";
import { verifyEnvelope } from "../dsse/verify.ts";
import { RiskError } from "./errors.ts";
import {
  round6,
  type AttestationInputs,
  type EntropyInputs,
  type ProvenanceInputs,
  type SlsaStatus,
  type TlogStatus,
} from "./score.ts";

// ---- entropy -----------------------------------------------------------------------------------------

/** Byte histogram of one buffer or of several taken together (e.g. all ADD blobs of a delta). */
export function byteHistogram(data: Uint8Array | Iterable<Uint8Array>): {
  counts: Float64Array;
  total: number;
} {
  const counts = new Float64Array(256);
  let total = 0;
  const parts = data instanceof Uint8Array ? [data] : data;
  for (const part of parts) {
    for (const byte of part) counts[byte] = (counts[byte] ?? 0) + 1;
    total += part.length;
  }
  return { counts, total };
}

/**
 * Shannon entropy in bits per byte (0..8) of the bytes, rounded to 1e-6: 0 for empty input or a
 * single repeated byte, 8 for a uniform distribution. Several buffers count as one stream.
 */
function entropyBits(counts: Float64Array, total: number): number {
  if (total === 0) return 0;
  let h = 0;
  for (let b = 0; b < 256; b++) {
    const n = counts[b] as number;
    if (n > 0) {
      const p = n / total;
      h -= p * Math.log2(p);
    }
  }
  return Math.min(8, round6(h));
}

/**
 * Shannon entropy in bits per byte (0..8) of the bytes, rounded to 1e-6: 0 for empty input or a
 * single repeated byte, 8 for a uniform distribution. Several buffers count as one stream.
 */
export function entropyOf(data: Uint8Array | Iterable<Uint8Array>): number {
  const { counts, total } = byteHistogram(data);
  return entropyBits(counts, total);
}

/** The entropy part of ScoreInputs from a delta's byte counts and its ADD blobs. */
export function entropyInputs(opts: {
  readonly copiedBytes: number;
  readonly targetBytes: number;
  readonly added: Uint8Array | Iterable<Uint8Array>;
}): EntropyInputs {
  const { counts, total } = byteHistogram(opts.added);
  return {
    copiedBytes: opts.copiedBytes,
    addedBytes: total,
    targetBytes: opts.targetBytes,
    addedEntropyBitsPerByte: entropyBits(counts, total),
  };
}

// ---- signed documents --------------------------------------------------------------------------------

export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";
export const SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2";
const SLSA_TYPES: readonly string[] = [SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02];

/** A trusted key, optionally with its validity window (ISO 8601) for freshness and expiry. */
export type TrustedKey = PublicKey & { readonly createdAt?: string; readonly expiresAt?: string };

interface Examined {
  readonly name: string;
  /** Undefined when the document could not be read as a DSSE envelope or bundle. */
  readonly envelope?: Envelope;
  readonly error?: string;
  readonly signatures: number;
  /** Signatures that verify with a trusted key (distinct keys, as DSSE counts them). */
  readonly verifiedKeys: readonly TrustedKey[];
  /** The in-toto statement: authenticated when verifiedKeys is non-empty, a mere claim otherwise. */
  readonly statement?: Statement;
  readonly statementError?: string;
  readonly tlogEntries: number;
  readonly integratedTimes: readonly number[];
}

function normaliseDigest(digest: string): string {
  return digest.startsWith("sha256:") ? digest.slice("sha256:".length) : digest;
}

function names(statement: Statement, sha256: string): boolean {
  return statement.subject.some((s) => s.digest["sha256"] === sha256);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reads the transparency-log entries of a bundle document (already validated by @sigstore/bundle). */
function tlogOf(json: string): { entries: number; times: number[] } {
  try {
    const doc = JSON.parse(json) as { verificationMaterial?: { tlogEntries?: unknown } };
    const entries = doc.verificationMaterial?.tlogEntries;
    if (!Array.isArray(entries)) return { entries: 0, times: [] };
    const times: number[] = [];
    for (const e of entries as { integratedTime?: unknown }[]) {
      const t = Number(e.integratedTime);
      if (Number.isSafeInteger(t) && t > 0) times.push(t * 1000);
    }
    return { entries: entries.length, times };
  } catch {
    return { entries: 0, times: [] };
  }
}

/**
 * Parses one document (a DSSE envelope or a sigstore bundle, JSON text), checks every signature
 * against the trusted keys (keyid narrows the candidates, as verifyEnvelope does) and parses the
 * in-toto statement. Never throws: what went wrong is in `error` / `statementError`.
 */
function examine(json: string, name: string, keys: readonly TrustedKey[]): Examined {
  let envelope: Envelope;
  let format: "dsse" | "bundle";
  try {
    ({ envelope, format } = parseSignedDocument(json, name));
  } catch (err) {
    return {
      name,
      error: message(err),
      signatures: 0,
      verifiedKeys: [],
      tlogEntries: 0,
      integratedTimes: [],
    };
  }
  const tlog = format === "bundle" ? tlogOf(json) : { entries: 0, times: [] };
  // The decision is core/dsse's verifyEnvelope (keyids narrow the candidates, each key counts once);
  // its error, without the repeated name prefix, is the reason a document did not verify.
  let verified: TrustedKey[] = [];
  let error: string | undefined;
  try {
    const { verifiedKeyids } = verifyEnvelope(envelope, keys, { name });
    verified = keys.filter((k) => verifiedKeyids.includes(k.keyid));
  } catch (err) {
    const text = message(err);
    error = text.startsWith(`${name}: `) ? text.slice(name.length + 2) : text;
  }
  let payload: Uint8Array | undefined;
  try {
    payload = payloadBytes(envelope, name);
  } catch (err) {
    error ??= message(err);
  }
  let statement: Statement | undefined;
  let statementError: string | undefined;
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    statementError = `payloadType ${JSON.stringify(envelope.payloadType)} is not ${IN_TOTO_PAYLOAD_TYPE}`;
  } else if (payload !== undefined) {
    try {
      statement = parseStatement(payload, name);
    } catch (err) {
      statementError = isStellaError(err) ? err.message : message(err);
    }
  }
  return {
    name,
    envelope,
    ...(error === undefined ? {} : { error }),
    signatures: envelope.signatures.length,
    verifiedKeys: verified,
    ...(statement === undefined ? {} : { statement }),
    ...(statementError === undefined ? {} : { statementError }),
    tlogEntries: tlog.entries,
    integratedTimes: tlog.times,
  };
}

function builderId(statement: Statement): string | undefined {
  const p = statement.predicate as
    { runDetails?: { builder?: { id?: unknown } }; builder?: { id?: unknown } } | undefined;
  const id = statement.predicateType === SLSA_PROVENANCE_V1 ? p?.runDetails?.builder?.id : p?.builder?.id;
  return typeof id === "string" ? id : undefined;
}

const SLSA_RANK: Record<SlsaStatus, number> = { absent: 0, "present-unverified": 1, verified: 2 };

export interface ProvenanceOptions {
  /** JSON text of DSSE envelopes or sigstore bundles carrying SLSA provenance (v1 or v0.2). */
  readonly provenanceEnvelopes: readonly string[];
  /** Other signed evidence about the target (a vendor's attestation, the delta attestation): counts for dsseValid. */
  readonly attestationEnvelopes?: readonly string[];
  readonly trustedKeys: readonly PublicKey[];
  /** The target's digest, `sha256:HEX` or `HEX`: a statement must name it as a subject. */
  readonly subjectDigest: string;
  /** SLSA level per builder id (runDetails.builder.id in v1, builder.id in v0.2) this verifier trusts. */
  readonly builderLevels?: Readonly<Record<string, number>>;
  /** Names for messages, per provenance document; default `provenance[i]` (and `attestation[i]`). */
  readonly names?: readonly string[];
}

/**
 * The provenance part of ScoreInputs. Each provenance document is verified with core/dsse against
 * the trusted keys and must be an in-toto statement with predicateType SLSA provenance v1 or v0.2
 * naming the subject digest. A document whose signature fails but which claims SLSA provenance for
 * the subject makes the status "present-unverified" (with the reason in `notes`); one about another
 * artifact or of another type is ignored (noted). `dsseValid`: some document (provenance or
 * attestation) about the subject verifies with a trusted key.
 *
 * Transparency log: a bundle's tlog entries are reported as "unverified". Checking inclusion offline
 * needs the log's public key and a checkpoint check this module does not do yet, so it never reports
 * "verified" (and says so in the notes).
 */
export function provenanceInputs(opts: ProvenanceOptions): ProvenanceInputs {
  const subject = normaliseDigest(opts.subjectDigest);
  const notes: string[] = [];
  let slsa: SlsaStatus = "absent";
  let level: number | undefined;
  let dsseValid = false;
  let tlog: TlogStatus = "absent";

  for (const [i, json] of opts.provenanceEnvelopes.entries()) {
    const doc = examine(json, opts.names?.[i] ?? `provenance[${i}]`, opts.trustedKeys);
    if (doc.envelope === undefined) {
      notes.push(`${doc.name}: unreadable, ignored: ${doc.error ?? ""}`);
      continue;
    }
    const st = doc.statement;
    if (st === undefined) {
      notes.push(`${doc.name}: not an in-toto statement, ignored: ${doc.statementError ?? ""}`);
      continue;
    }
    if (!SLSA_TYPES.includes(st.predicateType)) {
      notes.push(`${doc.name}: predicateType ${st.predicateType} is not SLSA provenance, ignored`);
      continue;
    }
    if (!names(st, subject)) {
      notes.push(`${doc.name}: SLSA provenance does not name the target sha256:${subject}, ignored`);
      continue;
    }
    if (doc.verifiedKeys.length === 0) {
      notes.push(
        `${doc.name}: SLSA provenance present but unverified: ${doc.error ?? "no trusted signature"}`,
      );
      if (SLSA_RANK[slsa] < SLSA_RANK["present-unverified"]) slsa = "present-unverified";
      continue;
    }
    slsa = "verified";
    dsseValid = true;
    const id = builderId(st);
    const l = id === undefined ? undefined : opts.builderLevels?.[id];
    if (l !== undefined && Number.isInteger(l) && l >= 0 && l <= 4) level = Math.max(level ?? 0, l);
    else notes.push(`${doc.name}: builder ${id ?? "(none)"} has no configured SLSA level`);
    if (doc.tlogEntries > 0) {
      tlog = "unverified";
      notes.push(
        `${doc.name}: ${doc.tlogEntries} transparency-log entr${doc.tlogEntries === 1 ? "y" : "ies"} not verified (no offline inclusion check is configured)`,
      );
    }
  }
  for (const [i, json] of (opts.attestationEnvelopes ?? []).entries()) {
    const doc = examine(json, `attestation[${i}]`, opts.trustedKeys);
    if (doc.verifiedKeys.length === 0) {
      notes.push(`${doc.name}: ${doc.error ?? "no trusted signature"}`);
      continue;
    }
    if (doc.statement === undefined || !names(doc.statement, subject)) {
      notes.push(`${doc.name}: signed, but not a statement about the target sha256:${subject}, ignored`);
      continue;
    }
    dsseValid = true;
    if (doc.tlogEntries > 0 && tlog === "absent") {
      tlog = "unverified";
      notes.push(
        `${doc.name}: transparency-log entry not verified (no offline inclusion check is configured)`,
      );
    }
  }
  if (slsa === "absent" && opts.provenanceEnvelopes.length === 0) notes.push("no SLSA provenance supplied");
  return {
    slsaProvenance: slsa,
    ...(slsa === "verified" && level !== undefined ? { slsaLevel: level } : {}),
    dsseValid,
    transparencyLog: tlog,
    ...(notes.length > 0 ? { notes } : {}),
  };
}

export interface AttestationOptions {
  /** JSON text of DSSE envelopes or sigstore bundles: the signed evidence for this delta. */
  readonly envelopes: readonly string[];
  readonly trustedKeys: readonly TrustedKey[];
  /** The clock, injected: a Date or an ISO 8601 string. */
  readonly now: Date | string;
  /** When given, envelopes whose statement does not name this digest are not counted. */
  readonly subjectDigest?: string;
  /** Signing times known to the caller (e.g. from a registry annotation), per envelope, ISO 8601. */
  readonly signedAt?: readonly (string | undefined)[];
}

const DAY_MS = 86_400_000;

function parseTime(text: string, what: string): number {
  const t = Date.parse(text);
  if (!Number.isFinite(t))
    throw new RiskError(
      "RISK_INPUTS_INVALID",
      "attestationInputs",
      what,
      `not an ISO 8601 time: ${JSON.stringify(text)}`,
    );
  return t;
}

/** The signing time a verified statement claims: SLSA v1 runDetails.metadata.finishedOn, v0.2 metadata.buildFinishedOn. */
function claimedTime(st: Statement): string | undefined {
  const p = st.predicate as
    | { runDetails?: { metadata?: { finishedOn?: unknown } }; metadata?: { buildFinishedOn?: unknown } }
    | undefined;
  const t =
    st.predicateType === SLSA_PROVENANCE_V1
      ? p?.runDetails?.metadata?.finishedOn
      : p?.metadata?.buildFinishedOn;
  return typeof t === "string" ? t : undefined;
}

/**
 * The attestation part of ScoreInputs: how many signatures there are and how many verify with a
 * trusted key; the age of the newest trusted signature (time from `signedAt`, else a verified SLSA
 * statement's finish time, else a bundle's tlog integratedTime, unverified); the age of the youngest
 * key that verified (from its `createdAt`); `expired` when every key that verified has an
 * `expiresAt` at or before `now`. Ages are days, rounded to 1e-6.
 */
export function attestationInputs(opts: AttestationOptions): AttestationInputs {
  const now = typeof opts.now === "string" ? parseTime(opts.now, "now") : opts.now.getTime();
  if (!Number.isFinite(now))
    throw new RiskError("RISK_INPUTS_INVALID", "attestationInputs", "now", "not a valid time");
  const subject = opts.subjectDigest === undefined ? undefined : normaliseDigest(opts.subjectDigest);
  const notes: string[] = [];
  let signatures = 0;
  let trusted = 0;
  let newest: number | undefined;
  const verifyingKeys = new Map<string, TrustedKey>();

  for (const [i, json] of opts.envelopes.entries()) {
    const doc = examine(json, `attestation[${i}]`, opts.trustedKeys);
    if (doc.envelope === undefined) {
      notes.push(`${doc.name}: unreadable, not counted: ${doc.error ?? ""}`);
      continue;
    }
    if (subject !== undefined && (doc.statement === undefined || !names(doc.statement, subject))) {
      notes.push(`${doc.name}: not a statement about the target sha256:${subject}, not counted`);
      continue;
    }
    signatures += doc.signatures;
    trusted += doc.verifiedKeys.length;
    if (doc.verifiedKeys.length === 0) {
      notes.push(`${doc.name}: ${doc.error ?? "no trusted signature"}`);
      continue;
    }
    for (const k of doc.verifiedKeys) verifyingKeys.set(k.keyid, k);
    let at: number | undefined;
    const given = opts.signedAt?.[i];
    const claimed = doc.statement === undefined ? undefined : claimedTime(doc.statement);
    if (given !== undefined) at = parseTime(given, `signedAt[${i}]`);
    else if (claimed !== undefined && Number.isFinite(Date.parse(claimed))) at = Date.parse(claimed);
    else if (doc.integratedTimes.length > 0) {
      at = Math.max(...doc.integratedTimes);
      notes.push(`${doc.name}: signing time from an unverified transparency-log integratedTime`);
    }
    if (at !== undefined && (newest === undefined || at > newest)) newest = at;
  }

  const age = (t: number, what: string): number => {
    if (t > now) {
      notes.push(`${what} is in the future; counted as 0 days`);
      return 0;
    }
    return round6((now - t) / DAY_MS);
  };
  let keyAge: number | undefined;
  let expiredAll = verifyingKeys.size > 0;
  for (const k of verifyingKeys.values()) {
    if (k.createdAt !== undefined) {
      const a = age(
        parseTime(k.createdAt, `trustedKeys[${k.keyid}].createdAt`),
        `key ${k.keyid} creation time`,
      );
      keyAge = keyAge === undefined ? a : Math.min(keyAge, a);
    }
    if (k.expiresAt === undefined || parseTime(k.expiresAt, `trustedKeys[${k.keyid}].expiresAt`) > now) {
      expiredAll = false;
    }
  }
  const out: AttestationInputs = {
    signatures,
    trustedSignatures: trusted,
    ...(newest === undefined ? {} : { newestSignatureAgeDays: age(newest, "newest signature time") }),
    ...(keyAge === undefined ? {} : { keyAgeDays: keyAge }),
    ...(verifyingKeys.size > 0 ? { expired: expiredAll } : {}),
  };
  return notes.length > 0 ? { ...out, notes } : out;
}

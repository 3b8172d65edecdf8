import canonicalize from "canonicalize";

import { StellaError } from "../errors.ts";
import { describe, isObject } from "../json-shape.ts";

/** DSSE payloadType for in-toto attestations. */
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
/** What we write. */
export const STATEMENT_TYPE_V1 = "https://in-toto.io/Statement/v1";
/** Also read: v0.1 has the same shape for our purposes, and older cosign attest still writes it. */
export const STATEMENT_TYPE_V01 = "https://in-toto.io/Statement/v0.1";

export type JsonObject = { readonly [key: string]: unknown };

export interface Subject {
  readonly name: string;
  /** Algorithm name to lowercase hex; `sha256` is required (64 lowercase hex digits). */
  readonly digest: Readonly<Record<string, string>>;
}

/** An in-toto Statement (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md). */
export interface Statement {
  readonly _type: string;
  readonly subject: readonly Subject[];
  readonly predicateType: string;
  readonly predicate?: JsonObject;
}

export type StatementErrorCode = "STATEMENT_MALFORMED" | "STATEMENT_TYPE" | "STATEMENT_SUBJECT";
export class StatementError extends StellaError<StatementErrorCode> {}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]+$/;

function checkSubject(value: unknown, where: string): Subject {
  if (!isObject(value))
    throw new StatementError("STATEMENT_SUBJECT", `${where}: expected an object, got ${describe(value)}`);
  const { name, digest } = value;
  if (typeof name !== "string") {
    throw new StatementError("STATEMENT_SUBJECT", `${where}.name: expected a string, got ${describe(name)}`);
  }
  if (!isObject(digest)) {
    throw new StatementError(
      "STATEMENT_SUBJECT",
      `${where}.digest: expected an object, got ${describe(digest)}`,
    );
  }
  const entries: [string, string][] = [];
  for (const [alg, hex] of Object.entries(digest)) {
    if (typeof hex !== "string" || !HEX.test(hex)) {
      throw new StatementError("STATEMENT_SUBJECT", `${where}.digest.${alg}: expected lowercase hex`);
    }
    entries.push([alg, hex]);
  }
  // fromEntries defines own properties, so even a "__proto__" key stays plain data.
  const out: Record<string, string> = Object.fromEntries(entries);
  const sha256 = Object.hasOwn(out, "sha256") ? out["sha256"] : undefined;
  if (sha256 === undefined) throw new StatementError("STATEMENT_SUBJECT", `${where}.digest.sha256: missing`);
  if (!SHA256_HEX.test(sha256)) {
    throw new StatementError("STATEMENT_SUBJECT", `${where}.digest.sha256: expected 64 lowercase hex digits`);
  }
  return { name, digest: out };
}

/**
 * A v1 Statement. Subjects are validated (each needs a sha256 digest) and sorted by name (then by
 * sha256) so that the same inputs always give the same bytes; two subjects with the same name are
 * refused, as a verifier could not tell which digest the name means.
 */
export function makeStatement(
  subjects: readonly Subject[],
  predicateType: string,
  predicate: JsonObject,
): Statement {
  if (subjects.length === 0)
    throw new StatementError("STATEMENT_SUBJECT", "statement: at least one subject is required");
  if (predicateType === "")
    throw new StatementError("STATEMENT_MALFORMED", "statement: predicateType is empty");
  const checked = subjects.map((s, i) => checkSubject(s, `subject[${i}]`));
  checked.sort(
    (a, b) => compare(a.name, b.name) || compare(a.digest["sha256"] ?? "", b.digest["sha256"] ?? ""),
  );
  for (let i = 1; i < checked.length; i++) {
    if (checked[i]?.name === checked[i - 1]?.name) {
      throw new StatementError(
        "STATEMENT_SUBJECT",
        `statement: two subjects are named ${JSON.stringify(checked[i]?.name)}`,
      );
    }
  }
  return { _type: STATEMENT_TYPE_V1, subject: checked, predicateType, predicate };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The statement as RFC 8785 canonical JSON, UTF-8: the DSSE payload. */
export function statementBytes(stmt: Statement): Uint8Array {
  let json: string | undefined;
  try {
    json = canonicalize(stmt);
  } catch (cause) {
    throw new StatementError(
      "STATEMENT_MALFORMED",
      `statement: not serialisable as JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (json === undefined)
    throw new StatementError("STATEMENT_MALFORMED", "statement: not serialisable as JSON");
  return new TextEncoder().encode(json);
}

/**
 * Parses a DSSE payload as an in-toto Statement (v1, or v0.1). UNTRUSTED input even after its
 * signature verified (a trusted key may sign garbage): checks UTF-8, JSON, `_type`, that every
 * subject has a name and a 64-hex sha256 digest, and a non-empty `predicateType`; `predicate`, if
 * present, must be an object. `name` (the envelope's file) prefixes errors.
 */
export function parseStatement(bytes: Uint8Array, name: string): Statement {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new StatementError(
      "STATEMENT_MALFORMED",
      `${name}: payload: not a JSON document: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (!isObject(value)) {
    throw new StatementError(
      "STATEMENT_MALFORMED",
      `${name}: payload: expected a JSON object, got ${describe(value)}`,
    );
  }
  const { _type, subject, predicateType, predicate } = value;
  if (_type !== STATEMENT_TYPE_V1 && _type !== STATEMENT_TYPE_V01) {
    throw new StatementError(
      "STATEMENT_TYPE",
      `${name}: payload._type: expected ${JSON.stringify(STATEMENT_TYPE_V1)}, got ${JSON.stringify(_type) ?? "nothing"}`,
    );
  }
  if (!Array.isArray(subject) || subject.length === 0) {
    throw new StatementError("STATEMENT_SUBJECT", `${name}: payload.subject: expected a non-empty array`);
  }
  const subjects = subject.map((s: unknown, i) => checkSubject(s, `${name}: payload.subject[${i}]`));
  if (typeof predicateType !== "string" || predicateType === "") {
    throw new StatementError(
      "STATEMENT_MALFORMED",
      `${name}: payload.predicateType: expected a non-empty string`,
    );
  }
  if (predicate !== undefined && !isObject(predicate)) {
    throw new StatementError(
      "STATEMENT_MALFORMED",
      `${name}: payload.predicate: expected an object, got ${describe(predicate)}`,
    );
  }
  return { _type, subject: subjects, predicateType, predicate };
}

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { basename } from "node:path";

import { StellaError } from "../errors.ts";
import type { Envelope } from "./envelope.ts";
import { signEnvelope, type Signer } from "./sign.ts";
import {
  IN_TOTO_PAYLOAD_TYPE,
  makeStatement,
  statementBytes,
  type JsonObject,
  type Subject,
} from "./statement.ts";

export interface AttestInput {
  readonly subjects: readonly Subject[];
  readonly predicateType: string;
  readonly predicate: JsonObject;
  readonly signers: readonly Signer[];
  /** Defaults to application/vnd.in-toto+json. */
  readonly payloadType?: string;
}

/**
 * Wraps a predicate in an in-toto v1 Statement about `subjects`, serialises it as canonical JSON and
 * signs it into a DSSE envelope: what `--sign KEY.pem` does in the FuncProof and BinaryDiff commands.
 * Signers come from keys.ts + sign.ts: `keySigner(loadPrivateKeyFile(path))`.
 */
export async function attest(input: AttestInput): Promise<Envelope> {
  const statement = makeStatement(input.subjects, input.predicateType, input.predicate);
  return signEnvelope(input.payloadType ?? IN_TOTO_PAYLOAD_TYPE, statementBytes(statement), input.signers);
}

export type AttestErrorCode = "ATTEST_IO" | "ATTEST_PREDICATE";
export class AttestError extends StellaError<AttestErrorCode> {}

/**
 * A subject for a file: SHA-256 of its contents (streamed), named `name` or else the file's basename
 * (the name is what a verifier matches against, so a path prefix would leak the signer's layout).
 */
export async function subjectFromFile(path: string, name: string = basename(path)): Promise<Subject> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (cause) {
    throw new AttestError("ATTEST_IO", `${path}: cannot read subject: ${(cause as Error).message}`, {
      cause,
    });
  }
  return { name, digest: { sha256: hash.digest("hex") } };
}

import { hash } from "node:crypto";

import { canonicalJson } from "../canonical-json.ts";
import { StellaError } from "../errors.ts";
import type { FuncProof } from "./funcproof.ts";

/**
 * What a FuncProof custom resource carries about its body: small enough for an etcd object
 * whatever the size of the function table, and checkable against the signed body.
 */
export interface FuncProofSummary {
  buildId: string;
  file: { name: string; sha256: string; size: number };
  arch: string;
  /** Sorted by name. */
  sections: {
    name: string;
    offset: number;
    size: number;
    sha256?: string;
    blake3?: string;
    skipped?: string;
  }[];
  functionCount: number;
  /** sha256 of the body's RFC 8785 canonical JSON. */
  bodyDigest: string;
}

export class FuncProofSummaryError extends StellaError<"FUNCPROOF_MALFORMED" | "FUNCPROOF_NO_BUILD_ID"> {}

export function bodyDigest(proof: unknown): string {
  return `sha256:${hash("sha256", canonicalJson(proof), "hex")}`;
}

export function summarize(proof: FuncProof): FuncProofSummary {
  if (proof.buildId === undefined) {
    throw new FuncProofSummaryError(
      "FUNCPROOF_NO_BUILD_ID",
      `${proof.file.name}: has no GNU BuildID to name it by`,
    );
  }
  return {
    buildId: proof.buildId,
    file: { name: proof.file.name, sha256: proof.file.sha256, size: proof.file.size },
    arch: proof.arch,
    sections: Object.entries(proof.sections)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, s]) => ({ name, ...s })),
    functionCount: proof.functions.length,
    bodyDigest: bodyDigest(proof),
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Checks the shape of a FuncProof that came from outside (a signed predicate): only the fields a
 * summary reads, each with the field named in the error. Attacker-controlled input.
 */
export function asFuncProof(value: unknown, name: string): FuncProof {
  const fail = (field: string, want: string): never => {
    throw new FuncProofSummaryError("FUNCPROOF_MALFORMED", `${name}: ${field}: expected ${want}`);
  };
  if (!isObject(value)) return fail("predicate", "an object");
  if (value.buildId !== undefined && typeof value.buildId !== "string") fail("buildId", "a string");
  const file = value.file;
  if (!isObject(file)) return fail("file", "an object");
  if (typeof file.name !== "string") fail("file.name", "a string");
  if (typeof file.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(file.sha256))
    fail("file.sha256", "64 hex digits");
  if (!Number.isSafeInteger(file.size)) fail("file.size", "an integer");
  if (typeof value.arch !== "string") fail("arch", "a string");
  if (!isObject(value.sections)) fail("sections", "an object");
  for (const [k, s] of Object.entries(value.sections as Record<string, unknown>)) {
    if (!isObject(s) || !Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.size)) {
      fail(`sections["${k}"]`, "{offset, size, sha256?}");
    }
  }
  if (!Array.isArray(value.functions)) fail("functions", "an array");
  return value as unknown as FuncProof;
}

/** Field paths where `actual` (a resource's spec) disagrees with `expected` (from the signed body). */
export function summaryMismatches(expected: FuncProofSummary, actual: FuncProofSummary): string[] {
  const out: string[] = [];
  const cmp = (path: string, a: unknown, b: unknown): void => {
    if (canonicalJson(a ?? null) !== canonicalJson(b ?? null)) out.push(path);
  };
  cmp("buildId", expected.buildId, actual.buildId);
  cmp("file.name", expected.file.name, actual.file.name);
  cmp("file.sha256", expected.file.sha256, actual.file.sha256);
  cmp("file.size", expected.file.size, actual.file.size);
  cmp("arch", expected.arch, actual.arch);
  cmp("functionCount", expected.functionCount, actual.functionCount);
  cmp("bodyDigest", expected.bodyDigest, actual.bodyDigest);
  const byName = new Map(actual.sections.map((s) => [s.name, s]));
  for (const s of expected.sections) {
    const a = byName.get(s.name);
    if (!a) out.push(`sections[${s.name}]`);
    else cmp(`sections[${s.name}]`, s, a);
    byName.delete(s.name);
  }
  for (const name of byName.keys()) out.push(`sections[${name}]`);
  return out;
}

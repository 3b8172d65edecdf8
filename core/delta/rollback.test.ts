/**
 * The rollback predicate: built only for a delta and its inverse; a check accepts the files it was
 * made for and refuses, naming the predicate field, any other artifact, delta or manifest.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { DeltaManifest } from "./manifest.ts";
import {
  buildRollbackPredicate,
  checkRollback,
  parseRollbackPredicate,
  RollbackError,
  rollbackSubjects,
  type RollbackFacts,
} from "./rollback.ts";

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const A = d("a");
const B = d("b");

function manifest(base: string, target: string, delta: string): DeltaManifest {
  return {
    base_digest: base,
    target_digest: target,
    base_size: base === A ? 100 : 200,
    target_size: target === A ? 100 : 200,
    artifact_type: "file",
    base_artifact_type: "file",
    delta: { file: "delta.bin", digest: delta, size: 10, format_version: 1, codec: "zstd" },
  } as unknown as DeltaManifest;
}

const forward = { manifest: manifest(A, B, d("1")), manifestDigest: d("2") };
const back = { manifest: manifest(B, A, d("3")), manifestDigest: d("4") };

const facts = (over: Partial<RollbackFacts> = {}): RollbackFacts => ({
  currentDigest: B,
  forward,
  rollback: back,
  rollbackDeltaDigest: d("3"),
  ...over,
});

function denied(fn: () => void, field: string): void {
  assert.throws(
    fn,
    (err: unknown) => err instanceof RollbackError && err.code === "ROLLBACK_DENIED" && err.field === field,
    field,
  );
}

describe("rollback predicate", () => {
  it("binds from = B, to = A and the four files' digests; subjects name both artifacts", () => {
    const p = buildRollbackPredicate(forward, back, "2026-11-25T00:00:00.000Z");
    assert.deepEqual(p, {
      from: { digest: B, size: 200, artifact_type: "file" },
      to: { digest: A, size: 100, artifact_type: "file" },
      forward: { manifest_digest: d("2"), delta_digest: d("1") },
      rollback: { manifest_digest: d("4"), delta_digest: d("3") },
      created: "2026-11-25T00:00:00.000Z",
    });
    assert.deepEqual(rollbackSubjects(p), [
      { name: "rollback-from", digest: { sha256: "b".repeat(64) } },
      { name: "rollback-to", digest: { sha256: "a".repeat(64) } },
    ]);
    assert.equal(parseRollbackPredicate(JSON.parse(JSON.stringify(p)), "r.json").to.digest, A);
    checkRollback(p, facts(), "r.json");
    checkRollback(p, facts({ forward: undefined }), "r.json");
  });

  it("is refused for a reverse delta that does not lead back to the forward base", () => {
    denied(
      () =>
        buildRollbackPredicate(forward, { manifest: manifest(B, d("c"), d("3")), manifestDigest: d("4") }),
      "base_digest",
    );
  });

  it("refuses, naming the field, every mismatch with the files and the artifact at hand", () => {
    const p = buildRollbackPredicate(forward, back);
    denied(() => {
      checkRollback(p, facts({ currentDigest: d("c") }), "r.json");
    }, "predicate.from.digest");
    denied(() => {
      checkRollback(p, facts({ rollbackDeltaDigest: d("9") }), "r.json");
    }, "predicate.rollback.delta_digest");
    denied(() => {
      checkRollback(p, facts({ rollback: { ...back, manifestDigest: d("9") } }), "r.json");
    }, "predicate.rollback.manifest_digest");
    // A rollback delta that leads elsewhere than the attested earlier artifact.
    denied(() => {
      checkRollback(
        p,
        facts({ rollback: { manifest: manifest(B, d("c"), d("3")), manifestDigest: d("4") } }),
        "r.json",
      );
    }, "predicate.to.digest");
    denied(() => {
      checkRollback(p, facts({ forward: { ...forward, manifestDigest: d("9") } }), "r.json");
    }, "predicate.forward.manifest_digest");
    denied(() => {
      checkRollback(
        p,
        facts({ forward: { manifest: manifest(d("c"), B, d("1")), manifestDigest: d("2") } }),
        "r.json",
      );
    }, "predicate.to.digest");
    denied(() => {
      checkRollback({ ...p, to: { ...p.to, size: 5 } }, facts(), "r.json");
    }, "predicate.to.size");
    denied(() => {
      checkRollback({ ...p, forward: { ...p.forward, delta_digest: d("8") } }, facts(), "r.json");
    }, "predicate.forward.delta_digest");
  });

  it("parseRollbackPredicate refuses a malformed predicate", () => {
    const p = buildRollbackPredicate(forward, back);
    denied(() => parseRollbackPredicate(undefined, "r.json"), "predicate");
    denied(
      () => parseRollbackPredicate({ ...p, to: { ...p.to, digest: "sha256:zz" } }, "r.json"),
      "predicate.to.digest",
    );
    denied(
      () => parseRollbackPredicate({ ...p, from: { ...p.from, size: "1" } }, "r.json"),
      "predicate.from.size",
    );
    denied(
      () => parseRollbackPredicate({ ...p, rollback: {} }, "r.json"),
      "predicate.rollback.manifest_digest",
    );
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { isStellaError } from "../errors.ts";
import { formatReference, parseReference } from "./reference.ts";

const D = `sha256:${"ab".repeat(32)}`;

test("parseReference: registry with port, tag", () => {
  assert.deepEqual(parseReference("127.0.0.1:5000/org/app:v1.2"), {
    registry: "127.0.0.1:5000",
    repository: "org/app",
    tag: "v1.2",
  });
});

test("parseReference: default tag latest; docker.io library normalisation", () => {
  assert.deepEqual(parseReference("alpine"), {
    registry: "docker.io",
    repository: "library/alpine",
    tag: "latest",
  });
  assert.deepEqual(parseReference("ghcr.io/a/b"), { registry: "ghcr.io", repository: "a/b", tag: "latest" });
  assert.deepEqual(parseReference("localhost/x"), { registry: "localhost", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("user/app"), {
    registry: "docker.io",
    repository: "user/app",
    tag: "latest",
  });
});

test("parseReference: digest, and tag+digest", () => {
  assert.deepEqual(parseReference(`reg.example:443/a/b@${D}`), {
    registry: "reg.example:443",
    repository: "a/b",
    digest: D,
  });
  const r = parseReference(`reg.example/a:t@${D}`);
  assert.deepEqual(r, { registry: "reg.example", repository: "a", tag: "t", digest: D });
  assert.equal(formatReference(r), `reg.example/a:t@${D}`);
});

function rejects(ref: string, field: string): void {
  assert.throws(
    () => parseReference(ref),
    (err: unknown) => {
      assert.ok(isStellaError(err, "OCI_REFERENCE_INVALID"), String(err));
      assert.match(err.message, new RegExp(`: ${field} `));
      assert.ok(err.message.includes(JSON.stringify(ref)), err.message);
      return true;
    },
  );
}

test("parseReference: malformed references are rejected naming the field", () => {
  rejects("", "reference");
  rejects("reg.io/Upper/case:t", "repository");
  rejects("reg.io/a//b", "repository");
  rejects("reg.io/a/b:", "tag");
  rejects(`reg.io/a/b:${"t".repeat(129)}`, "tag");
  rejects("reg.io/a/b:-bad", "tag");
  rejects("reg.io/a/b@sha256:abc", "digest");
  rejects(`reg.io/a/b@md5:${"a".repeat(32)}`, "digest");
  rejects(`reg.io/${"a".repeat(256)}`, "repository");
  rejects("reg.io:99999/a", "registry");
  rejects("a b", "reference");
});

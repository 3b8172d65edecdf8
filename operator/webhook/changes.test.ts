import assert from "node:assert/strict";
import { test } from "node:test";

import { digestOf, imageChanges, isGatedKind, podSpecOf } from "./changes.ts";

const A = "sha256:" + "a".repeat(64);
const B = "sha256:" + "b".repeat(64);

function deployment(containers: Record<string, string>, init: Record<string, string> = {}): unknown {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    spec: {
      template: {
        spec: {
          initContainers: Object.entries(init).map(([name, image]) => ({ name, image })),
          containers: Object.entries(containers).map(([name, image]) => ({ name, image })),
        },
      },
    },
  };
}

test("an update that changes one container's image is one change, with both digests", () => {
  const before = deployment({ web: `reg.example/web@${A}`, sidecar: "reg.example/proxy:1.2" });
  const after = deployment({ web: `reg.example/web:v2@${B}`, sidecar: "reg.example/proxy:1.2" });
  assert.deepEqual(imageChanges("Deployment", before, after), [
    {
      container: "web",
      init: false,
      from: `reg.example/web@${A}`,
      to: `reg.example/web:v2@${B}`,
      fromDigest: A,
      toDigest: B,
    },
  ]);
  assert.deepEqual(imageChanges("Deployment", before, before), [], "nothing changed");
});

test("a create lists every image; tags without a digest have none; init containers first", () => {
  const obj = deployment({ web: "web:latest", api: `api@${A}` }, { migrate: `tool@${B}` });
  assert.deepEqual(imageChanges("Deployment", undefined, obj), [
    { container: "migrate", init: true, to: `tool@${B}`, toDigest: B },
    { container: "api", init: false, to: `api@${A}`, toDigest: A },
    { container: "web", init: false, to: "web:latest" },
  ]);
});

test("a container renamed is a new container; one removed is no change", () => {
  const before = deployment({ web: `w@${A}`, old: `o@${A}` });
  const after = deployment({ web2: `w@${A}` });
  assert.deepEqual(imageChanges("Deployment", before, after), [
    { container: "web2", init: false, to: `w@${A}`, toDigest: A },
  ]);
});

test("CronJob templates are under spec.jobTemplate.spec.template", () => {
  const cron = (image: string): unknown => ({
    spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: "job", image }] } } } } },
  });
  assert.equal(podSpecOf("CronJob", cron(`j@${A}`))?.containers[0]?.image, `j@${A}`);
  assert.equal(podSpecOf("Deployment", cron(`j@${A}`)), undefined, "not where a Deployment keeps it");
  assert.deepEqual(imageChanges("CronJob", cron(`j@${A}`), cron(`j@${B}`)), [
    { container: "job", init: false, from: `j@${A}`, to: `j@${B}`, fromDigest: A, toDigest: B },
  ]);
});

test("digests: only a full sha256 pin counts; gated kinds", () => {
  assert.equal(digestOf(`r/x@${A}`), A);
  assert.equal(digestOf(`r/x:1@${A}`), A);
  assert.equal(digestOf("r/x@sha256:abc"), undefined, "short");
  assert.equal(digestOf(`r/x@${A.toUpperCase()}`), undefined, "upper case is not a valid digest");
  assert.equal(digestOf("r/x:sha256"), undefined);
  for (const k of ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]) assert.ok(isGatedKind(k));
  assert.equal(isGatedKind("Pod"), false);
  assert.equal(isGatedKind("ReplicaSet"), false);
});

test("malformed objects give no changes instead of throwing", () => {
  assert.deepEqual(imageChanges("Deployment", undefined, null), []);
  assert.deepEqual(imageChanges("Deployment", undefined, { spec: { template: "x" } }), []);
  assert.deepEqual(
    imageChanges("Job", undefined, { spec: { template: { spec: { containers: [{ name: "a" }] } } } }),
    [],
  );
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { isStellaError } from "../../core/errors.ts";
import { parseReview, reviewResponse } from "./review.ts";

function review(request: Record<string, unknown>): unknown {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      kind: { group: "apps", version: "v1", kind: "Deployment" },
      resource: { group: "apps", version: "v1", resource: "deployments" },
      operation: "UPDATE",
      namespace: "shop",
      name: "web",
      object: { spec: {} },
      oldObject: { spec: {} },
      ...request,
    },
  };
}

test("a v1 AdmissionReview is read with its kind, operation, objects and dryRun", () => {
  const r = parseReview(review({ dryRun: true }));
  assert.equal(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
  assert.deepEqual(r.kind, { group: "apps", version: "v1", kind: "Deployment" });
  assert.equal(r.operation, "UPDATE");
  assert.equal(r.namespace, "shop");
  assert.deepEqual(r.oldObject, { spec: {} });
  assert.equal(r.dryRun, true);
  const created = parseReview(review({ operation: "CREATE", oldObject: null }));
  assert.equal(created.oldObject, undefined, "null oldObject on CREATE");
  assert.equal(parseReview(review({ kind: { version: "v1", kind: "Job" } })).kind.group, "", "core group");
});

test("malformed reviews are refused naming the field", () => {
  const cases: [unknown, RegExp][] = [
    [null, /body: expected an object/],
    [
      { apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview" },
      /apiVersion: admission.k8s.io\/v1beta1/,
    ],
    [{ apiVersion: "admission.k8s.io/v1", kind: "Other" }, /kind: expected AdmissionReview/],
    [{ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }, /request: expected an object/],
    [review({ operation: "PATCH" }), /request\.operation: PATCH/],
    [review({ uid: 7 }), /request\.uid: expected a string/],
    [review({ uid: "" }), /request\.uid: empty/],
    [review({ kind: [] }), /request\.kind: expected an object/],
  ];
  for (const [body, want] of cases) {
    assert.throws(
      () => parseReview(body),
      (e) => isStellaError(e, "REVIEW_MALFORMED") && want.test((e as Error).message),
      String(want),
    );
  }
});

test("responses: a denial is 403 with the message; warnings ride along", () => {
  assert.deepEqual(reviewResponse("u1", { allowed: false, message: "delta_risk 0.84 > 0.50" }), {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: {
      uid: "u1",
      allowed: false,
      status: { code: 403, reason: "Forbidden", message: "delta_risk 0.84 > 0.50" },
    },
  });
  assert.deepEqual(reviewResponse("u2", { allowed: true, warnings: ["audit: would deny"] }), {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: "u2", allowed: true, warnings: ["audit: would deny"] },
  });
});

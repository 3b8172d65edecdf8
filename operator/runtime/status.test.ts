import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiException, HttpMethod, RequestContext } from "@kubernetes/client-node";
import type { ConfigurationOptions } from "@kubernetes/client-node";
import { isConflict } from "./errors.ts";
import {
  ConditionError,
  findCondition,
  formatTime,
  isConditionTrue,
  patchStatus,
  removeCondition,
  setCondition,
} from "./status.ts";
import type { StatusApi, StatusObject } from "./status.ts";

const T0 = new Date("2026-03-01T10:00:00.250Z");
const T1 = new Date("2026-03-01T10:05:00.000Z");

describe("setCondition (meta.SetStatusCondition semantics)", () => {
  test("adds a new condition with lastTransitionTime = now, second precision", () => {
    const { conditions, changed } = setCondition(
      undefined,
      { type: "Verified", status: "True", reason: "SignatureValid", message: "ok", observedGeneration: 3 },
      T0,
    );
    assert.equal(changed, true);
    assert.deepEqual(conditions, [
      {
        type: "Verified",
        status: "True",
        reason: "SignatureValid",
        message: "ok",
        lastTransitionTime: "2026-03-01T10:00:00Z",
        observedGeneration: 3,
      },
    ]);
  });

  test("keeps lastTransitionTime when status is unchanged, updates reason/message/generation", () => {
    const first = setCondition([], { type: "Ready", status: "False", reason: "Pending" }, T0).conditions;
    const same = setCondition(first, { type: "Ready", status: "False", reason: "Pending" }, T1);
    assert.equal(same.changed, false);
    assert.equal(same.conditions[0]!.lastTransitionTime, "2026-03-01T10:00:00Z");

    const reworded = setCondition(
      first,
      { type: "Ready", status: "False", reason: "Waiting", message: "m", observedGeneration: 2 },
      T1,
    );
    assert.equal(reworded.changed, true);
    assert.equal(reworded.conditions[0]!.lastTransitionTime, "2026-03-01T10:00:00Z");
    assert.equal(reworded.conditions[0]!.reason, "Waiting");
    assert.equal(reworded.conditions[0]!.observedGeneration, 2);

    const flipped = setCondition(reworded.conditions, { type: "Ready", status: "True", reason: "Done" }, T1);
    assert.equal(flipped.changed, true);
    assert.equal(flipped.conditions[0]!.lastTransitionTime, "2026-03-01T10:05:00Z");
    assert.equal("observedGeneration" in flipped.conditions[0]!, false);
    assert.equal(first[0]!.status, "False", "input is not mutated");
  });

  test("other condition types are preserved; find/isTrue/remove", () => {
    let list = setCondition([], { type: "A", status: "True", reason: "R" }, T0).conditions;
    list = setCondition(list, { type: "B", status: "Unknown", reason: "R" }, T0).conditions;
    list = setCondition(list, { type: "A", status: "False", reason: "R" }, T1).conditions;
    assert.deepEqual(
      list.map((c) => c.type),
      ["A", "B"],
    );
    assert.equal(isConditionTrue(list, "A"), false);
    assert.equal(findCondition(list, "B")?.status, "Unknown");
    assert.deepEqual(
      removeCondition(list, "A").conditions.map((c) => c.type),
      ["B"],
    );
    assert.equal(removeCondition(list, "Z").changed, false);
  });

  test("rejects what the metav1.Condition schema rejects; truncates long messages", () => {
    assert.throws(
      () => setCondition([], { type: "Ready", status: "True", reason: "not camel" }),
      ConditionError,
    );
    assert.throws(() => setCondition([], { type: "bad type!", status: "True", reason: "R" }), ConditionError);
    assert.throws(
      () => setCondition([], { type: "Ready", status: "Yes" as "True", reason: "R" }),
      ConditionError,
    );
    const long = setCondition([], {
      type: "Ready",
      status: "True",
      reason: "R",
      message: "x".repeat(40_000),
    });
    assert.equal(long.conditions[0]!.message.length, 32_768);
    assert.equal(formatTime(new Date("2026-01-02T03:04:05.999Z")), "2026-01-02T03:04:05Z");
  });
});

interface Call {
  op: string;
  param: Record<string, unknown>;
  contentType: string | undefined;
}

/** A CustomObjectsApi double: fails the first `conflicts` patches with 409, records every call. */
function fakeApi(conflicts: number, stored: StatusObject) {
  const calls: Call[] = [];
  let remaining = conflicts;
  const contentTypeOf = async (options: unknown): Promise<string | undefined> => {
    const ctx = new RequestContext("https://apiserver/x", HttpMethod.PATCH);
    ctx.setHeaderParam("Content-Type", "application/json-patch+json"); // what the generated code sets
    for (const m of (options as ConfigurationOptions | undefined)?.middleware ?? []) {
      await m.pre(ctx).toPromise();
    }
    return ctx.getHeaders()["Content-Type"];
  };
  const patch = async (op: string, param: Record<string, unknown>, options: unknown) => {
    calls.push({ op, param, contentType: await contentTypeOf(options) });
    if (remaining > 0) {
      remaining--;
      stored.metadata = {
        ...stored.metadata,
        resourceVersion: String(Number(stored.metadata?.resourceVersion) + 1),
      };
      throw new ApiException(409, "Conflict", { reason: "Conflict" }, {});
    }
    return { ...stored, status: (param.body as { status: unknown }).status };
  };
  const get = (op: string, param: Record<string, unknown>) => {
    calls.push({ op, param, contentType: undefined });
    return Promise.resolve(structuredClone(stored));
  };
  const api = {
    patchNamespacedCustomObjectStatus: (p: Record<string, unknown>, o?: unknown) =>
      patch("patchNamespaced", p, o),
    patchClusterCustomObjectStatus: (p: Record<string, unknown>, o?: unknown) => patch("patchCluster", p, o),
    getNamespacedCustomObjectStatus: (p: Record<string, unknown>) => get("getNamespaced", p),
    getClusterCustomObjectStatus: (p: Record<string, unknown>) => get("getCluster", p),
  } as unknown as StatusApi;
  return { api, calls };
}

const REF = {
  group: "evidence.stella-ops.org",
  version: "v1alpha1",
  plural: "funcproofs",
  namespace: "apps",
  name: "libc",
};

describe("patchStatus", () => {
  test("merge-patches the status subresource with the resourceVersion precondition", async () => {
    const { api, calls } = fakeApi(0, { metadata: { resourceVersion: "7" } });
    const out = await patchStatus(api, REF, { phase: "Verified" }, { resourceVersion: "7" });
    assert.deepEqual(out.status, { phase: "Verified" });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.op, "patchNamespaced");
    assert.equal(calls[0]!.contentType, "application/merge-patch+json");
    assert.deepEqual(calls[0]!.param, {
      ...REF,
      body: { status: { phase: "Verified" }, metadata: { resourceVersion: "7" } },
      fieldManager: "stella-operator",
    });
  });

  test("retries a 409 with a fresh read, bounded", async () => {
    const { api, calls } = fakeApi(2, { metadata: { resourceVersion: "7" } });
    await patchStatus(api, REF, { phase: "Verified" }, { resourceVersion: "7" });
    assert.deepEqual(
      calls.map((c) => c.op),
      ["patchNamespaced", "getNamespaced", "patchNamespaced", "getNamespaced", "patchNamespaced"],
    );
    const rvs = calls
      .filter((c) => c.op === "patchNamespaced")
      .map((c) => (c.param.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    assert.deepEqual(rvs, ["7", "8", "9"]);

    const exhausted = fakeApi(10, { metadata: { resourceVersion: "1" } });
    await assert.rejects(
      patchStatus(exhausted.api, REF, {}, { resourceVersion: "1", maxAttempts: 3 }),
      (err: unknown) => isConflict(err),
    );
    assert.equal(exhausted.calls.filter((c) => c.op === "patchNamespaced").length, 3);
  });

  test("a status function is recomputed from each fresh read; cluster-scoped objects use the cluster API", async () => {
    const { api, calls } = fakeApi(1, { metadata: { resourceVersion: "3", generation: 5 } });
    const seen: (string | undefined)[] = [];
    await patchStatus(api, { ...REF, namespace: undefined }, (current: StatusObject) => {
      seen.push(current.metadata?.resourceVersion);
      return { observedGeneration: current.metadata?.generation };
    });
    assert.deepEqual(seen, ["3", "4"]);
    assert.deepEqual(
      calls.map((c) => c.op),
      ["getCluster", "patchCluster", "getCluster", "patchCluster"],
    );
    const skipped = fakeApi(0, { metadata: { resourceVersion: "1" } });
    await patchStatus(skipped.api, REF, () => undefined);
    assert.deepEqual(
      skipped.calls.map((c) => c.op),
      ["getNamespaced"],
      "undefined from the function skips the write",
    );
  });
});

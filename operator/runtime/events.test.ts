import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiException, HttpMethod, RequestContext } from "@kubernetes/client-node";
import type { ConfigurationOptions } from "@kubernetes/client-node";
import { FakeEventRecorder, KubernetesEventRecorder, objectRef, truncateUtf8 } from "./events.ts";
import type { EventsApi } from "./events.ts";
import { FakeClock } from "./fake-clock.ts";

interface Call {
  op: "create" | "patch";
  param: { namespace: string; name?: string; body: Record<string, unknown> };
  contentType: string | undefined;
}

function fakeApi(options: { hang?: boolean; patchStatus?: number } = {}) {
  const calls: Call[] = [];
  const contentType = async (opts: unknown, method: HttpMethod): Promise<string | undefined> => {
    const ctx = new RequestContext("https://apiserver/x", method);
    for (const m of (opts as ConfigurationOptions | undefined)?.middleware ?? [])
      await m.pre(ctx).toPromise();
    return ctx.getHeaders()["Content-Type"];
  };
  const api = {
    createNamespacedEvent: async (param: Call["param"], opts?: unknown) => {
      calls.push({ op: "create", param, contentType: await contentType(opts, HttpMethod.POST) });
      if (options.hang === true) await new Promise(() => undefined);
      return param.body;
    },
    patchNamespacedEvent: async (param: Call["param"], opts?: unknown) => {
      calls.push({ op: "patch", param, contentType: await contentType(opts, HttpMethod.PATCH) });
      if (options.patchStatus !== undefined) {
        throw new ApiException(options.patchStatus, "NotFound", {}, {});
      }
      return param.body;
    },
  } as unknown as EventsApi;
  return { api, calls };
}

const FUNCPROOF = {
  apiVersion: "evidence.stella-ops.org/v1alpha1",
  kind: "FuncProof",
  metadata: { name: "libc-2.36", namespace: "apps", uid: "u-1", resourceVersion: "42" },
};

describe("KubernetesEventRecorder", { timeout: 10_000 }, () => {
  test("creates an events.k8s.io/v1 Event in the object's namespace", async () => {
    const clock = new FakeClock();
    const { api, calls } = fakeApi();
    const rec = new KubernetesEventRecorder({ api, reportingInstance: "host_abc", clock });
    rec.event(objectRef(FUNCPROOF), {
      type: "Warning",
      reason: "SignatureInvalid",
      action: "Verify",
      note: "bad sig",
    });
    await rec.flush();
    assert.equal(calls.length, 1);
    const { param } = calls[0]!;
    assert.equal(param.namespace, "apps");
    const body = param.body;
    assert.equal(body.apiVersion, "events.k8s.io/v1");
    assert.equal(body.kind, "Event");
    assert.equal(body.reportingController, "stella-operator");
    assert.equal(body.reportingInstance, "host_abc");
    assert.equal(body.type, "Warning");
    assert.equal(body.reason, "SignatureInvalid");
    assert.equal(body.action, "Verify");
    assert.equal(body.note, "bad sig");
    assert.deepEqual(body.regarding, {
      apiVersion: "evidence.stella-ops.org/v1alpha1",
      kind: "FuncProof",
      name: "libc-2.36",
      namespace: "apps",
      uid: "u-1",
      resourceVersion: "42",
    });
    assert.match((body.metadata as { name: string }).name, /^libc-2\.36\.[0-9a-f]+$/);
    // What client-node sends: MicroTime with six fractional digits, as the apiserver requires.
    const wire = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
    assert.equal(wire.eventTime, "2026-01-01T00:00:00.000000Z");
  });

  test("identical events within the window become one Event with a series count", async () => {
    const clock = new FakeClock();
    const { api, calls } = fakeApi();
    const rec = new KubernetesEventRecorder({ api, reportingInstance: "i", clock, seriesFlushMs: 30_000 });
    const fire = (): void => {
      rec.event(objectRef(FUNCPROOF), { type: "Normal", reason: "Observed", action: "Sample", note: "hot" });
    };
    fire();
    await clock.advance(0);
    for (let i = 0; i < 4; i++) {
      await clock.advance(1_000);
      fire();
    }
    assert.deepEqual(
      calls.map((c) => c.op),
      ["create"],
    );
    await clock.advance(30_000);
    assert.deepEqual(
      calls.map((c) => c.op),
      ["create", "patch"],
    );
    const patch = calls[1]!;
    assert.equal(patch.contentType, "application/merge-patch+json");
    assert.equal(patch.param.name, (calls[0]!.param.body.metadata as { name: string }).name);
    const series = patch.param.body.series as { count: number; lastObservedTime: Date };
    assert.equal(series.count, 5);
    assert.equal(
      series.lastObservedTime.toISOString(),
      new Date(Date.UTC(2026, 0, 1, 0, 0, 4)).toISOString().replace("Z", "000Z"),
    );

    fire();
    rec.event(objectRef(FUNCPROOF), { type: "Normal", reason: "Other", action: "Sample", note: "hot" });
    await clock.advance(30_000);
    assert.deepEqual(
      calls.map((c) => c.op),
      ["create", "patch", "create", "patch"],
      "a different reason is a different event; the series patch carries count 6",
    );
    assert.equal((calls[3]!.param.body.series as { count: number }).count, 6);

    await clock.advance(7 * 60_000);
    fire();
    await clock.advance(0);
    assert.equal(calls.filter((c) => c.op === "create").length, 3, "after the window a new Event is created");
  });

  test("cluster-scoped objects' events go to 'default'; limits are enforced", async () => {
    const { api, calls } = fakeApi();
    const rec = new KubernetesEventRecorder({
      api,
      reportingInstance: "i".repeat(200),
      clock: new FakeClock(),
    });
    rec.event(
      { kind: "RolloutGate", name: "gate", apiVersion: "evidence.stella-ops.org/v1alpha1" },
      { type: "Normal", reason: "R".repeat(300), action: "A", note: "é".repeat(1000) },
    );
    await rec.flush();
    const body = calls[0]!.param.body;
    assert.equal(calls[0]!.param.namespace, "default");
    assert.equal((body.reason as string).length, 128);
    assert.equal((body.reportingInstance as string).length, 128);
    assert.ok(Buffer.byteLength(body.note as string) <= 1024);
    assert.equal(truncateUtf8("aé", 2), "a", "never splits a UTF-8 character");
  });

  test("bounds in-flight requests and drops (counts) the excess; 404 on patch forgets the series", async () => {
    const hanging = fakeApi({ hang: true });
    const rec = new KubernetesEventRecorder({
      api: hanging.api,
      reportingInstance: "i",
      clock: new FakeClock(),
      maxInFlight: 1,
    });
    rec.event(objectRef(FUNCPROOF), { type: "Normal", reason: "A", action: "x", note: "" });
    rec.event(objectRef(FUNCPROOF), { type: "Normal", reason: "B", action: "x", note: "" });
    assert.equal(rec.droppedCount, 1);

    const clock = new FakeClock();
    const gone = fakeApi({ patchStatus: 404 });
    const rec2 = new KubernetesEventRecorder({
      api: gone.api,
      reportingInstance: "i",
      clock,
      seriesFlushMs: 10,
    });
    const fire = (): void => {
      rec2.event(objectRef(FUNCPROOF), { type: "Normal", reason: "A", action: "x", note: "" });
    };
    fire();
    await clock.advance(0);
    fire();
    await clock.advance(10);
    fire();
    await clock.advance(0);
    assert.deepEqual(
      gone.calls.map((c) => c.op),
      ["create", "patch", "create"],
    );
    await rec2.shutdown(100);
    fire();
    assert.equal(rec2.droppedCount, 1, "dropped after shutdown");
  });

  test("FakeEventRecorder records for controller unit tests", () => {
    const fake = new FakeEventRecorder();
    fake.event(objectRef(FUNCPROOF), { type: "Normal", reason: "Verified", action: "Verify", note: "" });
    assert.equal(fake.events[0]?.reason, "Verified");
    assert.equal(fake.events[0]?.regarding.name, "libc-2.36");
  });
});

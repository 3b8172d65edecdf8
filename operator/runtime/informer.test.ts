/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node models are plain data */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KubeConfig, Watch } from "@kubernetes/client-node";
import type { KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { FakeClock, settle } from "./fake-clock.ts";
import { ResourceInformer, objectKey, resourcePath, splitKey } from "./informer.ts";
import type { ChangeType } from "./informer.ts";

interface WatchRequest {
  path: string;
  query: Record<string, unknown>;
  send: (type: string, obj: KubernetesObject) => void;
  fail: (err: unknown) => void;
  aborted: () => boolean;
}

/** A client-node Watch double: records requests; the test pushes events and failures into them. */
class FakeWatch extends Watch {
  readonly requests: WatchRequest[] = [];

  constructor() {
    super(new KubeConfig());
  }

  override watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let finished = false;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      done(err);
    };
    // Like the real Watch: aborting the request ends the stream with an AbortError.
    controller.signal.addEventListener("abort", () => {
      queueMicrotask(() => {
        finish(new DOMException("This operation was aborted", "AbortError"));
      });
    });
    this.requests.push({
      path,
      query,
      send: (type, obj) => {
        callback(type, obj);
      },
      fail: finish,
      aborted: () => controller.signal.aborted,
    });
    return Promise.resolve(controller);
  }
}

function obj(name: string, rv: string, namespace?: string): KubernetesObject {
  return {
    apiVersion: "evidence.stella-ops.org/v1alpha1",
    kind: "FuncProof",
    metadata: { name, resourceVersion: rv, ...(namespace === undefined ? {} : { namespace }) },
  };
}

function setup(lists: (() => Promise<KubernetesListObject<KubernetesObject>>)[]) {
  const clock = new FakeClock();
  const watch = new FakeWatch();
  let listCalls = 0;
  const events: [ChangeType, string][] = [];
  const informer = new ResourceInformer<KubernetesObject>({
    name: "funcproofs",
    path: "/apis/evidence.stella-ops.org/v1alpha1/funcproofs",
    list: () => {
      const fn = lists[Math.min(listCalls, lists.length - 1)]!;
      listCalls++;
      return fn();
    },
    watch,
    clock,
  });
  informer.onChange((type, key) => events.push([type, key]));
  return { clock, watch, informer, events, listCalls: () => listCalls };
}

const LIST = (): Promise<KubernetesListObject<KubernetesObject>> =>
  Promise.resolve({ metadata: { resourceVersion: "100" }, items: [obj("a", "1", "apps"), obj("b", "2")] });

describe("ResourceInformer", { timeout: 10_000 }, () => {
  test("lists into the cache, syncs, and reports adds with namespace/name keys", async () => {
    const { informer, events, watch } = setup([LIST]);
    assert.equal(informer.hasSynced(), false);
    await informer.start();
    assert.equal(informer.hasSynced(), true);
    assert.equal(await informer.waitForSync(), true);
    assert.deepEqual(events, [
      ["add", "apps/a"],
      ["add", "b"],
    ]);
    assert.equal(informer.get("apps/a")?.metadata?.resourceVersion, "1");
    assert.equal(informer.get("b")?.metadata?.name, "b");
    assert.deepEqual(informer.keys().sort(), ["apps/a", "b"]);
    assert.equal(watch.requests.length, 1);
    assert.equal(watch.requests[0]!.query.resourceVersion, "100", "watch resumes from the list");
    await informer.shutdown();
  });

  test("applies watch events: add, update, delete", async () => {
    const { informer, events, watch } = setup([LIST]);
    await informer.start();
    events.length = 0;
    const req = watch.requests[0]!;
    req.send("ADDED", obj("c", "101", "apps"));
    req.send("MODIFIED", obj("a", "102", "apps"));
    req.send("MODIFIED", obj("a", "102", "apps")); // same resourceVersion: no update
    req.send("DELETED", obj("b", "103"));
    assert.deepEqual(events, [
      ["add", "apps/c"],
      ["update", "apps/a"],
      ["delete", "b"],
    ]);
    assert.equal(informer.get("apps/a")?.metadata?.resourceVersion, "102");
    assert.equal(informer.get("b"), undefined);
    await informer.shutdown();
  });

  test("restarts after a watch error with doubling backoff, resuming from the last resourceVersion", async () => {
    const { informer, watch, clock, listCalls } = setup([LIST]);
    await informer.start();
    watch.requests[0]!.send("ADDED", obj("c", "150", "apps"));
    watch.requests[0]!.fail(Object.assign(new Error("Internal Server Error"), { statusCode: 500 }));
    await clock.advance(999);
    assert.equal(watch.requests.length, 1, "not before the 1 s backoff");
    await clock.advance(1);
    assert.equal(watch.requests.length, 2);
    assert.equal(watch.requests[1]!.query.resourceVersion, "150");
    assert.equal(listCalls(), 1, "no re-list needed");

    watch.requests[1]!.fail(new Error("ECONNRESET"));
    await clock.advance(1_999);
    assert.equal(watch.requests.length, 2, "second failure waits 2 s");
    await clock.advance(1);
    assert.equal(watch.requests.length, 3);
    assert.equal(informer.hasSynced(), true, "stays synced across restarts");

    await clock.advance(180_000);
    watch.requests[2]!.fail(new Error("ECONNRESET"));
    await clock.advance(1_000);
    assert.equal(watch.requests.length, 4, "after 2 min without failures the backoff is back to 1 s");
    await informer.shutdown();
  });

  test("a failing initial list is retried; hasSynced only after it succeeds", async () => {
    const { informer, clock, listCalls } = setup([
      () => Promise.reject(new Error("connect ECONNREFUSED")),
      () => Promise.reject(new Error("connect ECONNREFUSED")),
      LIST,
    ]);
    const synced = informer.waitForSync();
    await informer.start();
    assert.equal(informer.hasSynced(), false);
    await clock.advance(1_000);
    assert.equal(listCalls(), 2);
    assert.equal(informer.hasSynced(), false);
    await clock.advance(2_000);
    assert.equal(listCalls(), 3);
    assert.equal(informer.hasSynced(), true);
    assert.equal(await synced, true);
    await informer.shutdown();
  });

  test("shutdown aborts the watch and does not restart it", async () => {
    const { informer, watch, clock } = setup([LIST]);
    await informer.start();
    await informer.shutdown();
    await settle();
    assert.equal(watch.requests[0]!.aborted(), true);
    assert.equal(clock.pendingTimers, 0, "the abort's error event schedules no restart");
    await clock.advance(60_000);
    assert.equal(watch.requests.length, 1);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(await informer.waitForSync(), true);
  });

  test("handler exceptions are isolated; keys and paths", async () => {
    const { informer, events } = setup([LIST]);
    informer.onChange(() => {
      throw new Error("handler bug");
    });
    await informer.start();
    assert.equal(events.length, 2, "other handlers still ran");
    assert.equal(objectKey(obj("x", "1", "ns")), "ns/x");
    assert.deepEqual(splitKey("x"), { namespace: undefined, name: "x" });
    assert.equal(
      resourcePath({
        group: "evidence.stella-ops.org",
        version: "v1alpha1",
        plural: "funcproofs",
        namespace: "apps",
      }),
      "/apis/evidence.stella-ops.org/v1alpha1/namespaces/apps/funcproofs",
    );
    assert.equal(resourcePath({ group: "", version: "v1", plural: "secrets" }), "/api/v1/secrets");
    await informer.shutdown();
  });
});

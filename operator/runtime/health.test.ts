import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Controller } from "./controller.ts";
import { HealthServer } from "../../core/service/health.ts";
import { parseListenAddress } from "../../core/service/listen-address.ts";
import { createRegistry, counter, histogram } from "../../core/service/metrics.ts";

async function get(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

describe("HealthServer", { timeout: 10_000 }, () => {
  test("serves /healthz, /readyz (503 until synced) and /metrics", async () => {
    const registry = createRegistry();
    new Controller({ name: "funcproof", reconcile: () => Promise.resolve(), registry });
    let synced = false;
    const server = new HealthServer({ address: "127.0.0.1:0", registry });
    server.addReadinessCheck("informers", () => {
      if (!synced) throw new Error("caches not synced: funcproofs");
    });
    await server.start();
    const base = server.url();
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    try {
      assert.deepEqual((await get(`${base}/healthz`)).body, "ok");
      assert.equal((await get(`${base}/livez`)).status, 200);

      const notReady = await get(`${base}/readyz`);
      assert.equal(notReady.status, 503);
      assert.equal(
        notReady.body,
        "[-]informers failed: caches not synced: funcproofs\nreadyz check failed\n",
      );
      synced = true;
      const ready = await get(`${base}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(ready.body, "ok");
      assert.equal((await get(`${base}/readyz?verbose`)).body, "[+]informers ok\nreadyz check passed\n");

      const metrics = await get(`${base}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.type ?? "", /^text\/plain; version=0\.0\.4/);
      assert.match(
        metrics.body,
        /controller_runtime_reconcile_total\{controller="funcproof",result="success"\} 0/,
      );
      assert.match(metrics.body, /workqueue_depth\{name="funcproof",controller="funcproof"\} 0/);
      assert.match(metrics.body, /process_cpu_seconds_total/, "default process metrics included");

      server.addLivenessCheck("deadlock", () => Promise.reject(new Error("event loop stalled")));
      const dead = await get(`${base}/healthz`);
      assert.equal(dead.status, 500);
      assert.match(dead.body, /\[-\]deadlock failed: event loop stalled/);

      assert.equal((await get(`${base}/nope`)).status, 404);
      assert.equal((await get(`${base}/healthz`, { method: "POST" })).status, 405);
    } finally {
      await server.shutdown();
    }
    await assert.rejects(fetch(`${base}/healthz`));
  });

  test("a metrics-only server does not serve probes", async () => {
    const server = new HealthServer({ address: "127.0.0.1:0", registry: createRegistry(), probes: false });
    await server.start();
    try {
      assert.equal((await get(`${server.url()}/healthz`)).status, 404);
      assert.equal((await get(`${server.url()}/metrics`)).status, 200);
    } finally {
      await server.shutdown();
    }
  });

  test("listen addresses and metric naming rules", () => {
    assert.deepEqual(parseListenAddress(":8080"), { host: undefined, port: 8080 });
    assert.deepEqual(parseListenAddress("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseListenAddress("localhost:9443"), { host: "localhost", port: 9443 });
    assert.throws(() => parseListenAddress("8080"), /host:port/);
    assert.throws(() => parseListenAddress(":99999"), /invalid port/);
    assert.throws(() => new HealthServer({ address: "nope" }), /host:port/);

    const registry = createRegistry({ defaultMetrics: false });
    assert.throws(() => counter(registry, { name: "stella_things", help: "h" }), /_total/);
    assert.throws(() => histogram(registry, { name: "stella_latency", help: "h" }), /base unit/);
    assert.throws(
      () => counter(registry, { name: "stella_frames_total", help: "h", labelNames: ["build_id"] }),
      /unbounded/,
    );
    const a = counter(registry, { name: "stella_frames_total", help: "h", labelNames: ["node"] });
    assert.equal(
      counter(registry, { name: "stella_frames_total", help: "h", labelNames: ["node"] }),
      a,
      "get-or-create",
    );
  });
});

/**
 * The client-node 2.x calls the runtime makes, checked on the wire against a scripted HTTP "apiserver"
 * on 127.0.0.1:0: methods, paths, Content-Type (merge patch), bodies (MicroTime format, resourceVersion
 * preconditions), status-code mapping (404/409) and cancellation through our signal middleware. The real
 * kube-apiserver runs in e2e; this pins the client-node API surface we depend on.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { CoordinationV1Api, CustomObjectsApi, EventsV1Api, KubeConfig, Watch } from "@kubernetes/client-node";
import type { KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { isConflict } from "./errors.ts";
import { KubernetesEventRecorder } from "./events.ts";
import { ResourceInformer } from "./informer.ts";
import { KubernetesLeaseClient } from "./lease-client.ts";
import { patchStatus } from "./status.ts";

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: unknown;
}

type Route = (req: Seen, res: ServerResponse) => void;

let server: Server;
let kubeConfig: KubeConfig;
const seen: Seen[] = [];
let route: Route = (_req, res) => {
  json(res, 404, { kind: "Status", code: 404, reason: "NotFound" });
};

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text === "" ? undefined : JSON.parse(text);
}

before(async () => {
  server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const s: Seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        contentType: req.headers["content-type"],
        body,
      };
      seen.push(s);
      route(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "local", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "ctx", cluster: "local", user: "u" }],
    currentContext: "ctx",
  });
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
});

describe("client-node 2.x on the wire", { timeout: 15_000 }, () => {
  test("status patch: PATCH …/status with application/merge-patch+json and the resourceVersion", async () => {
    seen.length = 0;
    route = (_req, res) => {
      json(res, 200, { metadata: { resourceVersion: "8" }, status: { phase: "Verified" } });
    };
    const api = kubeConfig.makeApiClient(CustomObjectsApi);
    const ref = {
      group: "evidence.stella-ops.org",
      version: "v1alpha1",
      plural: "funcproofs",
      namespace: "apps",
      name: "libc",
    };
    const out = await patchStatus(api, ref, { phase: "Verified" }, { resourceVersion: "7" });
    assert.deepEqual(out.status, { phase: "Verified" });
    assert.equal(seen[0]!.method, "PATCH");
    assert.equal(
      seen[0]!.url,
      "/apis/evidence.stella-ops.org/v1alpha1/namespaces/apps/funcproofs/libc/status?fieldManager=stella-operator",
    );
    assert.equal(seen[0]!.contentType, "application/merge-patch+json");
    assert.deepEqual(seen[0]!.body, { status: { phase: "Verified" }, metadata: { resourceVersion: "7" } });
  });

  test("lease client: 404 → absent, create, replace with resourceVersion, 409 → conflict", async () => {
    seen.length = 0;
    const responses: [number, unknown][] = [
      [404, { kind: "Status", code: 404, reason: "NotFound" }],
      [
        201,
        {
          metadata: {
            name: "stella-operator",
            namespace: "stella-system",
            resourceVersion: "1",
            labels: { a: "b" },
          },
          spec: {
            holderIdentity: "me",
            leaseDurationSeconds: 15,
            renewTime: "2026-01-01T00:00:00.123456Z",
            leaseTransitions: 0,
          },
        },
      ],
      [409, { kind: "Status", code: 409, reason: "Conflict" }],
    ];
    route = (_req, res) => {
      const [status, body] = responses.shift() ?? [500, {}];
      json(res, status, body);
    };
    const client = new KubernetesLeaseClient(
      kubeConfig.makeApiClient(CoordinationV1Api),
      "stella-system",
      "stella-operator",
    );
    const signal = new AbortController().signal;
    assert.equal(await client.get(signal), undefined);
    const record = {
      holderIdentity: "me",
      leaseDurationSeconds: 15,
      acquireTimeMs: Date.UTC(2026, 0, 1),
      renewTimeMs: Date.UTC(2026, 0, 1, 0, 0, 0, 123),
      leaseTransitions: 0,
    };
    const created = await client.create(record, signal);
    assert.equal(created.resourceVersion, "1");
    assert.equal(created.record.renewTimeMs, Date.UTC(2026, 0, 1, 0, 0, 0, 123), "string MicroTime parsed");
    await assert.rejects(
      client.replace(created, { ...record, renewTimeMs: record.renewTimeMs + 2000 }, signal),
      (err: unknown) => isConflict(err),
    );

    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [
        "GET /apis/coordination.k8s.io/v1/namespaces/stella-system/leases/stella-operator",
        "POST /apis/coordination.k8s.io/v1/namespaces/stella-system/leases",
        "PUT /apis/coordination.k8s.io/v1/namespaces/stella-system/leases/stella-operator",
      ],
    );
    const createBody = seen[1]!.body as { spec: Record<string, unknown> };
    assert.equal(createBody.spec.renewTime, "2026-01-01T00:00:00.123000Z", "RFC 3339 with microseconds");
    const replaceBody = seen[2]!.body as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
    assert.equal(replaceBody.metadata.resourceVersion, "1", "optimistic-concurrency precondition");
    assert.deepEqual(replaceBody.metadata.labels, { a: "b" }, "replace keeps the object's metadata");
    assert.equal(replaceBody.spec.renewTime, "2026-01-01T00:00:02.123000Z");
  });

  test("a request is cancelled by its signal (client-node sets no timeout itself)", async () => {
    route = () => undefined; // never answers
    const client = new KubernetesLeaseClient(kubeConfig.makeApiClient(CoordinationV1Api), "ns", "l");
    const ac = new AbortController();
    const pending = client.get(ac.signal);
    setTimeout(() => {
      ac.abort();
    }, 50);
    await assert.rejects(pending, (err: unknown) => (err as Error).name === "AbortError");
  });

  test("events: POST events.k8s.io/v1 Event, then merge-patch the series", async () => {
    seen.length = 0;
    route = (req, res) => {
      json(res, req.method === "POST" ? 201 : 200, req.body);
    };
    const rec = new KubernetesEventRecorder({
      api: kubeConfig.makeApiClient(EventsV1Api),
      reportingInstance: "host_1",
      seriesFlushMs: 1,
    });
    const regarding = {
      apiVersion: "evidence.stella-ops.org/v1alpha1",
      kind: "FuncProof",
      name: "libc",
      namespace: "apps",
    };
    rec.event(regarding, { type: "Warning", reason: "DigestMismatch", action: "Verify", note: "n" });
    await rec.flush();
    rec.event(regarding, { type: "Warning", reason: "DigestMismatch", action: "Verify", note: "n" });
    await new Promise((r) => setTimeout(r, 20));
    await rec.flush();
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url.replace(/libc\.[0-9a-f]+/, "libc.X")} ${s.contentType}`),
      [
        "POST /apis/events.k8s.io/v1/namespaces/apps/events application/json",
        "PATCH /apis/events.k8s.io/v1/namespaces/apps/events/libc.X application/merge-patch+json",
      ],
    );
    const created = seen[0]!.body as Record<string, unknown>;
    assert.match(created.eventTime as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(created.reportingController, "stella-operator");
    assert.deepEqual((seen[1]!.body as { series: { count: number } }).series.count, 2);
    await rec.shutdown(100);
  });

  test("informer: real client-node Watch, list then watch stream, restart after a 500", async () => {
    seen.length = 0;
    let watches = 0;
    route = (req, res) => {
      if (!req.url.includes("watch=true")) {
        json(res, 200, {
          metadata: { resourceVersion: "10" },
          items: [{ metadata: { name: "a", namespace: "apps", resourceVersion: "9" } }],
        });
        return;
      }
      watches++;
      if (watches === 1) {
        res.writeHead(200, { "content-type": "application/json" });
        res.write(
          JSON.stringify({
            type: "ADDED",
            object: { metadata: { name: "b", namespace: "apps", resourceVersion: "11" } },
          }) + "\n",
        );
        setTimeout(() => {
          res.destroy(); // connection reset mid-stream
        }, 20);
        return;
      }
      if (watches === 2) {
        json(res, 500, { kind: "Status", code: 500 });
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }); // stays open
    };
    const api = kubeConfig.makeApiClient(CustomObjectsApi);
    const informer = new ResourceInformer<KubernetesObject>({
      name: "funcproofs",
      path: "/apis/evidence.stella-ops.org/v1alpha1/funcproofs",
      list: async () =>
        (await api.listClusterCustomObject({
          group: "evidence.stella-ops.org",
          version: "v1alpha1",
          plural: "funcproofs",
        })) as KubernetesListObject<KubernetesObject>,
      watch: new Watch(kubeConfig),
      initialBackoffMs: 10,
    });
    const keys: string[] = [];
    informer.onChange((type, key) => keys.push(`${type} ${key}`));
    await informer.start();
    assert.equal(informer.hasSynced(), true);
    for (let i = 0; i < 100 && watches < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(watches >= 3, `watch restarted after reset and 500 (watches=${watches})`);
    assert.deepEqual(keys, ["add apps/a", "add apps/b"]);
    const watchUrls = seen
      .filter((s) => s.url.includes("watch=true"))
      .map((s) => new URL(s.url, "http://x").searchParams.get("resourceVersion"));
    assert.equal(watchUrls[0], "10");
    assert.equal(watchUrls.at(-1), "11", "resumes from the last seen resourceVersion");
    await informer.shutdown();
  });
});

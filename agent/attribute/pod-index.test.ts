/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node models are plain data */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { KubeConfig, Watch, type KubernetesListObject, type V1Pod } from "@kubernetes/client-node";

import { containerIdFromStatus, imageDigestFromImageId, PodIndex, podEntries } from "./pod-index.ts";

const ID1 = "1".repeat(64);
const ID2 = "2".repeat(64);
const ID3 = "3".repeat(64);
const DIGEST = `sha256:${"d".repeat(64)}`;

function pod(
  name: string,
  uid: string,
  statuses: { name: string; id?: string; image?: string }[] = [],
): V1Pod {
  return {
    metadata: { name, namespace: "shop", uid, resourceVersion: String(Math.random()) },
    spec: { nodeName: "node-a", containers: [] },
    status: {
      containerStatuses: statuses.map((s) => ({
        name: s.name,
        image: "nginx",
        imageID: s.image ?? "",
        ready: true,
        restartCount: 0,
        ...(s.id === undefined ? {} : { containerID: s.id }),
      })),
    },
  };
}

/** A Watch that never connects anywhere: the test pushes events through `emit`. */
class ScriptedWatch extends Watch {
  queries: Record<string, unknown>[] = [];
  #cb: ((phase: string, obj: unknown) => void) | undefined;

  constructor() {
    super(new KubeConfig());
  }

  override watch(
    _path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
  ): Promise<AbortController> {
    this.queries.push(queryParams);
    this.#cb = callback;
    return Promise.resolve(new AbortController());
  }

  emit(phase: "ADDED" | "MODIFIED" | "DELETED", obj: V1Pod): void {
    this.#cb?.(phase, obj);
  }
}

describe("container id and image digest parsing", () => {
  it("strips the runtime scheme", () => {
    assert.equal(containerIdFromStatus(`containerd://${ID1}`), ID1);
    assert.equal(containerIdFromStatus(`cri-o://${ID1}`), ID1);
    assert.equal(containerIdFromStatus(`docker://${ID1}`), ID1);
    assert.equal(containerIdFromStatus(ID1), undefined);
    assert.equal(containerIdFromStatus(`containerd://${ID1.slice(1)}`), undefined);
    assert.equal(containerIdFromStatus("containerd://"), undefined);
    assert.equal(containerIdFromStatus(undefined), undefined);
  });

  it("takes the sha256 digest at the end of imageID", () => {
    assert.equal(imageDigestFromImageId(`docker-pullable://nginx@${DIGEST}`), DIGEST);
    assert.equal(imageDigestFromImageId(`docker.io/library/nginx@${DIGEST}`), DIGEST);
    assert.equal(imageDigestFromImageId(DIGEST), DIGEST);
    assert.equal(imageDigestFromImageId(`docker://${DIGEST}`), DIGEST);
    assert.equal(imageDigestFromImageId(""), "");
    assert.equal(imageDigestFromImageId(undefined), "");
    assert.equal(imageDigestFromImageId("nginx:1.27"), "");
    assert.equal(imageDigestFromImageId(`nginx@${DIGEST}x`), "");
    assert.equal(imageDigestFromImageId(`nginx@sha512:${"d".repeat(128)}`), "");
  });

  it("indexes init, regular and ephemeral containers and the mirror pod UID", () => {
    const p = pod("web", "u1", [{ name: "app", id: `containerd://${ID1}`, image: `nginx@${DIGEST}` }]);
    p.metadata!.annotations = { "kubernetes.io/config.mirror": "0123456789abcdef0123456789abcdef" };
    p.status!.initContainerStatuses = [
      {
        name: "init",
        containerID: `containerd://${ID2}`,
        image: "x",
        imageID: "",
        ready: false,
        restartCount: 0,
      },
    ];
    p.status!.ephemeralContainerStatuses = [
      {
        name: "debug",
        containerID: `containerd://${ID3}`,
        image: "x",
        imageID: "",
        ready: false,
        restartCount: 0,
      },
    ];
    const e = podEntries(p)!;
    assert.deepEqual(e.uids, ["u1", "0123456789abcdef0123456789abcdef"]);
    assert.deepEqual(
      e.containers.map(([id, m]) => [id, m.containerName, m.imageDigest]),
      [
        [ID2, "init", ""],
        [ID1, "app", DIGEST],
        [ID3, "debug", ""],
      ],
    );
  });
});

describe("PodIndex (scripted watch)", () => {
  it("lists with the node's field selector, then follows adds, updates and deletes", async () => {
    const watch = new ScriptedWatch();
    let listed = 0;
    const list = (): Promise<KubernetesListObject<V1Pod>> => {
      listed++;
      return Promise.resolve({
        metadata: { resourceVersion: "10" },
        items: [pod("a", "ua", [{ name: "app", id: `containerd://${ID1}`, image: `repo@${DIGEST}` }])],
      });
    };
    const index = new PodIndex({ kubeConfig: new KubeConfig(), nodeName: "node-a", watch, list });
    await index.start();
    assert.equal(await index.synced, true);
    assert.equal(listed, 1);
    assert.equal(watch.queries[0]?.fieldSelector, "spec.nodeName=node-a");
    assert.equal(watch.queries[0]?.resourceVersion, "10");
    assert.deepEqual(index.byContainerId(ID1), {
      pod: "a",
      namespace: "shop",
      podUid: "ua",
      containerName: "app",
      imageDigest: DIGEST,
    });

    // A new pod before its container has an id: UID only.
    watch.emit("ADDED", pod("b", "ub", [{ name: "side" }]));
    assert.deepEqual(index.byPodUid("ub"), { pod: "b", namespace: "shop", podUid: "ub" });
    assert.equal(index.stats().containers, 1);
    // Its status gets the id; the restarted container of pod a gets a new id, the old one goes.
    watch.emit("MODIFIED", pod("b", "ub", [{ name: "side", id: `cri-o://${ID2}` }]));
    watch.emit(
      "MODIFIED",
      pod("a", "ua", [{ name: "app", id: `containerd://${ID3}`, image: `repo@${DIGEST}` }]),
    );
    assert.equal(index.byContainerId(ID2)?.containerName, "side");
    assert.equal(index.byContainerId(ID1), undefined);
    assert.equal(index.byContainerId(ID3)?.pod, "a");
    assert.deepEqual(index.stats(), { pods: 2, containers: 2, restarts: 0 });

    watch.emit("DELETED", pod("a", "ua"));
    assert.equal(index.byContainerId(ID3), undefined);
    assert.equal(index.byPodUid("ua"), undefined);
    assert.deepEqual(index.stats(), { pods: 1, containers: 1, restarts: 0 });
    await index.shutdown();
  });

  it("restarts after a failed list and shuts down on abort", async () => {
    const watch = new ScriptedWatch();
    let calls = 0;
    const list = (): Promise<KubernetesListObject<V1Pod>> => {
      calls++;
      if (calls === 1) return Promise.reject(new Error("connection refused"));
      return Promise.resolve({ metadata: { resourceVersion: "1" }, items: [] });
    };
    const ac = new AbortController();
    const index = new PodIndex({
      kubeConfig: new KubeConfig(),
      nodeName: "node-a",
      watch,
      list,
      signal: ac.signal,
      initialBackoffMs: 5,
    });
    await index.start();
    assert.equal(index.hasSynced, false);
    assert.equal(await index.synced, true);
    assert.equal(calls, 2);
    assert.equal(index.stats().restarts, 1);
    ac.abort();
    await new Promise((r) => setImmediate(r));
    assert.equal(watch.queries.length, 1);
  });

  it("synced resolves false when shut down before the first list", async () => {
    const index = new PodIndex({
      kubeConfig: new KubeConfig(),
      nodeName: "node-a",
      watch: new ScriptedWatch(),
      list: () => Promise.reject(new Error("forbidden")),
      initialBackoffMs: 60_000,
    });
    await index.start();
    await index.shutdown();
    assert.equal(await index.synced, false);
  });

  it("requires a node name", () => {
    assert.throws(() => new PodIndex({ kubeConfig: new KubeConfig(), nodeName: "" }), {
      code: "POD_INDEX_CONFIG",
    });
  });
});

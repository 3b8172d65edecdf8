// Attribution against a real kube-apiserver (no kubelet): Pods are created with spec.nodeName set and their status
// subresource is written the way kubelet writes it (containerID "containerd://<id>", imageID "repo@sha256:<digest>").
// The PodIndex of node-a runs under the chart's own agent ServiceAccount and RBAC, sees node-a's containers and
// never node-b's, follows status changes and deletions; and a real cgroup leaf shaped like a kubelet+containerd
// container, with a live process in it, is attributed to pod, namespace, container name and image digest.
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-misused-spread --
   client-node models are plain data (its serializer reads fields, never prototypes) */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { CoreV1Api, type KubeConfig, type V1ContainerStatus, type V1Pod } from "@kubernetes/client-node";

import { Attributor } from "../agent/attribute/attributor.ts";
import {
  CgroupFixture,
  cgroupSkipReason,
  findCgroupMount,
  randomHex,
} from "../agent/attribute/cgroup-fixture.ts";
import { PodIndex } from "../agent/attribute/pod-index.ts";
import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { applyAgentIdentity } from "./helpers/chart.ts";
import { kubectl, kubectlOk } from "./helpers/kubectl.ts";
import { eventually } from "./helpers/operator-process.ts";

const SYSTEM_NS = "stella-system";
const NS = "shop";
const DIGEST = `sha256:${randomHex(32)}`;
const IMAGE_ID = `docker.io/library/nginx@${DIGEST}`;

let cp: ControlPlane;
let admin: CoreV1Api;
let agentKc: KubeConfig;
let agentSa: string;
const indexes: PodIndex[] = [];

function podManifest(name: string, node: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      nodeName: node,
      containers: [{ name: "app", image: "docker.io/library/nginx:1.27" }],
    },
  };
}

function runningStatus(name: string, containerId: string, restartCount = 0): V1ContainerStatus {
  return {
    name,
    image: "docker.io/library/nginx:1.27",
    imageID: IMAGE_ID,
    containerID: `containerd://${containerId}`,
    ready: true,
    started: true,
    restartCount,
    state: { running: { startedAt: new Date() } },
  };
}

/** Writes status.containerStatuses as kubelet would (replace on the status subresource, as admin). */
async function setStatuses(name: string, statuses: V1ContainerStatus[]): Promise<void> {
  const pod = await admin.readNamespacedPod({ name, namespace: NS });
  pod.status = {
    ...pod.status,
    phase: "Running",
    hostIP: "10.0.0.1",
    podIP: "10.244.0.10",
    startTime: new Date(),
    containerStatuses: statuses,
  };
  await admin.replaceNamespacedPodStatus({ name, namespace: NS, body: pod });
}

async function startIndex(node: string): Promise<PodIndex> {
  const index = new PodIndex({ kubeConfig: agentKc, nodeName: node });
  indexes.push(index);
  await index.start();
  assert.equal(await index.synced, true);
  return index;
}

before(async () => {
  cp = await startControlPlane();
  admin = cp.kubeConfig().makeApiClient(CoreV1Api);
  kubectlOk(cp, ["create", "namespace", NS]);
  kubectlOk(cp, ["create", "namespace", SYSTEM_NS]);
  // The agent's identity exactly as the chart renders it: its ServiceAccount and the RBAC bound to it.
  ({ kubeConfig: agentKc, serviceAccount: agentSa } = await applyAgentIdentity(cp, SYSTEM_NS));
});

after(async () => {
  await Promise.all(indexes.map((i) => i.shutdown()));
  await cp?.stop();
});

describe("PodIndex on a real API server, under the chart's agent RBAC", () => {
  let uidA = "";
  let uidB = "";
  const idA = randomHex(32);
  const idA2 = randomHex(32);
  const idB = randomHex(32);
  let index: PodIndex;

  it("the agent ServiceAccount may read pods and nothing more", () => {
    const can = (...args: string[]): string =>
      kubectl(cp, [
        "auth",
        "can-i",
        "--as",
        `system:serviceaccount:${SYSTEM_NS}:${agentSa}`,
        ...args,
      ]).stdout.trim();
    assert.equal(can("list", "pods", "-A"), "yes");
    assert.equal(can("watch", "pods", "-A"), "yes");
    assert.equal(can("get", "pods", "-n", NS), "yes");
    assert.equal(can("create", "pods", "-n", NS), "no");
    assert.equal(can("patch", "pods", "-n", NS, "--subresource=status"), "no");
    assert.equal(can("list", "secrets", "-A"), "no");
  });

  it("indexes the pods of its own node only", async () => {
    uidA = (await admin.createNamespacedPod({ namespace: NS, body: podManifest("web-a", "node-a") }))
      .metadata!.uid!;
    uidB = (await admin.createNamespacedPod({ namespace: NS, body: podManifest("web-b", "node-b") }))
      .metadata!.uid!;
    index = await startIndex("node-a");
    assert.deepEqual(index.byPodUid(uidA), { pod: "web-a", namespace: NS, podUid: uidA });
    assert.equal(index.byPodUid(uidB), undefined);
    assert.deepEqual(index.stats(), { pods: 1, containers: 0, restarts: 0 });
  });

  it("picks up container ids and image digests from status updates, never node-b's", async () => {
    // node-b first: once node-a's later event has arrived, node-b's would have too (one watch, resourceVersion order).
    await setStatuses("web-b", [runningStatus("app", idB)]);
    await setStatuses("web-a", [runningStatus("app", idA)]);
    const meta = await eventually("web-a's container in the index", 15_000, () => index.byContainerId(idA));
    assert.deepEqual(meta, {
      pod: "web-a",
      namespace: NS,
      podUid: uidA,
      containerName: "app",
      imageDigest: DIGEST,
    });
    assert.equal(index.byContainerId(idB), undefined);
    assert.equal(index.byPodUid(uidB), undefined);
    assert.deepEqual(index.stats(), { pods: 1, containers: 1, restarts: 0 });
  });

  it("follows a container restart (new container id)", async () => {
    await setStatuses("web-a", [runningStatus("app", idA2, 1)]);
    await eventually("the restarted container", 15_000, () => index.byContainerId(idA2));
    assert.equal(index.byContainerId(idA), undefined);
  });

  it("a second index for node-b sees node-b's container only", async () => {
    const b = await startIndex("node-b");
    assert.equal(b.byContainerId(idB)?.pod, "web-b");
    assert.equal(b.byContainerId(idA2), undefined);
    assert.equal(b.byPodUid(uidA), undefined);
  });

  describe(
    "with a real cgroup leaf",
    { skip: cgroupSkipReason(2) === undefined ? false : (cgroupSkipReason(1) ?? false) },
    () => {
      let fx: CgroupFixture;
      let pid = 0;
      let pendingPid = 0;
      const pendingId = randomHex(32);

      before(async () => {
        // The v2 hierarchy when there is one (also on hybrid hosts), else a v1 one.
        fx = new CgroupFixture(findCgroupMount(2) ?? findCgroupMount(1)!);
        const podSlice = `kubepods-burstable-pod${uidA.replaceAll("-", "_")}.slice`;
        pid = await fx.spawnInto(
          fx.mkdirs(["kubepods-burstable.slice", podSlice, `cri-containerd-${idA2}.scope`]),
        );
        // A container kubelet has not reported yet: only the pod UID in its cgroup path identifies it.
        pendingPid = await fx.spawnInto(
          fx.mkdirs(["kubepods-burstable.slice", podSlice, `cri-containerd-${pendingId}.scope`]),
        );
      });

      after(async () => {
        await fx?.cleanup();
      });

      it("attributes a live process to pod, namespace, container name and image digest", () => {
        const a = new Attributor({ podLookup: index });
        assert.deepEqual(a.attribute(pid), {
          container: idA2,
          pod: "web-a",
          namespace: NS,
          containerName: "app",
          imageDigest: DIGEST,
        });
        assert.deepEqual(a.attribute(pendingPid), {
          container: pendingId,
          pod: "web-a",
          namespace: NS,
          containerName: "",
          imageDigest: "",
        });
        assert.equal(a.attribute(process.ppid)?.pod, "");
        const s = a.stats();
        assert.equal(s.podResolved, 2);
      });

      it("after the pod is deleted, the container id remains but the pod is unknown", async () => {
        await admin.deleteNamespacedPod({ name: "web-a", namespace: NS, gracePeriodSeconds: 0 });
        await eventually("web-a gone from the index", 15_000, () =>
          index.byPodUid(uidA) === undefined ? true : undefined,
        );
        assert.equal(index.byContainerId(idA2), undefined);
        assert.deepEqual(index.stats(), { pods: 0, containers: 0, restarts: 0 });
        const a = new Attributor({ podLookup: index });
        assert.deepEqual(a.attribute(pid), {
          container: idA2,
          pod: "",
          namespace: "",
          containerName: "",
          imageDigest: "",
        });
        assert.equal(a.stats().podUnknown, 1);
      });
    },
  );

  it("removes a deleted pod (also without cgroups)", async () => {
    await admin
      .deleteNamespacedPod({ name: "web-a", namespace: NS, gracePeriodSeconds: 0 })
      .catch(() => undefined);
    await eventually("web-a gone from the index", 15_000, () =>
      index.byPodUid(uidA) === undefined ? true : undefined,
    );
    assert.equal(index.byContainerId(idA2), undefined);
  });
});

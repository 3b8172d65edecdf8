// The DaemonSet's path end to end on a real control plane: `stella agent run` with the chart's own
// agent.yaml and ServiceAccount, real bpftrace sampling a workload inside a containerd-shaped cgroup, the
// pod (and its container id and image digest) known only from the API server, and a real gRPC ingest
// receiving the batches: the stacks arrive attributed to pod, namespace, container and image digest.
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment --
   client-node's V1* models are data-only classes; the API client serialises plain objects the same. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { CoreV1Api, type KubeConfig, type V1Pod, type V1PodStatus } from "@kubernetes/client-node";
import { parse, stringify } from "yaml";

import { CgroupFixture, findCgroupMount, randomHex } from "../agent/attribute/cgroup-fixture.ts";
import { loadAgentConfig } from "../agent/config.ts";
import { runAgent } from "../agent/main.ts";
import { startCollectingIngest } from "../agent/testing/ingest.ts";
import { buildWorkload, readelfBuildId } from "../agent/testing/workload.ts";
import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { applyAgentIdentity } from "./helpers/chart.ts";
import { kubectlOk } from "./helpers/kubectl.ts";

const SYSTEM_NS = "stella-system";
const NS = "shop";
const NODE = "node-e2e";
const DIGEST = `sha256:${randomHex(32)}`;
const CONTAINER_ID = randomHex(32);

function podManifest(): V1Pod {
  return {
    metadata: { name: "apigw-0", namespace: NS },
    spec: { nodeName: NODE, containers: [{ name: "apigw", image: "registry.example/apigw:1.2" }] },
  };
}

/** status as kubelet writes it once the container runs. */
function runningStatus(): V1PodStatus {
  return {
    phase: "Running",
    containerStatuses: [
      {
        name: "apigw",
        image: "registry.example/apigw:1.2",
        imageID: `registry.example/apigw@${DIGEST}`,
        containerID: `containerd://${CONTAINER_ID}`,
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date() } },
      },
    ],
  };
}

let cp: ControlPlane;
let agentKc: KubeConfig;
let chartAgentYaml = "";
let fx: CgroupFixture | undefined;
let dir = "";

before(async () => {
  cp = await startControlPlane();
  kubectlOk(cp, ["create", "namespace", NS]);
  kubectlOk(cp, ["create", "namespace", SYSTEM_NS]);
  const identity = await applyAgentIdentity(cp, SYSTEM_NS);
  agentKc = identity.kubeConfig;
  const cm = identity.manifests.find((m) => m.kind === "ConfigMap" && m.data?.["agent.yaml"] !== undefined);
  chartAgentYaml = cm?.data?.["agent.yaml"] ?? "";
  dir = mkdtempSync(join(tmpdir(), "stella-agent-e2e-"));
});

after(async () => {
  await fx?.cleanup();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("stella agent run on a real control plane", () => {
  it("the chart's agent.yaml is a valid agent configuration", () => {
    assert.notEqual(chartAgentYaml, "", "the chart renders agent.yaml");
    const c = loadAgentConfig({
      fileText: chartAgentYaml,
      fileName: "agent.yaml",
      env: { NODE_NAME: NODE, STELLA_HOST_CGROUP_ROOT: "/host/sys/fs/cgroup" },
    });
    assert.equal(c.node, NODE);
    assert.equal(c.sampling.frequencyHz, 19);
    assert.equal(c.attribution.kubernetes, "on");
    assert.match(c.operator?.address ?? "", /^stella-ingest\.stella-system\.svc\.cluster\.local:\d+$/);
  });

  it("stacks of a container arrive attributed to its pod, namespace, container name and image digest", async (t) => {
    // The pod, as kubelet would report it once the container runs.
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const pod = await core.createNamespacedPod({ namespace: NS, body: podManifest() });
    const uid = pod.metadata?.uid ?? "";
    pod.status = runningStatus();
    await core.replaceNamespacedPodStatus({ name: "apigw-0", namespace: NS, body: pod });

    // The container: the workload in a containerd-shaped cgroup leaf of that pod.
    const mount = findCgroupMount(2);
    assert.ok(mount, "a cgroup v2 hierarchy (pure or hybrid)");
    fx = new CgroupFixture(mount);
    const leaf = fx.mkdirs([
      "kubepods.slice",
      `kubepods-pod${uid.replaceAll("-", "_")}.slice`,
      `cri-containerd-${CONTAINER_ID}.scope`,
    ]);
    const { exe } = buildWorkload(dir);
    await fx.spawnInto(leaf, exe, []);

    // The operator's side: a real gRPC server that acks every batch.
    const ingest = await startCollectingIngest();
    const { port, batches } = ingest;

    const ac = new AbortController();
    // The chart's file with a faster interval and this container as the target (the chart samples all).
    const cfg = parse(chartAgentYaml) as { sampling: Record<string, unknown> };
    cfg.sampling = { ...cfg.sampling, frequencyHz: 99, intervalSeconds: 1, target: { cgroup: leaf } };
    const done = runAgent({
      fileText: stringify(cfg),
      fileName: "agent.yaml",
      // The chart's environment, with this machine's cgroup mount and test-only addresses.
      env: { NODE_NAME: NODE },
      overrides: {
        operatorAddr: `127.0.0.1:${port}`,
        metricsAddr: "127.0.0.1:0",
        healthAddr: "127.0.0.1:0",
        logLevel: "warn",
      },
      kubeConfig: agentKc,
      signal: ac.signal,
    });
    await sleep(5000);
    ac.abort();
    assert.equal(await done, 0);
    await ingest.stop();

    const samples = batches.flatMap((b) => b.samples);
    t.diagnostic(`${batches.length} batches, ${samples.length} stacks`);
    assert.ok(samples.length > 0, "stacks arrived");
    for (const s of samples) {
      assert.deepEqual(
        {
          container: s.container,
          pod: s.pod,
          namespace: s.namespace,
          name: s.containerName,
          image: s.imageDigest,
        },
        { container: CONTAINER_ID, pod: "apigw-0", namespace: NS, name: "apigw", image: DIGEST },
      );
    }
    const id = readelfBuildId(exe);
    assert.ok(
      samples.some((s) => s.frames[0]?.buildId === id && s.frames[0]?.symbol === "stella_hot"),
      "the container's hot function, by BuildID",
    );
    assert.ok(batches.every((b) => b.node === NODE));
  });
});

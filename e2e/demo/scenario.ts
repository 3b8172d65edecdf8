/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment --
   client-node's V1* models are data-only classes; the API client serialises plain objects the same. */
// The demo's world, shared by `make demo` (e2e/demo/demo.ts) and the VEX e2e suite: a real control plane
// with the CRDs, the operator (gRPC ingest, hot-symbol index, controllers) as a process, the sample
// workload running stripped inside a containerd-shaped cgroup of a pod on node "demo-node", its FuncProof
// from the unstripped build, and `stella agent run` sampling this machine and shipping to the operator.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { CoreV1Api, type V1Pod, type V1PodStatus } from "@kubernetes/client-node";
import { stringify } from "yaml";

import { CgroupFixture, findCgroupMount, randomHex } from "../../agent/attribute/cgroup-fixture.ts";
import { FRAME_POINTER_FLAGS } from "../../agent/testing/workload.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { installCrds, kubectlOk } from "../helpers/kubectl.ts";
import { startOperator, type OperatorProcess } from "../helpers/operator-process.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const CLI = join(REPO, "cli/stella.ts");
export const DEMO_NODE = "demo-node";
export const DEMO_NS = "shop";
export const SYSTEM_NS = "stella-system";

export interface DemoOptions {
  log: (line: string) => void;
  /** Agent batch interval, seconds (default 2). */
  intervalSeconds?: number;
  hz?: number;
}

export interface Demo {
  cp: ControlPlane;
  dir: string;
  operator: OperatorProcess;
  imageDigest: string;
  buildId: string;
  /** The unstripped build (its FuncProof names the stripped one's frames). */
  exe: string;
  stripped: string;
  workloadPid: number;
  agentLog: string;
  /** Restarts the operator on the same ingest port and write-ahead log (a crash when `kill`). */
  restartOperator(kill: boolean): Promise<void>;
  applyStatement(name: string, cve: string, symbols: string[], policy?: Record<string, number>): void;
  stop(): Promise<void>;
}

function stella(args: string[], input?: string): string {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: "utf8", input, maxBuffer: 1 << 28 });
}

function podManifest(): V1Pod {
  return {
    metadata: { name: "apigw-0", namespace: DEMO_NS, labels: { app: "apigw" } },
    spec: {
      nodeName: DEMO_NODE,
      containers: [{ name: "apigw", image: "registry.example/shop/apigw:1.4.2" }],
    },
  };
}

function runningStatus(containerId: string, imageDigest: string): V1PodStatus {
  return {
    phase: "Running",
    containerStatuses: [
      {
        name: "apigw",
        image: "registry.example/shop/apigw:1.4.2",
        imageID: `registry.example/shop/apigw@${imageDigest}`,
        containerID: `containerd://${containerId}`,
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date() } },
      },
    ],
  };
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  const say = o.log;
  const dir = mkdtempSync(join(tmpdir(), "stella-demo-"));
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      rmSync(dir, { recursive: true, force: true });
    },
  ];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        say(`cleanup: ${String(err)}`);
      }
    }
    cleanups.length = 0;
  };
  try {
    say("starting a local control plane (kube-apiserver + etcd)");
    const cp = await startControlPlane();
    cleanups.push(() => cp.stop());
    installCrds(cp);
    kubectlOk(cp, ["create", "namespace", SYSTEM_NS]);
    kubectlOk(cp, ["create", "namespace", DEMO_NS]);

    say("keys: release (signs FuncProofs) and operator (signs VEX documents)");
    stella(["keygen", "--type", "ecdsa-p256", "--out", join(dir, "release")]);
    stella(["keygen", "--type", "ecdsa-p256", "--out", join(dir, "operator")]);
    kubectlOk(cp, [
      "create",
      "secret",
      "generic",
      "stella-trusted-keys",
      "-n",
      SYSTEM_NS,
      `--from-file=release.pub=${join(dir, "release.pub")}`,
    ]);

    say("building the sample workload (apigw) and its FuncProof from the unstripped build");
    const exe = join(dir, "apigw");
    const stripped = join(dir, "image", "apigw");
    mkdirSync(join(dir, "image"));
    execFileSync("gcc", [
      ...FRAME_POINTER_FLAGS,
      "-Wl,--build-id",
      "-o",
      exe,
      join(REPO, "e2e/demo/apigw.c"),
    ]);
    execFileSync("strip", ["-o", stripped, exe]);
    const buildId =
      /Build ID: ([0-9a-f]+)/.exec(execFileSync("readelf", ["-n", exe], { encoding: "utf8" }))?.[1] ?? "";
    // No registry here: the "image digest" is the sha256 of the shipped (stripped) binary.
    const imageDigest = `sha256:${createHash("sha256").update(readFileSync(stripped)).digest("hex")}`;
    // The image's other binary that shows up in its stacks: libc (what `stella funcproof IMAGE` would prove too).
    const libc = execFileSync("sh", ["-c", `ldd ${exe} | awk '/libc.so/ {print $3}'`], {
      encoding: "utf8",
    }).trim();
    for (const file of [exe, libc]) {
      const cr = stella(["funcproof", file, "--sign", join(dir, "release.key"), "--emit-cr"]);
      kubectlOk(cp, ["apply", "--server-side", "-f", "-"], cr);
    }

    say("starting the operator (gRPC ingest, hot-symbol index, FuncProof and VexStatement controllers)");
    const kubeconfigPath = join(dir, "admin.kubeconfig");
    writeFileSync(kubeconfigPath, cp.kubeConfig().exportConfig());
    const operatorArgs = [
      `--namespace=${SYSTEM_NS}`,
      "--leader-elect=false",
      "--trusted-keys-secret=stella-trusted-keys",
      `--signing-key-file=${join(dir, "operator.key")}`,
      `--wal-dir=${join(dir, "wal")}`,
      "--log-level=info",
    ];
    let operator = await startOperator({
      kubeconfigPath,
      args: operatorArgs,
      env: {},
      dir,
      name: "operator",
    });
    cleanups.push(async () => {
      await operator.stop();
    });

    say("the pod apigw-0 on node demo-node, as kubelet reports it, and its container in a cgroup");
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const containerId = randomHex(32);
    const pod = await core.createNamespacedPod({ namespace: DEMO_NS, body: podManifest() });
    pod.status = runningStatus(containerId, imageDigest);
    await core.replaceNamespacedPodStatus({ name: "apigw-0", namespace: DEMO_NS, body: pod });
    const mount = findCgroupMount(2);
    if (!mount) throw new Error("no cgroup v2 hierarchy mounted");
    const fx = new CgroupFixture(mount);
    cleanups.push(() => fx.cleanup());
    const leaf = fx.mkdirs([
      "kubepods.slice",
      `kubepods-pod${(pod.metadata?.uid ?? "").replaceAll("-", "_")}.slice`,
      `cri-containerd-${containerId}.scope`,
    ]);
    const workloadPid = await fx.spawnInto(leaf, stripped, []);

    say("starting the agent (stella agent run): bpftrace on this machine, stacks to the operator over gRPC");
    const agentCfg = join(dir, "agent.yaml");
    writeFileSync(
      agentCfg,
      stringify({
        node: DEMO_NODE,
        sampling: { frequencyHz: o.hz ?? 49, intervalSeconds: o.intervalSeconds ?? 2, target: "all" },
        attribution: { kubernetes: "on" },
        operator: { address: `127.0.0.1:${operator.ingestPort}`, tls: { insecure: true } },
        metricsAddr: "127.0.0.1:0",
        healthAddr: "127.0.0.1:0",
        logLevel: "info",
        shutdownTimeoutSeconds: 5,
      }),
    );
    const agentLog = join(dir, "agent.log");
    const fd = openSync(agentLog, "a");
    const agent: ChildProcess = spawn(process.execPath, [CLI, "agent", "run", "--config", agentCfg], {
      env: { PATH: process.env.PATH ?? "", KUBECONFIG: kubeconfigPath },
      stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    const agentExited = new Promise<void>((r) => {
      agent.once("exit", () => {
        r();
      });
    });
    cleanups.push(async () => {
      agent.kill("SIGTERM");
      await Promise.race([agentExited, new Promise((r) => setTimeout(r, 10_000))]);
      agent.kill("SIGKILL");
    });

    return {
      cp,
      dir,
      get operator() {
        return operator;
      },
      imageDigest,
      buildId,
      exe,
      stripped,
      workloadPid,
      agentLog,
      async restartOperator(kill: boolean) {
        const port = operator.ingestPort;
        if (kill) await operator.kill();
        else await operator.stop();
        operator = await startOperator({
          kubeconfigPath,
          args: operatorArgs,
          env: {},
          dir,
          name: "operator",
          ingestPort: port,
        });
      },
      applyStatement(name, cve, symbols, policy = {}) {
        kubectlOk(
          cp,
          ["apply", "--server-side", "-f", "-"],
          stringify({
            apiVersion: "evidence.stella-ops.org/v1alpha1",
            kind: "VexStatement",
            metadata: { name, namespace: DEMO_NS },
            spec: {
              vulnerability: { id: cve },
              product: { imageDigest },
              symbols: symbols.map((s) => ({ name: s })),
              policy: {
                windowSeconds: 60,
                minSamples: 3,
                notAffectedAfterSeconds: 60,
                revisitSeconds: 60,
                ...policy,
              },
            },
          }),
        );
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

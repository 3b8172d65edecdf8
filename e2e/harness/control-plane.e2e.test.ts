// Tests for the control-plane harness itself: it starts a usable cluster with RBAC on, stops it completely, and leaves
// no etcd/kube-apiserver behind however the test process ends. With STELLA_E2E_KUBECONFIG set (make e2e-kind) only
// the cluster-level tests run; the process-level ones are skipped.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  V1SelfSubjectReview,
} from "@kubernetes/client-node";
import {
  startControlPlane,
  sweepStaleControlPlanes,
  TEMP_PREFIX,
  type ControlPlane,
} from "./control-plane.ts";
import { toolPath } from "./tools.ts";

const execFileP = promisify(execFile);
const external = Boolean(process.env.STELLA_E2E_KUBECONFIG);
const localOnly = { skip: external ? "uses an existing cluster (STELLA_E2E_KUBECONFIG)" : false };
const FIXTURE = join(import.meta.dirname, "fixtures/hold-control-plane.ts");
const FAKE_APISERVER = join(import.meta.dirname, "fixtures/fake-apiserver.sh");
const CLUSTER_CLI = join(import.meta.dirname, "../cluster.ts");

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const uniqueDir = (what: string): string =>
  join(tmpdir(), `${TEMP_PREFIX}${what}-${randomBytes(4).toString("hex")}`);

/** Processes whose command line contains `pattern` (pgrep -f), as "pid command" lines. */
async function pgrep(pattern: string): Promise<string[]> {
  try {
    const { stdout } = await execFileP("pgrep", ["-af", pattern]);
    return stdout.split("\n").filter((l) => l.trim() !== "");
  } catch (e) {
    if ((e as { code?: unknown }).code === 1) return [];
    throw e;
  }
}

/** Waits until no process mentions `pattern`; returns how long that took. */
async function waitNoProcesses(pattern: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (true) {
    const left = await pgrep(pattern);
    if (left.length === 0) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) {
      assert.fail(`still running after ${secs(timeoutMs)}:\n${left.join("\n")}`);
    }
    await sleep(50);
  }
}

async function portClosed(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      res(false);
    });
    s.once("error", () => {
      res(true);
    });
  });
}

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileP(toolPath("kubectl"), ["--kubeconfig", kubeconfig, ...args]);
  return stdout;
}

// ---- one control plane, started cold --------------------------------------------------------------------------------

let cp: ControlPlane | undefined;
let coldMs = 0;
after(async () => {
  await cp?.stop();
});

test("start: kubectl get ns lists default and kube-system", async (t) => {
  const t0 = performance.now();
  cp = await startControlPlane();
  coldMs = performance.now() - t0;
  if (!external) {
    assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    t.diagnostic(
      `cold start ${secs(coldMs)} (certs ${secs(cp.timings.certsMs)}, etcd ${secs(cp.timings.etcdMs)}, ` +
        `kube-apiserver ${secs(cp.timings.apiserverMs)})`,
    );
  }
  assert.match(cp.caPem, /BEGIN CERTIFICATE/);
  const names = (await kubectl(cp.kubeconfigPath, "get", "ns", "-o", "name")).split("\n");
  assert.ok(names.includes("namespace/default"), names.join(" "));
  assert.ok(names.includes("namespace/kube-system"), names.join(" "));
});

test("RBAC is enforced for ServiceAccount tokens from the TokenRequest API", async (t) => {
  assert.ok(cp);
  const objects = KubernetesObjectApi.makeApiClient(cp.kubeConfig());
  const ns = `rbac-probe-${randomBytes(3).toString("hex")}`;
  const nsObject = await objects.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  t.after(async () => {
    await objects.delete(nsObject).catch(() => {});
  });
  await objects.create({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "probe", namespace: ns },
  });

  const sa = await cp.serviceAccountKubeConfig(ns, "probe", { expirationSeconds: 600 });
  const review = await sa
    .makeApiClient(AuthenticationV1Api)
    .createSelfSubjectReview({ body: new V1SelfSubjectReview() });
  assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${ns}:probe`);

  const core = sa.makeApiClient(CoreV1Api);
  const listSecrets = async (namespace: string): Promise<number> => {
    try {
      await core.listNamespacedSecret({ namespace });
      return 200;
    } catch (e) {
      if (e instanceof ApiException) return e.code;
      throw e;
    }
  };
  assert.equal(await listSecrets(ns), 403, "a ServiceAccount without bindings must not list secrets");

  await objects.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "secret-lister", namespace: ns },
    rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["list"] }],
  });
  await objects.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: "probe-secret-lister", namespace: ns },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "secret-lister" },
    subjects: [{ kind: "ServiceAccount", name: "probe", namespace: ns }],
  });
  // The RBAC authorizer sees new bindings through an informer: poll briefly.
  const t0 = performance.now();
  let code: number;
  while ((code = await listSecrets(ns)) !== 200 && performance.now() - t0 < 10_000) await sleep(50);
  assert.equal(code, 200, "the RoleBinding should allow listing secrets");
  t.diagnostic(`RoleBinding effective after ${Math.round(performance.now() - t0)} ms`);
  assert.equal(await listSecrets("kube-system"), 403, "the RoleBinding is namespaced");

  await assert.rejects(cp.serviceAccountKubeConfig(ns, "missing"), /ServiceAccount .*\/missing not found/);
});

test("stop: pids gone, ports closed, dir removed", localOnly, async (t) => {
  assert.ok(cp?.ports);
  const { processes, ports, dir } = cp;
  for (const p of processes) assert.ok(!pidGone(p.pid), `${p.name} should be running`);
  for (const port of Object.values(ports))
    assert.ok(!(await portClosed(port)), `port ${port} should be open`);
  const t0 = performance.now();
  await cp.stop();
  t.diagnostic(`stop took ${secs(performance.now() - t0)}`);
  cp = undefined;
  for (const p of processes) assert.ok(pidGone(p.pid), `${p.name} (pid ${p.pid}) should be gone`);
  for (const port of Object.values(ports)) assert.ok(await portClosed(port), `port ${port} should be closed`);
  assert.deepEqual(await pgrep(dir), []);
  assert.ok(!existsSync(dir), `${dir} should be removed`);
});

test("warm start (second start in this process)", localOnly, async (t) => {
  const t0 = performance.now();
  const second = await startControlPlane({ keepDir: true });
  const warmMs = performance.now() - t0;
  try {
    t.diagnostic(
      `cold start ${secs(coldMs)}, warm start ${secs(warmMs)} (certs ${secs(second.timings.certsMs)}, ` +
        `etcd ${secs(second.timings.etcdMs)}, kube-apiserver ${secs(second.timings.apiserverMs)})`,
    );
    assert.ok(
      (await kubectl(second.kubeconfigPath, "get", "ns", "default", "-o", "name")).includes("default"),
    );
  } finally {
    await second.stop();
  }
  // keepDir: logs and state survive, marked stopped.
  assert.ok(existsSync(join(second.dir, "kube-apiserver.log")));
  assert.deepEqual(await pgrep(second.dir), []);
  await rm(second.dir, { recursive: true, force: true });
});

// ---- start-up failures --------------------------------------------------------------------------------------------

test(
  "a kube-apiserver that never gets ready: clear error with the log tail, nothing left",
  localOnly,
  async () => {
    const dir = uniqueDir("fake");
    await assert.rejects(
      startControlPlane({
        dir,
        timeoutMs: 3000,
        existingKubeconfig: null,
        binaries: { kubeApiserver: FAKE_APISERVER },
      }),
      (e: Error) => {
        assert.match(e.message, /timed out waiting for kube-apiserver https:\/\/127\.0\.0\.1:\d+\/readyz/);
        assert.match(
          e.message,
          /last lines of .*kube-apiserver\.log -----\nfake kube-apiserver: started with/,
        );
        return true;
      },
    );
    // The fake's child (a `sh -c sleep` in the same process group) is gone too: the whole group was killed.
    assert.deepEqual(await pgrep(dir), []);
    assert.ok(!existsSync(dir));
  },
);

test("a kube-apiserver that exits: error says so at once", localOnly, async () => {
  const dir = uniqueDir("fake");
  process.env.FAKE_APISERVER = "exit";
  try {
    const t0 = performance.now();
    await assert.rejects(
      startControlPlane({ dir, existingKubeconfig: null, binaries: { kubeApiserver: FAKE_APISERVER } }),
      /kube-apiserver exited during start-up \(exit code 3\)[^]*deliberate start-up failure/,
    );
    assert.ok(performance.now() - t0 < 15_000);
  } finally {
    delete process.env.FAKE_APISERVER;
  }
  assert.deepEqual(await pgrep(dir), []);
});

// ---- no process left behind when the test process dies -----------------------------------------------------------

interface Fixture {
  dir: string;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Runs fixtures/hold-control-plane.ts MODE DIR and waits until its control plane is ready. */
async function startFixture(
  mode: "hold" | "return" | "throw",
  env: NodeJS.ProcessEnv = {},
  detached = false,
): Promise<Fixture> {
  const dir = uniqueDir("child");
  const child = spawn(process.execPath, [FIXTURE, mode, dir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
    detached,
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once("exit", (code, signal) => {
      res({ code, signal });
    });
  });
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((res) => lines.once("line", res)),
    exited.then((x) => {
      throw new Error(`fixture exited before ready (${JSON.stringify(x)}):\n${stderr}`);
    }),
    sleep(90_000, undefined, { ref: false }).then(() => {
      throw new Error(`fixture not ready after 90 s:\n${stderr}`);
    }),
  ]);
  const info = JSON.parse(first) as { dir: string; pids: number[] };
  assert.equal(info.dir, dir);
  assert.equal(info.pids.length, 2);
  assert.ok(child.pid !== undefined);
  return { dir, pid: child.pid, exited, stderr: () => stderr };
}

test("SIGKILLed test process: the watchdog stops etcd and kube-apiserver", localOnly, async (t) => {
  // In its own process group, and we SIGKILL the whole group, as a CI timeout would: the watchdog and the servers
  // live in their own sessions and are not hit by that.
  const f = await startFixture("hold", {}, true);
  assert.equal((await pgrep(`${f.dir}/`)).length, 2, "etcd and kube-apiserver are running");
  process.kill(-f.pid, "SIGKILL");
  assert.equal((await f.exited).signal, "SIGKILL");
  const ms = await waitNoProcesses(f.dir, 10_000);
  t.diagnostic(`no etcd/kube-apiserver/watchdog left ${Math.round(ms)} ms after SIGKILL`);
  for (let i = 0; i < 40 && existsSync(f.dir); i++) await sleep(50);
  assert.ok(!existsSync(f.dir), "the watchdog removes the temp dir");
});

const inProcess = [
  { name: "SIGTERM", mode: "hold", signal: "SIGTERM", expect: { code: null, signal: "SIGTERM" } },
  { name: "SIGINT", mode: "hold", signal: "SIGINT", expect: { code: null, signal: "SIGINT" } },
  { name: "exit without stop()", mode: "return", signal: undefined, expect: { code: 0, signal: null } },
  { name: "uncaught exception", mode: "throw", signal: undefined, expect: { code: 1, signal: null } },
] as const;

for (const c of inProcess) {
  test(`${c.name}: in-process cleanup leaves nothing behind (watchdog off)`, localOnly, async (t) => {
    const f = await startFixture(c.mode, { STELLA_E2E_NO_REAPER: "1" });
    if (c.signal) process.kill(f.pid, c.signal);
    assert.deepEqual(await f.exited, c.expect, f.stderr());
    // Synchronous SIGKILL in the handler: gone at once (allow a moment for the kernel to tear them down).
    const ms = await waitNoProcesses(f.dir, 2000);
    t.diagnostic(`nothing left ${Math.round(ms)} ms after the process ended`);
    assert.ok(!existsSync(f.dir), "the temp dir is removed");
  });
}

test("SIGKILL with the watchdog off leaves processes; the next start sweeps them", localOnly, async (t) => {
  const f = await startFixture("hold", { STELLA_E2E_NO_REAPER: "1" });
  process.kill(f.pid, "SIGKILL");
  await f.exited;
  await sleep(1000);
  assert.equal((await pgrep(`${f.dir}/`)).length, 2, "without the watchdog etcd and kube-apiserver survive");
  const swept = await sweepStaleControlPlanes((l) => {
    t.diagnostic(l);
  });
  assert.ok(swept.includes(f.dir), `swept ${swept.join(", ")}`);
  assert.deepEqual(await pgrep(f.dir), []);
  assert.ok(!existsSync(f.dir));
});

// ---- the CLI for people ----------------------------------------------------------------------------------------------

test("node e2e/cluster.ts up / status / down", localOnly, async (t) => {
  const dir = uniqueDir("cli");
  const cli = (...args: string[]): Promise<{ stdout: string; code: number }> =>
    execFileP(process.execPath, [CLUSTER_CLI, ...args, "--dir", dir]).then(
      (r) => ({ stdout: r.stdout, code: 0 }),
      (e: unknown) => {
        const err = e as { stdout?: string; code?: number };
        return { stdout: err.stdout ?? "", code: err.code ?? -1 };
      },
    );
  try {
    const t0 = performance.now();
    const upResult = await cli("up");
    t.diagnostic(`cluster.ts up took ${secs(performance.now() - t0)}`);
    assert.equal(upResult.code, 0, upResult.stdout);
    assert.match(upResult.stdout, new RegExp(`^export KUBECONFIG=${dir}/kubeconfig$`, "m"));
    assert.match(upResult.stdout, /^export PATH=.*\/bin:\$PATH$/m);
    // The command has exited; the cluster keeps running.
    assert.equal((await pgrep(`${dir}/`)).length, 2);
    assert.match(await kubectl(join(dir, "kubeconfig"), "get", "ns", "-o", "name"), /namespace\/default/);
    const st = await cli("status");
    assert.equal(st.code, 0, st.stdout);
    assert.match(st.stdout, /status:\s+ready/);
    assert.equal((await cli("up")).code, 0, "up again: already running");
    assert.equal((await pgrep(`${dir}/`)).length, 2);
    assert.equal((await cli("down")).code, 0);
    assert.deepEqual(await pgrep(dir), []);
    assert.ok(!existsSync(dir));
    assert.equal((await cli("status")).code, 1);
  } finally {
    await cli("down");
  }
});

// The operator on a real API server, under the chart's own ServiceAccount and RBAC: the chart
// lints, renders and applies; signed FuncProofs become Verified=True, bad ones Verified=False with
// their reason and an Event; two replicas elect one leader, and a killed leader is replaced.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { parseAllDocuments, stringify } from "yaml";

import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { toolPath } from "./harness/tools.ts";
import { applyOperatorIdentity } from "./helpers/chart.ts";
import { installCrds, kubectl, kubectlOk } from "./helpers/kubectl.ts";
import { eventually, startOperator, type OperatorProcess } from "./helpers/operator-process.ts";

const NS = "stella-system";
const REPO = new URL("../", import.meta.url).pathname;
const CLI = join(REPO, "cli/stella.ts");
const FIXTURES = join(REPO, "core/testdata/out");

let cp: ControlPlane;
let work: string;
let deployment: { args: string[]; env: Record<string, string> };
let saKubeconfig: string;
const operators: OperatorProcess[] = [];

interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
}

function stella(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`stella ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function helm(...args: string[]): string {
  const r = spawnSync(toolPath("helm"), args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A FuncProof resource for `file`, signed with `key`, as `stella funcproof --emit-cr` writes it. */
function funcProofCr(file: string, key: string): K8sObject {
  const out = mkdtempSync(join(work, "cr-"));
  stella("funcproof", file, "--sign", key, "--emit-cr", "--out", out);
  const name = readdirSync(out).find((f) => f.endsWith(".cr.yaml"));
  assert.ok(name);
  return parseAllDocuments(readFileSync(join(out, name), "utf8"))[0]!.toJS() as K8sObject;
}

function apply(obj: unknown): void {
  kubectlOk(cp, ["apply", "--server-side", "-f", "-"], stringify(obj));
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}

function verified(name: string): Condition | undefined {
  const r = kubectl(cp, ["get", "fp", name, "-o", "json"]);
  if (r.code !== 0) return undefined;
  const fp = JSON.parse(r.stdout) as { status?: { conditions?: Condition[] } };
  return fp.status?.conditions?.find((c) => c.type === "Verified");
}

function eventsFor(name: string): { reason: string; type: string; note: string }[] {
  const out = kubectlOk(cp, ["get", "events.events.k8s.io", "-A", "-o", "json"]);
  const list = JSON.parse(out) as {
    items: { regarding?: { name?: string }; reason: string; type: string; note: string }[];
  };
  return list.items.filter((e) => e.regarding?.name === name);
}

function leaseHolder(): string | undefined {
  const r = kubectl(cp, [
    "get",
    "lease",
    "-n",
    NS,
    "stella-operator",
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return r.code === 0 && r.stdout !== "" ? r.stdout : undefined;
}

async function startReplica(name: string): Promise<OperatorProcess> {
  const op = await startOperator({
    kubeconfigPath: saKubeconfig,
    args: deployment.args,
    env: deployment.env,
    dir: work,
    name,
  });
  operators.push(op);
  return op;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stella-operator-e2e-"));
  cp = await startControlPlane();
  installCrds(cp);
  kubectlOk(cp, ["create", "namespace", NS]);
});

after(async () => {
  for (const op of operators) await op.kill();
  await cp?.stop();
});

describe("chart and operator on a real API server", () => {
  let manifests: K8sObject[];

  it("the chart lints, renders, and passes a server-side dry run", () => {
    helm("lint", "--strict", join(REPO, "charts/stella"));
    const rendered = helm("template", "stella", join(REPO, "charts/stella"), "--namespace", NS);
    manifests = parseAllDocuments(rendered)
      .map((d) => d.toJS() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
    const dry = kubectl(cp, ["apply", "--server-side", "--dry-run=server", "-n", NS, "-f", "-"], rendered);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual([...new Set(manifests.map((m) => m.kind))].sort(), [
      "ClusterRole",
      "ClusterRoleBinding",
      "ConfigMap",
      "DaemonSet",
      "Deployment",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
      "ValidatingWebhookConfiguration",
    ]);
  });

  it("the operator's ServiceAccount has the chart's permissions and no more", async () => {
    // Apply what the operator's identity consists of; pods never run here (no kubelet).
    const op = await applyOperatorIdentity(cp, NS, manifests);
    deployment = { args: op.args, env: op.env };
    saKubeconfig = join(work, "operator.kubeconfig");
    writeFileSync(saKubeconfig, op.kubeConfig.exportConfig());
    const sa = `system:serviceaccount:${NS}:${op.serviceAccount}`;
    const can = (...args: string[]): string =>
      kubectl(cp, ["auth", "can-i", "--as", sa, ...args]).stdout.trim();
    assert.equal(can("patch", "funcproofs.evidence.stella-ops.org", "--subresource=status"), "yes");
    assert.equal(
      can("update", "funcproofs.evidence.stella-ops.org"),
      "no",
      "spec is not the operator's to change",
    );
    assert.equal(can("list", "secrets", "-n", "kube-system"), "no");
    assert.equal(can("get", "secrets/stella-trusted-keys", "-n", NS), "yes");
    assert.equal(can("delete", "pods", "-A"), "no");
  });

  it("signed FuncProofs are verified; tampered, unknown-key and mismatched ones are not, with reasons and Events", async () => {
    const trusted = join(work, "trusted");
    const stranger = join(work, "stranger");
    stella("keygen", "--type", "ecdsa-p256", "--out", trusted);
    stella("keygen", "--type", "ed25519", "--out", stranger);
    kubectlOk(cp, [
      "create",
      "secret",
      "generic",
      "stella-trusted-keys",
      "-n",
      NS,
      `--from-file=release.pub=${trusted}.pub`,
    ]);

    const op = await startReplica("operator-a");
    await eventually("operator ready", 60_000, async () => ((await op.ready()) ? true : undefined));

    const good = funcProofCr(join(FIXTURES, "prog-v1"), `${trusted}.key`);
    const tampered = funcProofCr(join(FIXTURES, "prog-v2"), `${trusted}.key`);
    const env = tampered.spec!.envelope as { payload: string };
    env.payload = Buffer.from(
      Buffer.from(env.payload, "base64").toString().replace('"arch":"x86_64"', '"arch":"x86_65"'),
    ).toString("base64");
    const unknown = funcProofCr("/usr/bin/true", `${stranger}.key`);
    const mismatch = funcProofCr("/usr/bin/false", `${trusted}.key`);
    mismatch.spec!.functionCount = (mismatch.spec!.functionCount as number) + 1;
    for (const o of [good, tampered, unknown, mismatch]) apply(o);

    const expect: [K8sObject, string, string][] = [
      [good, "True", "Verified"],
      [tampered, "False", "SignatureInvalid"],
      [unknown, "False", "UnknownKey"],
      [mismatch, "False", "SpecMismatch"],
    ];
    for (const [o, status, reason] of expect) {
      const c = await eventually(`${reason} on ${o.metadata.name}`, 30_000, () => {
        const v = verified(o.metadata.name);
        return v?.reason === reason ? v : undefined;
      });
      assert.equal(c.status, status, `${reason}: ${c.message}`);
      assert.equal(c.observedGeneration, 1);
      const ev = await eventually(`Event ${reason}`, 15_000, () =>
        eventsFor(o.metadata.name).find((e) => e.reason === reason),
      );
      assert.equal(ev.type, status === "True" ? "Normal" : "Warning");
    }
    assert.match(verified(mismatch.metadata.name)!.message, /functionCount/);
    // kubectl get fp shows it (the printer column reads the condition).
    assert.match(
      kubectlOk(cp, ["get", "fp", good.metadata.name]),
      new RegExp(`${good.metadata.name}\\s+x86_64\\s+\\d+\\s+True`),
    );

    // Level-based: fixing the spec flips the verdict back.
    mismatch.spec!.functionCount = (mismatch.spec!.functionCount as number) - 1;
    apply(mismatch);
    await eventually("mismatch fixed → Verified", 30_000, () =>
      verified(mismatch.metadata.name)?.status === "True" ? true : undefined,
    );
    assert.equal(verified(mismatch.metadata.name)!.observedGeneration, 2);
  });

  it("two replicas: one leads, the standby never reconciles; kill the leader and the other takes over", async () => {
    const a = operators[0]!;
    const b = await startReplica("operator-b");
    await eventually("standby ready", 60_000, async () => ((await b.ready()) ? true : undefined));
    const leader = await eventually("a lease holder", 30_000, leaseHolder);
    const reconciles = (m: string): number =>
      [...m.matchAll(/^controller_runtime_reconcile_total\{[^}]*\} (\d+)/gm)].reduce(
        (n, x) => n + Number(x[1]),
        0,
      );
    const leaderStatus = (m: string): number =>
      Number(/^leader_election_master_status\{[^}]*\} (\d)/m.exec(m)?.[1] ?? -1);
    assert.equal(leaderStatus(await a.metrics()), 1, "replica a started first and leads");
    assert.equal(leaderStatus(await b.metrics()), 0);
    assert.equal(reconciles(await b.metrics()), 0, "the standby writes nothing");

    const killedAt = Date.now();
    await a.kill();
    const next = await eventually("a new lease holder", 40_000, () => {
      const h = leaseHolder();
      return h !== undefined && h !== leader ? h : undefined;
    });
    const takeoverMs = Date.now() - killedAt;
    assert.ok(takeoverMs < 15_000 + 2 * 4_400 + 2_000, `takeover took ${takeoverMs} ms`);
    assert.equal(leaderStatus(await b.metrics()), 1);
    assert.notEqual(next, leader);

    // The new leader does the work.
    const trusted = join(work, "trusted");
    const late = funcProofCr(join(FIXTURES, "prog-v1.aarch64-linux-gnu"), `${trusted}.key`);
    apply(late);
    await eventually("new leader verifies", 30_000, () =>
      verified(late.metadata.name)?.status === "True" ? true : undefined,
    );
    assert.ok(reconciles(await b.metrics()) > 0);
    process.stdout.write(`# leader takeover after SIGKILL: ${takeoverMs} ms\n`);

    // Graceful stop releases the lease.
    assert.equal(await b.stop(), 0);
    await eventually("lease released", 10_000, () => (leaseHolder() === undefined ? true : undefined));
  });
});

// Rollout gating on a real API server (issue 7): the operator runs as a process under the chart's ServiceAccount
// and RBAC, serves the admission webhook with its self-signed certificate (it patches the caBundle of the chart's
// ValidatingWebhookConfiguration, pointed at 127.0.0.1 by URL since no kube-proxy runs here), and `kubectl` image
// changes of a Deployment are admitted or denied by real DeltaAttestations that `stella delta create --emit-cr`
// made from real ELF files compiled here. The agents' data comes over real gRPC from the agent's own shipper.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { parseAllDocuments, stringify } from "yaml";

import { Shipper } from "../agent/ship/shipper.ts";
import { DEFAULT_POLICY } from "../core/risk/policy.ts";
import { deltaRisk, withHotness, type ScoreInputs } from "../core/risk/score.ts";
import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { applyOperatorIdentity, renderChart, type K8sObject } from "./helpers/chart.ts";
import { installCrds, kubectl, kubectlOk } from "./helpers/kubectl.ts";
import { eventually, startOperator, type OperatorProcess } from "./helpers/operator-process.ts";

const NS = "stella-system";
const REPO = new URL("../", import.meta.url).pathname;
const CLI = join(REPO, "cli/stella.ts");
const WEBHOOK = "rollout-gate.evidence.stella-ops.org";

let cp: ControlPlane;
let work: string;
let operator: OperatorProcess | undefined;
let startArgs: Parameters<typeof startOperator>[0];
let webhookConfigName = "";
/** sha256 digests of the compiled programs: base, low-risk target, high-risk target, the one to tamper with. */
const digest: Record<"A" | "B" | "C" | "D", string> = { A: "", B: "", C: "", D: "" };
let threshold = 0; // permille, between the cold and the hot score of A→B
let coldScore = 0;
let hotScore = 0;
let hotImpact = 0;

interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [k: string]: unknown };
  spec: Record<string, unknown> & { envelope?: { payload: string } };
}

function stella(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`stella ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

function sha256File(path: string): string {
  return `sha256:${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
}

function apply(obj: unknown): void {
  kubectlOk(cp, ["apply", "--server-side", "--force-conflicts", "-f", "-"], stringify(obj));
}

/** The C programs: B changes parse_hdr only; C adds 300 KB of random data and 40 functions; D changes route. */
const BASE_C = `#include <stdio.h>
__attribute__((noinline)) int parse_hdr(const char *s) {
  int n = 0;
  for (const char *p = s; *p && *p != ':'; p++) n = n * 31 + *p;
  return n;
}
__attribute__((noinline)) int route(int h) { return h % 7; }
__attribute__((noinline)) void log_line(const char *s) { fprintf(stderr, "%s\\n", s); }
/*EXTRA*/
int main(int argc, char **argv) {
  int total = 0;
  for (int i = 1; i < argc; i++) total += route(parse_hdr(argv[i]));
  /*MAIN*/
  log_line("done");
  return total & 1;
}
`;

function highSource(): string {
  let seed = 7;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed >> 16;
  };
  const blob = Array.from({ length: 300_000 }, () => rnd() & 0xff).join(",");
  let extra = `const unsigned char blob[] = {${blob}};\n`;
  for (let i = 0; i < 40; i++) {
    extra += `__attribute__((noinline)) int extra_${i}(int x) { return blob[(x * ${i + 3}) % sizeof blob] ^ x * ${i * 7 + 1}; }\n`;
  }
  return BASE_C.replace("/*EXTRA*/", extra).replace(
    "/*MAIN*/",
    "for (int i = 0; i < argc; i++) total += extra_3(i) + extra_39(i);",
  );
}

function compile(name: string, source: string): string {
  const src = join(work, `${name}.c`);
  const out = join(work, name);
  writeFileSync(src, source);
  sh("gcc", ["-O2", "-o", out, src]);
  return out;
}

/** `stella delta create … --emit-cr`: the resources (forward, then rollback when asked). */
function deltaResources(base: string, target: string, name: string, rollback: boolean): Resource[] {
  const cr = join(work, `${name}.yaml`);
  stella(
    "delta",
    "create",
    "--base",
    base,
    "--target",
    target,
    "--out",
    join(work, name),
    "--sign",
    join(work, "release.key"),
    "--emit-cr",
    cr,
    ...(rollback ? ["--rollback"] : []),
  );
  return parseAllDocuments(readFileSync(cr, "utf8")).map((d) => d.toJS() as Resource);
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape it reads
function getJson<T>(args: string[]): T | undefined {
  const r = kubectl(cp, ["get", ...args, "-o", "json"]);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

function condition(kind: string, name: string, type: string): Condition | undefined {
  const o = getJson<{ status?: { conditions?: Condition[] } }>([kind, name]);
  return o?.status?.conditions?.find((c) => c.type === type);
}

async function until(kind: string, name: string, type: string, status: string): Promise<Condition> {
  return eventually(`${kind} ${name} ${type}=${status}`, 30_000, () => {
    const c = condition(kind, name, type);
    return c?.status === status ? c : undefined;
  });
}

function deltaRiskOf(name: string): number | undefined {
  return getJson<{ status?: { deltaRisk?: number } }>(["deltaattestation", name])?.status?.deltaRisk;
}

function image(d: string): string {
  return `reg.example/web@${d}`;
}

/** `kubectl set image` on the Deployment (the real admission path): exit code, stderr. */
function setImage(namespace: string, d: string): { code: number; stderr: string } {
  const r = kubectl(cp, ["set", "image", "-n", namespace, "deployment/web", `web=${image(d)}`]);
  return { code: r.code, stderr: r.stderr };
}

function currentImage(namespace: string): string | undefined {
  return getJson<{ spec: { template: { spec: { containers: { image: string }[] } } } }>([
    "deployment",
    "-n",
    namespace,
    "web",
  ])?.spec.template.spec.containers[0]?.image;
}

function deployment(namespace: string, d: string): unknown {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace, labels: { app: "web" } },
    spec: {
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: { containers: [{ name: "web", image: image(d) }] },
      },
    },
  };
}

function events(namespace: string, reason: string): { note: string; related?: { name?: string } }[] {
  const list = getJson<{
    items: { reason: string; note: string; regarding?: { name?: string }; related?: { name?: string } }[];
  }>(["events.events.k8s.io", "-n", namespace]);
  return (list?.items ?? []).filter((e) => e.reason === reason && e.regarding?.name === "web");
}

function gate(name: string, env: string, extra: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: "evidence.stella-ops.org/v1alpha1",
    kind: "RolloutGate",
    metadata: { name },
    spec: {
      namespaceSelector: { matchLabels: { env } },
      selector: { matchLabels: { app: "web" } },
      maxDeltaRisk: threshold,
      trustedKeys: [{ secretRef: { namespace: NS, name: "release-keys", key: "release.pub" } }],
      ...extra,
    },
  };
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stella-rollout-e2e-"));
  stella("keygen", "--type", "ecdsa-p256", "--out", join(work, "release"));
  const A = compile("base", BASE_C.replace("/*EXTRA*/", "").replace("/*MAIN*/", ""));
  const B = compile(
    "low",
    BASE_C.replace("/*EXTRA*/", "")
      .replace("/*MAIN*/", "")
      .replace("n = n * 31 + *p;", "n = n * 33 + (*p ^ 0x5a);"),
  );
  const C = compile("high", highSource());
  const D = compile(
    "other",
    BASE_C.replace("/*EXTRA*/", "").replace("/*MAIN*/", "").replace("h % 7", "h % 11"),
  );
  Object.assign(digest, { A: sha256File(A), B: sha256File(B), C: sha256File(C), D: sha256File(D) });
  // The gate's threshold sits between A→B's score with parse_hdr cold and with it hot (the score's own
  // formula, applied to the signed inputs), so the agents' data alone flips the decision.
  const low = deltaResources(A, B, "ab", true);
  const manifest = JSON.parse(readFileSync(join(work, "ab", "delta-manifest.json"), "utf8")) as {
    score_inputs: ScoreInputs;
  };
  coldScore = deltaRisk(manifest.score_inputs, DEFAULT_POLICY).score;
  const hot = deltaRisk(
    withHotness(manifest.score_inputs, (fn) => (fn.symbol === "parse_hdr" ? 0.5 : undefined)),
    DEFAULT_POLICY,
  );
  hotScore = hot.score;
  hotImpact = hot.breakdown.find((b) => b.factor === "function_change_impact")?.contribution ?? NaN;
  assert.ok(hotScore > coldScore + 0.01, `hot ${hotScore} vs cold ${coldScore}`);
  threshold = Math.round(((coldScore + hotScore) / 2) * 1000);
  writeFileSync(join(work, "ab.json"), JSON.stringify(low));
  deltaResources(A, C, "ac", false);
  deltaResources(A, D, "ad", false);

  cp = await startControlPlane();
  installCrds(cp);
  kubectlOk(cp, ["create", "namespace", NS]);
  for (const [ns, env] of [
    ["shop", "prod"],
    ["staging", "staging"],
    ["canary", "canary"],
  ] as const) {
    kubectlOk(cp, ["create", "namespace", ns]);
    kubectlOk(cp, ["label", "namespace", ns, `env=${env}`]);
  }
  const pub = join(work, "release.pub");
  kubectlOk(cp, [
    "create",
    "secret",
    "generic",
    "stella-trusted-keys",
    "-n",
    NS,
    `--from-file=release.pub=${pub}`,
  ]);
  kubectlOk(cp, ["create", "secret", "generic", "release-keys", "-n", NS, `--from-file=release.pub=${pub}`]);

  // The chart's identity (RBAC) and the operator's command line and environment, as rendered.
  const manifests = renderChart(NS);
  const chartOperator = await applyOperatorIdentity(cp, NS, manifests);
  const kubeconfigPath = join(work, "operator.kubeconfig");
  writeFileSync(kubeconfigPath, chartOperator.kubeConfig.exportConfig());

  // The chart's ValidatingWebhookConfiguration, called by URL on loopback and failing closed (so "webhook
  // down" is observable). The operator patches its caBundle.
  const vwc = manifests.find((m) => m.kind === "ValidatingWebhookConfiguration") as
    (K8sObject & { webhooks: { clientConfig: unknown; failurePolicy: string }[] }) | undefined;
  assert.ok(vwc);
  webhookConfigName = vwc.metadata.name;
  const { freePort } = await import("./helpers/operator-process.ts");
  const webhookPort = await freePort();
  for (const w of vwc.webhooks) {
    w.clientConfig = { url: `https://127.0.0.1:${webhookPort}/validate-rollout` };
    w.failurePolicy = "Fail";
  }
  apply(vwc);

  startArgs = {
    kubeconfigPath,
    // The write-ahead log in this run's directory (the chart's path is a volume in the pod).
    args: [...chartOperator.args, "--webhook-cert-extra-sans=127.0.0.1", `--wal-dir=${join(work, "wal")}`],
    env: chartOperator.env,
    dir: work,
    name: "operator",
    webhookPort,
  };
  operator = await startOperator(startArgs);
  const op = operator;
  await eventually("operator ready", 60_000, async () => ((await op.ready()) ? true : undefined));
});

after(async () => {
  await operator?.kill();
  await cp?.stop();
});

describe("rollout gating on a real API server", () => {
  it("the operator made its serving certificate and patched the caBundle", async () => {
    assert.equal(startArgs.env.STELLA_WEBHOOK_ENABLED, "true", "the chart enables the webhook");
    const bundle = await eventually("caBundle patched", 30_000, () => {
      const v = getJson<{ webhooks: { clientConfig: { caBundle?: string } }[] }>([
        "validatingwebhookconfiguration",
        webhookConfigName,
      ]);
      return v?.webhooks[0]?.clientConfig.caBundle;
    });
    const secret = getJson<{ data: Record<string, string> }>(["secret", "-n", NS, "stella-webhook-tls"]);
    assert.ok(secret?.data["tls.crt"]);
    assert.equal(
      Buffer.from(bundle, "base64").toString("utf8").trim(),
      Buffer.from(secret.data["ca.crt"] ?? "", "base64")
        .toString("utf8")
        .trim(),
    );
  });

  it("a RolloutGate becomes Ready with the keys of its Secret", async () => {
    apply(gate("prod", "prod"));
    const ready = await until("rolloutgate", "prod", "Ready", "True");
    assert.match(ready.message, new RegExp(`enforce mode, maxDeltaRisk ${threshold}‰`));
    apply(gate("broken", "nowhere", { trustedKeys: [{ secretRef: { namespace: "shop", name: "x" } }] }));
    const broken = await until("rolloutgate", "broken", "Ready", "False");
    assert.match(broken.message, /only in its namespace stella-system/);
  });

  it("a new Deployment is admitted; an image change without an attestation is denied", async () => {
    await eventually("webhook admits the create", 30_000, () => {
      const r = kubectl(cp, ["apply", "-f", "-"], stringify(deployment("shop", digest.A)));
      return r.code === 0 ? true : undefined;
    });
    const r = setImage("shop", digest.B);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`admission webhook "${WEBHOOK}" denied the request`));
    assert.match(
      r.stderr,
      /no DeltaAttestation for reg\.example\/web@sha256:[0-9a-f]{12}… → .*missingAttestation: deny/,
    );
    assert.equal(currentImage("shop"), image(digest.A));
  });

  it("a verified low-risk attestation admits A→B; the rollback needs its signed rollback attestation", async () => {
    const [forward, rollback] = JSON.parse(readFileSync(join(work, "ab.json"), "utf8")) as [
      Resource,
      Resource,
    ];
    apply(forward);
    const v = await until("deltaattestation", forward.metadata.name, "Verified", "True");
    assert.match(v.message, /signed by/);
    const risk = await eventually("deltaRisk", 30_000, () => deltaRiskOf(forward.metadata.name));
    assert.equal(risk, Math.round(coldScore * 1000), "cold: no samples of image A yet");
    const ok = setImage("shop", digest.B);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(currentImage("shop"), image(digest.B));

    const back = setImage("shop", digest.A);
    assert.notEqual(back.code, 0);
    assert.match(
      back.stderr,
      /rollback from .* needs a rollback attestation signed by a trusted key .*none found/,
    );
    apply(rollback);
    await until("deltaattestation", rollback.metadata.name, "Verified", "True");
    const rb = setImage("shop", digest.A);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(currentImage("shop"), image(digest.A));
  });

  it("a high-risk change is denied naming image, score, threshold and top contributors, with an Event", async () => {
    const [forward] = parseAllDocuments(readFileSync(join(work, "ac.yaml"), "utf8")).map(
      (d) => d.toJS() as Resource,
    );
    assert.ok(forward);
    apply(forward);
    await until("deltaattestation", forward.metadata.name, "Verified", "True");
    const r = setImage("shop", digest.C);
    assert.notEqual(r.code, 0);
    const max = (threshold / 1000).toFixed(3);
    assert.match(
      r.stderr,
      new RegExp(
        `reg\\.example/web@sha256:${digest.C.slice(7, 19)}… \\(container web\\): delta_risk 0\\.\\d{3} > ${max.replace(".", "\\.")} ` +
          `\\(RolloutGate prod, ${forward.metadata.name}\\); top contributors: \\w+ 0\\.\\d{3}, \\w+ 0\\.\\d{3}, \\w+ 0\\.\\d{3}`,
      ),
    );
    const denied = await eventually("RolloutDenied event", 30_000, () => {
      const e = events("shop", "RolloutDenied").find((x) => x.note.includes(forward.metadata.name));
      return e;
    });
    assert.equal(denied.related?.name, "prod");
    const metrics = await operator?.metrics();
    assert.match(metrics ?? "", /stella_webhook_decisions_total\{gate="prod",decision="denied"\} [1-9]/);
  });

  it("a tampered envelope is refused and the change it claims to cover is denied", async () => {
    const [forward] = parseAllDocuments(readFileSync(join(work, "ad.yaml"), "utf8")).map(
      (d) => d.toJS() as Resource,
    );
    assert.ok(forward?.spec.envelope);
    // Make the signed manifest claim fewer added bytes: the signature no longer covers the payload.
    const statement = JSON.parse(Buffer.from(forward.spec.envelope.payload, "base64").toString("utf8")) as {
      predicate: { score_inputs: { entropy: { addedBytes: number } } };
    };
    statement.predicate.score_inputs.entropy.addedBytes = 0;
    forward.spec.envelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
    apply(forward);
    const v = await until("deltaattestation", forward.metadata.name, "Verified", "False");
    assert.equal(v.reason, "SignatureInvalid");
    const r = setImage("shop", digest.D);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(`DeltaAttestation ${forward.metadata.name} is invalid: .*does not verify`),
    );
  });

  it("missingAttestation: warn admits with a warning; audit mode admits and records what it would deny", async () => {
    apply(gate("staging", "staging", { missingAttestation: "warn" }));
    apply(gate("canary", "canary", { mode: "audit" }));
    await until("rolloutgate", "staging", "Ready", "True");
    await until("rolloutgate", "canary", "Ready", "True");
    apply(deployment("staging", digest.A));
    const warned = setImage("staging", `sha256:${"e".repeat(64)}`);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /Warning: .*no DeltaAttestation .*missingAttestation: warn/);

    apply(deployment("canary", digest.A));
    const audited = setImage("canary", digest.C);
    assert.equal(audited.code, 0, audited.stderr);
    assert.match(audited.stderr, /Warning: audit \(would deny\): .*delta_risk 0\.\d{3} > /);
    assert.equal(currentImage("canary"), image(digest.C));
    await eventually("RolloutAudited event", 30_000, () => events("canary", "RolloutAudited")[0]);
    const counted = await eventually("status.decisions.audited", 30_000, () => {
      const g = getJson<{ status?: { decisions?: { audited?: number } } }>(["rolloutgate", "canary"]);
      return (g?.status?.decisions?.audited ?? 0) >= 1 ? g : undefined;
    });
    assert.ok(counted);
  });

  it("the same change scores higher once the agents see the changed function hot in the base image", async () => {
    const [forward] = JSON.parse(readFileSync(join(work, "ab.json"), "utf8")) as [Resource];
    // Samples of image A over real gRPC, from the agent's shipper: half the stacks run through parse_hdr.
    const buildId = spawnSync("readelf", ["-n", join(work, "base")], { encoding: "utf8" }).stdout.match(
      /Build ID: ([0-9a-f]+)/,
    )?.[1];
    assert.ok(buildId);
    const frame = (symbol: string, fileOffset: number) => ({
      kind: "KIND_NATIVE" as const,
      buildId,
      fileOffset,
      symbol,
      offset: 4,
    });
    const attribution = {
      container: "c".repeat(64),
      pod: "web-1",
      namespace: "shop",
      imageDigest: digest.A,
      containerName: "web",
    };
    const now = Date.now();
    const shipper = new Shipper({
      target: `127.0.0.1:${operator?.ingestPort ?? 0}`,
      node: "node-a",
      tls: { insecure: true },
    });
    shipper.start();
    shipper.enqueue({
      window: { startUnixMs: now - 10_000, endUnixMs: now },
      samples: [
        { ...attribution, frames: [frame("parse_hdr", 0x1140), frame("main", 0x1060)], count: 50 },
        { ...attribution, frames: [frame("log_line", 0x1180), frame("main", 0x1060)], count: 50 },
      ],
      binaries: [],
      hz: 99,
      droppedSamples: 0,
    });
    assert.equal(await shipper.flush(10_000), true, "acknowledged");
    await shipper.shutdown();

    await eventually("A→B re-scored with parse_hdr hot", 30_000, () =>
      deltaRiskOf(forward.metadata.name) === Math.round(hotScore * 1000) ? true : undefined,
    );
    // The webhook decides with the same score: A→B, admitted while parse_hdr was cold, is now denied.
    assert.equal(currentImage("shop"), image(digest.A));
    const r = setImage("shop", digest.B);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`delta_risk ${hotScore.toFixed(3).replace(".", "\\.")} > `));
    assert.match(r.stderr, new RegExp(`top contributors: .*function_change_impact ${hotImpact.toFixed(3)}`));
  });

  it("webhook down: the API server applies failurePolicy; restarted, decisions continue", async () => {
    await operator?.kill();
    const down = setImage("shop", digest.B);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /failed calling webhook .*connection refused/);
    kubectlOk(cp, [
      "patch",
      "validatingwebhookconfiguration",
      webhookConfigName,
      "--type=json",
      "-p",
      JSON.stringify([{ op: "replace", path: "/webhooks/0/failurePolicy", value: "Ignore" }]),
    ]);
    const ignored = kubectl(cp, ["label", "-n", "shop", "deployment/web", "tier=front"]);
    assert.equal(ignored.code, 0, `failurePolicy Ignore admits: ${ignored.stderr}`);
    kubectlOk(cp, [
      "patch",
      "validatingwebhookconfiguration",
      webhookConfigName,
      "--type=json",
      "-p",
      JSON.stringify([{ op: "replace", path: "/webhooks/0/failurePolicy", value: "Fail" }]),
    ]);

    operator = await startOperator({ ...startArgs, name: "operator-2", ingestPort: operator?.ingestPort });
    const op = operator;
    await eventually("restarted operator ready", 60_000, async () => ((await op.ready()) ? true : undefined));
    // The same Secret (no new CA): the caBundle the API server holds still verifies the new process.
    const r = await eventually("a decision from the restarted webhook", 30_000, () => {
      const x = setImage("shop", digest.C);
      return /delta_risk/.test(x.stderr) ? x : undefined;
    });
    assert.notEqual(r.code, 0);
  });
});

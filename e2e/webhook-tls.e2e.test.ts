// Self-signed webhook TLS on a real API server, under the chart's own RBAC: WebhookTls creates the Secret and
// patches the caBundle, and the API server then verifies our serving certificate when it calls the webhook (a
// deny message from the webhook comes back through kubectl). A second replica reuses the Secret; a renewal is
// picked up by the server and by the other replica with the CA and caBundle unchanged; a caBundle reset (helm
// upgrade) and a tampered Secret are repaired by the next check.
//
// The webhook here guards ConfigMaps in one test namespace only (namespaceSelector), called by URL at 127.0.0.1,
// so nothing else in the cluster goes through it. kubectl runs asynchronously: the webhook answers from this process.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import { TLSSocket } from "node:tls";

import type { KubeConfig } from "@kubernetes/client-node";
import { pino, type Logger } from "pino";

import { freePort } from "../core/testing/server-process.ts";
import { WebhookServer } from "../operator/webhook/server.ts";
import { WebhookTls, type WebhookTlsOptions, type WebhookTlsPair } from "../operator/webhook/tls.ts";
import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { toolPath } from "./harness/tools.ts";
import { kubectl, kubectlOk, type KubectlResult } from "./helpers/kubectl.ts";

const RELEASE = "stella-tls";
const NS = "stella-tls-e2e"; // the operator's namespace: the Secret lives here
const GUARDED = "webhook-tls-guarded"; // the webhook's only namespace
const SECRET = `${RELEASE}-webhook-tls`;
const VWC = `${RELEASE}-rollout-gate`; // the name the chart's RBAC lets the operator patch
const SERVICE = `${RELEASE}-webhook`;
const SA = `${RELEASE}-operator`;
const DENY = "stella e2e: configmaps are gated here";
const DAY_MS = 86_400_000;
const REPO = new URL("../", import.meta.url).pathname;

let cp: ControlPlane;
let rbac = "";
let saKubeConfig: KubeConfig;
let port = 0;
let server: WebhookServer | undefined;
const replicas: WebhookTls[] = [];
const logs: { level: number; msg: string }[] = [];
/** Shared clock of both replicas: starts 250 days in the past, so that moving it to the real now is "time passing". */
let offsetMs = -250 * DAY_MS;

function helm(...args: string[]): string {
  const r = spawnSync(toolPath("helm"), args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** kubectl without blocking the event loop (spawnSync would stall the webhook the API server is calling). */
function kubectlAsync(args: string[]): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath("kubectl"), ["--kubeconfig", cp.kubeconfigPath, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

function logger(): Logger {
  return pino(
    { level: "debug" },
    {
      write: (line: string) => {
        const { level, msg } = JSON.parse(line) as { level: number; msg: string };
        logs.push({ level, msg });
      },
    },
  );
}

function replica(overrides: Partial<WebhookTlsOptions> = {}): WebhookTls {
  const tls = new WebhookTls({
    kubeConfig: saKubeConfig,
    namespace: NS,
    secretName: SECRET,
    serviceName: SERVICE,
    configurationName: VWC,
    clusterDomain: "cluster.local",
    extraSans: "127.0.0.1",
    logger: logger(),
    now: () => new Date(Date.now() + offsetMs),
    checkIntervalMs: 3_600_000, // the tests call check() themselves
    ...overrides,
  });
  replicas.push(tls);
  return tls;
}

interface SecretJson {
  type: string;
  metadata: { resourceVersion: string };
  data: Record<string, string>;
}

function readSecret(): SecretJson {
  return JSON.parse(kubectlOk(cp, ["get", "secret", SECRET, "-n", NS, "-o", "json"])) as SecretJson;
}

const decode = (b64: string | undefined): string => Buffer.from(b64 ?? "", "base64").toString("utf8");

function caBundles(): string[] {
  const vwc = JSON.parse(kubectlOk(cp, ["get", "validatingwebhookconfiguration", VWC, "-o", "json"])) as {
    webhooks: { clientConfig: { caBundle?: string } }[];
  };
  return vwc.webhooks.map((w) => w.clientConfig.caBundle ?? "");
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;

/** The serial of the certificate the webhook serves to a new connection that trusts only `ca`. */
function servedSerial(ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", ca, agent: false }, (res) => {
      res.resume();
      res.on("end", () => {
        const socket = res.socket;
        if (socket instanceof TLSSocket) resolve(socket.getPeerCertificate().serialNumber);
        else reject(new Error("not a TLS socket"));
      });
    });
    req.on("error", reject);
    req.end();
  });
}

function createGuarded(name: string): Promise<KubectlResult> {
  return kubectlAsync(["create", "configmap", name, "-n", GUARDED, "--from-literal=k=v"]);
}

/** Creates a ConfigMap in the guarded namespace: the API server must call the webhook and relay its denial. */
async function assertDeniedThroughWebhook(name: string): Promise<void> {
  const before = server?.stats.requests ?? 0;
  // The API server builds its webhook clients from an informer on the configurations, so a caBundle patched a
  // moment ago may take a little while to be used: retry while the call fails, not once the webhook answered.
  let r = await createGuarded(name);
  for (let i = 0; i < 20 && /failed calling webhook/.test(r.stderr); i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    r = await createGuarded(name);
  }
  assert.notEqual(r.code, 0, `created despite the webhook: ${r.stdout}`);
  assert.match(r.stderr, /admission webhook "configmaps\.e2e\.stella-ops\.org" denied the request/, r.stderr);
  assert.ok(r.stderr.includes(DENY), r.stderr);
  assert.ok((server?.stats.requests ?? 0) > before, "the webhook was called");
}

before(async () => {
  cp = await startControlPlane();
  kubectlOk(cp, ["create", "namespace", NS]);
  kubectlOk(cp, ["create", "namespace", GUARDED]);
  // The chart's operator RBAC and ServiceAccount, rendered for this release: the test runs with exactly the
  // rights the operator gets in self-signed mode.
  rbac = helm(
    ...["template", RELEASE, `${REPO}charts/stella`, "--namespace", NS],
    ...["--show-only", "templates/operator-rbac.yaml", "--show-only", "templates/serviceaccounts.yaml"],
  );
  kubectlOk(cp, ["apply", "-n", NS, "-f", "-"], rbac);
  saKubeConfig = await cp.serviceAccountKubeConfig(NS, SA, { expirationSeconds: 3600 });
  port = await freePort();
  const vwc = {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: { name: VWC },
    webhooks: [
      {
        name: "configmaps.e2e.stella-ops.org",
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: "Fail",
        timeoutSeconds: 10,
        clientConfig: { url: `https://127.0.0.1:${port}/validate-rollout` },
        rules: [
          {
            apiGroups: [""],
            apiVersions: ["v1"],
            resources: ["configmaps"],
            operations: ["CREATE"],
            scope: "Namespaced",
          },
        ],
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": GUARDED } },
      },
    ],
  };
  kubectlOk(cp, ["create", "-f", "-"], JSON.stringify(vwc));
});

after(async () => {
  for (const r of replicas) await r.shutdown();
  await server?.stop();
  if (cp === undefined) return;
  // Everything this file created (matters on a shared cluster; a local control plane is removed anyway).
  kubectl(cp, ["delete", "validatingwebhookconfiguration", VWC, "--ignore-not-found"]);
  kubectl(cp, ["delete", "secret", SECRET, "-n", NS, "--ignore-not-found"]);
  if (rbac !== "") kubectl(cp, ["delete", "-n", NS, "--ignore-not-found", "-f", "-"], rbac);
  kubectl(cp, ["delete", "namespace", NS, GUARDED, "--ignore-not-found", "--wait=false"]);
  await cp.stop();
});

describe("self-signed webhook TLS against the API server", () => {
  let first: WebhookTls;
  let initial: WebhookTlsPair;

  it("start() creates the Secret and patches the caBundle; the API server verifies our certificate", async () => {
    assert.equal(kubectl(cp, ["get", "secret", SECRET, "-n", NS]).code, 1, "no Secret before start");
    assert.deepEqual(caBundles(), [""]);
    first = replica();
    const seen: WebhookTlsPair[] = [];
    first.onChange((p) => seen.push(p));
    await first.start();
    initial = first.current();
    assert.equal(seen.length, 1, "listeners get the first pair too");
    assert.equal(first.stats.secretWrites, 1);
    assert.equal(first.stats.caBundlePatches, 1);

    const secret = readSecret();
    assert.equal(secret.type, "kubernetes.io/tls");
    assert.deepEqual(Object.keys(secret.data).sort(), ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    assert.equal(decode(secret.data["tls.crt"]), initial.cert);
    assert.equal(decode(secret.data["ca.crt"]), initial.ca);
    assert.deepEqual(caBundles(), [Buffer.from(initial.ca).toString("base64")]);

    server = new WebhookServer({
      address: `127.0.0.1:${port}`,
      tls: { cert: initial.cert, key: initial.key },
      handle: () => ({ allowed: false, message: DENY }),
    });
    await server.start();
    first.onChange((p) => {
      server?.setCertificate(p.cert, p.key);
    });
    await assertDeniedThroughWebhook("first");
    // Outside the guarded namespace nothing calls the webhook.
    const elsewhere = await kubectlAsync([
      "create",
      "configmap",
      "not-guarded",
      "-n",
      NS,
      "--from-literal=k=v",
    ]);
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
  });

  it("a second replica reuses the Secret: same certificate, no write, no patch", async () => {
    const rv = readSecret().metadata.resourceVersion;
    const second = replica();
    await second.start();
    assert.deepEqual(second.current(), initial);
    assert.equal(second.stats.secretWrites, 0);
    assert.equal(second.stats.caBundlePatches, 0);
    assert.equal(readSecret().metadata.resourceVersion, rv);
  });

  it("past the renewal point a check renews with the same CA; the server swaps; the other replica follows", async () => {
    const [, second] = replicas;
    assert.ok(second);
    const changes: WebhookTlsPair[] = [];
    first.onChange((p) => changes.push(p));
    const reloads = server?.stats.certReloads ?? 0;
    offsetMs = 0; // 250 of 365 days have passed: less than a third of the lifetime is left
    await first.check();
    assert.equal(first.stats.failures, 0);
    assert.equal(first.stats.secretWrites, 2);
    assert.equal(changes.length, 1);
    const renewed = first.current();
    assert.notEqual(serialOf(renewed.cert), serialOf(initial.cert));
    assert.equal(renewed.ca, initial.ca, "the CA is reused");
    assert.equal(first.stats.caBundlePatches, 1, "caBundle unchanged, not patched again");
    assert.deepEqual(caBundles(), [Buffer.from(initial.ca).toString("base64")]);
    assert.equal(server?.stats.certReloads, reloads + 1);
    assert.equal(await servedSerial(initial.ca), serialOf(renewed.cert));
    await assertDeniedThroughWebhook("after-renewal");

    // The other replica reads the rotated Secret at its next check and adopts it without writing.
    await second.check();
    assert.equal(second.current().cert, renewed.cert);
    assert.equal(second.stats.secretWrites, 0);
    // And a further check by anyone changes nothing.
    const rv = readSecret().metadata.resourceVersion;
    await first.check();
    assert.equal(readSecret().metadata.resourceVersion, rv);
  });

  it("a caBundle reset (as by helm upgrade) is patched back at the next check", async () => {
    kubectlOk(cp, [
      "patch",
      "validatingwebhookconfiguration",
      VWC,
      "--type=json",
      "-p",
      '[{"op":"remove","path":"/webhooks/0/clientConfig/caBundle"}]',
    ]);
    assert.deepEqual(caBundles(), [""]);
    // Without the caBundle the API server cannot verify the webhook (once its informer has seen the change).
    let r = await createGuarded("no-ca");
    for (let i = 0; i < 20 && !/failed calling webhook/.test(r.stderr); i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      r = await createGuarded("no-ca");
    }
    assert.match(r.stderr, /failed calling webhook.*(x509|certificate|tls)/, r.stderr);
    await first.check();
    assert.deepEqual(caBundles(), [Buffer.from(first.current().ca).toString("base64")]);
    await assertDeniedThroughWebhook("after-reset");
  });

  it("a Secret whose key no longer matches its certificate is replaced at the next check", async () => {
    const secret = readSecret();
    const other = first.current();
    // tls.key of a different pair: the CA key, which is a valid key but not the certificate's.
    secret.data["tls.key"] = secret.data["ca.key"] ?? "";
    kubectlOk(cp, ["replace", "-f", "-"], JSON.stringify(secret));
    await first.check();
    const repaired = first.current();
    assert.notEqual(serialOf(repaired.cert), serialOf(other.cert));
    assert.equal(repaired.ca, other.ca);
    assert.equal(decode(readSecret().data["tls.key"]), repaired.key);
    assert.ok(logs.some((l) => l.msg === "renewing the webhook certificate"));
    await assertDeniedThroughWebhook("after-repair");
  });

  it("a missing webhook configuration is a warning, never fatal", async () => {
    const lone = replica({ kubeConfig: cp.kubeConfig(), configurationName: "stella-tls-e2e-absent" });
    const before = logs.length;
    await lone.start();
    assert.equal(lone.current().cert, first.current().cert);
    assert.ok(
      logs
        .slice(before)
        .some((l) => l.level === 40 && /ValidatingWebhookConfiguration not found/.test(l.msg)),
    );
  });

  it("replicas racing to create, then to renew, write once each time and end up with the same pair", async () => {
    kubectlOk(cp, ["delete", "secret", SECRET, "-n", NS]);
    const a = replica();
    const b = replica();
    await Promise.all([a.start(), b.start()]);
    assert.equal(
      a.stats.secretWrites + b.stats.secretWrites,
      1,
      "one create; the loser adopted the winner's",
    );
    assert.deepEqual(a.current(), b.current());
    assert.equal(decode(readSecret().data["tls.crt"]), a.current().cert);

    offsetMs = 250 * DAY_MS;
    await Promise.all([a.check(), b.check()]);
    assert.equal(a.stats.failures + b.stats.failures, 0);
    assert.equal(a.stats.secretWrites + b.stats.secretWrites, 2, "one renewal");
    assert.deepEqual(a.current(), b.current());
    assert.equal(decode(readSecret().data["tls.crt"]), a.current().cert);
    assert.equal(a.current().ca, decode(readSecret().data["ca.crt"]));
  });
});

// Admission webhook latency (issue 7): the real WebhookServer over TLS on loopback, in a child process (its own
// event loop and core), deciding with the real handler path (handleReview over a DeltaStore of 500 checked
// attestations, one of them with 20,000 changed functions weighted by runtime hotness, and 20 RolloutGates with
// label selectors, one in audit mode), fed open-loop at a fixed rate by a keep-alive HTTPS client sending
// AdmissionReview v1 bodies for Deployment updates (~8 KB objects, old and new): 60% allowed forward changes,
// 20% denied (high risk), 10% with no attestation, 10% that no gate selects. Latency runs from each request's
// intended send time to the end of its response body (no coordinated omission), and every response is checked.
// Reference in the same run: the same server, bodies and schedule with a trivial handler (always allow), the
// two servers loaded in alternating turns of --segment seconds so drift in the machine falls on both alike.
// Goal: p99 < 5 ms at 200 requests/s for 60 s. The machine should be otherwise idle (the bench says if not).
// Run: node bench/webhook.bench.ts [--rps 200] [--seconds 60] [--warmup 5] [--segment 2] [--quick (5 s)]
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:https";
import type { Socket } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

import { makeTestPki } from "../core/testing/test-pki.ts";
import { DEFAULT_POLICY } from "../core/risk/policy.ts";
import { deltaRisk, withHotness, type ChangedFunction, type ScoreInputs } from "../core/risk/score.ts";
import type { GateEntry, KnownDelta } from "../operator/webhook/decide.ts";
import { handleReview, type HandlerState } from "../operator/webhook/handler.ts";
import { parseReview, type ReviewDecision, type ReviewRequest } from "../operator/webhook/review.ts";
import { WebhookServer, WEBHOOK_PATH } from "../operator/webhook/server.ts";
import { DeltaStore, type HotnessLookup } from "../operator/webhook/store.ts";
import { median } from "./timing.ts";

const GOAL_P99_MS = 5;

const { values } = parseArgs({
  options: {
    rps: { type: "string", default: "200" },
    seconds: { type: "string" },
    warmup: { type: "string" },
    segment: { type: "string", default: "2" },
    quick: { type: "boolean", default: false },
    serve: { type: "string" },
    pki: { type: "string" },
  },
});
const RPS = Number(values.rps);
const SECONDS = Number(values.seconds ?? (values.quick ? 5 : 60));
const WARMUP = Number(values.warmup ?? (values.quick ? 1 : 5));
const SEGMENT = Number(values.segment);
if (!(RPS > 0) || !(SECONDS > 0) || !(WARMUP >= 0) || !(SEGMENT > 0))
  throw new Error("--rps, --seconds, --warmup, --segment: expected numbers > 0");

// ---- the world: attestations, gates, namespaces, workloads (deterministic, built alike in both processes) ----

const KEY = "release-2026";
const TEAMS = 19;
const ATTESTATIONS = 500;
const BIG_FUNCTIONS = 20_000;

const digest = (s: string): string => "sha256:" + createHash("sha256").update(s).digest("hex");
const baseOf = (i: number): string => digest(`image-${i}-base`);
const targetOf = (i: number): string => digest(`image-${i}-target`);
const team = (t: number): string => `team-${String(t).padStart(2, "0")}`;

/** A well-provenanced update: signed by a trusted key, SLSA 3, little new code. */
function lowInputs(changed: ChangedFunction[], targetBytes: number): ScoreInputs {
  const added = Math.round(targetBytes * 0.04);
  return {
    provenance: { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "verified" },
    entropy: {
      copiedBytes: targetBytes - added,
      addedBytes: added,
      targetBytes,
      addedEntropyBitsPerByte: 5.8,
    },
    deps: { added: 0, removed: 0, changed: 1 },
    attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 2, keyAgeDays: 40 },
    functions: {
      added: changed.filter((f) => f.change === "added").length,
      removed: changed.filter((f) => f.change === "removed").length,
      modified: changed.filter((f) => f.change === "modified").length,
      changed,
    },
  };
}

/** Mostly new bytes without provenance and with new dependencies: over any gate's threshold. */
function highInputs(changed: ChangedFunction[]): ScoreInputs {
  const low = lowInputs(changed, 8_000_000);
  return {
    ...low,
    provenance: { slsaProvenance: "absent", dsseValid: false, transparencyLog: "absent" },
    entropy: {
      copiedBytes: 800_000,
      addedBytes: 7_200_000,
      targetBytes: 8_000_000,
      addedEntropyBitsPerByte: 7.9,
    },
    deps: { added: 5, removed: 1, changed: 3 },
  };
}

function changedFunctions(i: number, n: number): ChangedFunction[] {
  const kinds = ["modified", "modified", "modified", "added", "removed"] as const;
  return Array.from({ length: n }, (_, k) => ({
    symbol:
      k % 97 === 0
        ? `parse_record_${i}_${k}`
        : k % 211 === 0
          ? `verify_token_${i}_${k}`
          : `_ZN${i % 50}svc${k % 37}module${k}fn${k * 7}Ev`,
    change: kinds[k % kinds.length] ?? "modified",
  }));
}

/** Attestation 0: the 20,000-function update; 1..399 low risk (5..300 functions); 400..499 high risk. */
function attestations(): KnownDelta[] {
  return Array.from({ length: ATTESTATIONS }, (_, i) => {
    const n = i === 0 ? BIG_FUNCTIONS : 5 + ((i * 37) % 296);
    const fns = changedFunctions(i, n);
    return {
      ref: `da-${String(i).padStart(3, "0")}-${targetOf(i).slice(7, 19)}`,
      baseDigest: baseOf(i),
      targetDigest: targetOf(i),
      signatures: 1,
      verifiedKeyids: [KEY],
      scoreInputs: i < 400 ? lowInputs(fns, i === 0 ? 48_000_000 : 4_000_000 + i * 10_000) : highInputs(fns),
    };
  });
}

/** Agents have samples of the even-numbered base images: every 50th changed function runs hot in them. */
const hotness: HotnessLookup = (image, symbol) => {
  const i = Number(/^image-(\d+)-base$/.exec(baseNames.get(image) ?? "")?.[1] ?? NaN);
  if (!(i % 2 === 0)) return undefined;
  const k = Number(/(\d+)(?:fn\d+Ev)?$/.exec(symbol)?.[1] ?? 1);
  return k % 50 === 0 ? 0.02 + (k % 7) / 1000 : 0;
};
const baseNames = new Map(Array.from({ length: ATTESTATIONS }, (_, i) => [baseOf(i), `image-${i}-base`]));

function gates(): GateEntry[] {
  const trustedKeys = [
    { secretRef: { namespace: "stella-system", name: "release-keys", key: "release.pub" } },
  ];
  const out: GateEntry[] = Array.from({ length: TEAMS }, (_, t) => ({
    name: `${team(t)}-rollouts`,
    keyids: new Set([KEY]),
    spec: {
      namespaceSelector: { matchLabels: { "stella.dev/team": team(t) } },
      selector: {
        matchExpressions: [
          { key: "app.kubernetes.io/name", operator: "Exists" },
          { key: "stella.dev/gate", operator: "NotIn", values: ["skip"] },
        ],
      },
      maxDeltaRisk: 300,
      minProvenance: "verified",
      missingAttestation: "deny",
      rollback: { requireSignedAttestation: true },
      trustedKeys,
    },
  }));
  // Audit: canaries in prod would need the security team's key; it only warns.
  out.push({
    name: "prod-canary-audit",
    keyids: new Set(["security-team-2026"]),
    spec: {
      namespaceSelector: { matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] },
      selector: {
        matchLabels: { tier: "canary" },
        matchExpressions: [{ key: "stella.dev/gate", operator: "DoesNotExist" }],
      },
      maxDeltaRisk: 100,
      minProvenance: "verified",
      mode: "audit",
      trustedKeys,
    },
  });
  return out;
}

function namespaces(): Map<string, Record<string, string>> {
  const m = new Map<string, Record<string, string>>();
  for (let t = 0; t < TEAMS; t++) {
    m.set(team(t), {
      "kubernetes.io/metadata.name": team(t),
      "stella.dev/team": team(t),
      env: t % 3 === 0 ? "prod" : "staging",
    });
  }
  for (let s = 0; s < 4; s++) {
    m.set(`sandbox-${s}`, {
      "kubernetes.io/metadata.name": `sandbox-${s}`,
      "stella.dev/team": "sandbox",
      env: "dev",
    });
  }
  return m;
}

type Class = "allowed" | "denied" | "missing" | "nogate";

interface Workload {
  cls: Class;
  /** The body with the uid left out: prefix + uid + suffix. */
  prefix: string;
  suffix: string;
  allowed: boolean;
  /** Whether the audit gate covers it (then the response carries warnings). */
  warns: boolean;
  /** What a denial's message says. */
  denial?: RegExp;
}

function deployment(
  ns: string,
  name: string,
  labels: Record<string, string>,
  image: string,
  generation: number,
): Record<string, unknown> {
  const env = Array.from({ length: 18 }, (_, k) => ({
    name: `APP_SETTING_${k}`,
    value: k % 3 === 0 ? `https://${name}-dep-${k}.${ns}.svc.cluster.local:8443/api/v${k % 4}` : `value-${k}`,
  }));
  const container = {
    name: "app",
    image,
    imagePullPolicy: "IfNotPresent",
    args: ["--config=/etc/app/config.yaml", "--log-format=json", "--metrics-addr=:9090"],
    ports: [
      { name: "http", containerPort: 8080, protocol: "TCP" },
      { name: "metrics", containerPort: 9090, protocol: "TCP" },
    ],
    env,
    resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { cpu: "1", memory: "512Mi" } },
    livenessProbe: { httpGet: { path: "/healthz", port: "http", scheme: "HTTP" }, periodSeconds: 10 },
    readinessProbe: { httpGet: { path: "/readyz", port: "http", scheme: "HTTP" }, periodSeconds: 5 },
    volumeMounts: [
      { name: "config", mountPath: "/etc/app", readOnly: true },
      { name: "tmp", mountPath: "/tmp" },
    ],
    securityContext: { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
  };
  const sidecar = {
    name: "proxy",
    image: `registry.example.com/platform/envoy@${digest("envoy-1.31")}`,
    args: ["-c", "/etc/envoy/envoy.yaml"],
    ports: [{ name: "proxy", containerPort: 15001, protocol: "TCP" }],
    resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "200m", memory: "128Mi" } },
  };
  const spec = {
    replicas: 3,
    revisionHistoryLimit: 10,
    progressDeadlineSeconds: 600,
    selector: { matchLabels: { "app.kubernetes.io/name": name } },
    strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } },
    template: {
      metadata: { labels: { ...labels }, annotations: { "prometheus.io/scrape": "true" } },
      spec: {
        containers: [container, sidecar],
        volumes: [
          { name: "config", configMap: { name: `${name}-config`, defaultMode: 420 } },
          { name: "tmp", emptyDir: {} },
        ],
        restartPolicy: "Always",
        terminationGracePeriodSeconds: 30,
        dnsPolicy: "ClusterFirst",
        serviceAccountName: name,
        schedulerName: "default-scheduler",
        securityContext: { fsGroup: 2000 },
      },
    },
  };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name,
      namespace: ns,
      uid: createHash("md5").update(`${ns}/${name}`).digest("hex"),
      resourceVersion: String(1_000_000 + generation),
      generation,
      creationTimestamp: "2026-09-01T10:00:00Z",
      labels,
      annotations: {
        "deployment.kubernetes.io/revision": String(generation),
        "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
          metadata: { name, labels },
          spec,
        }),
      },
      managedFields: [
        {
          manager: "kubectl-client-side-apply",
          operation: "Update",
          apiVersion: "apps/v1",
          time: "2026-11-20T08:00:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:spec": {
              "f:replicas": {},
              "f:template": { "f:spec": { 'k:{"name":"app"}': { "f:image": {}, "f:env": {} } } },
            },
          },
        },
      ],
    },
    spec,
    status: { observedGeneration: generation, replicas: 3, readyReplicas: 3, availableReplicas: 3 },
  };
}

/** 100 allowed, 40 denied, 40 missing-attestation and 40 ungated Deployment updates. */
function workloads(): Workload[] {
  const ns = namespaces();
  const out: Workload[] = [];
  const add = (cls: Class, k: number): void => {
    const nogateSandbox = cls === "nogate" && k % 2 === 0;
    const namespace = nogateSandbox ? `sandbox-${k % 4}` : team(k % TEAMS);
    const name = `${cls}-svc-${k}`;
    const skip = cls === "nogate" && !nogateSandbox;
    const labels: Record<string, string> = {
      "app.kubernetes.io/name": name,
      "app.kubernetes.io/part-of": `${namespace}-platform`,
      tier: k % 5 === 0 ? "canary" : "stable",
      ...(skip ? { "stella.dev/gate": "skip" } : {}),
    };
    // Attestation index: 0 (the 20,000-function one) for every 10th allowed workload.
    const a =
      cls === "allowed"
        ? k % 10 === 0
          ? 0
          : 1 + ((k * 4) % 399)
        : cls === "denied"
          ? 400 + ((k * 3) % 100)
          : k;
    const repo = `registry.example.com/${namespace}/${name}`;
    const from = `${repo}@${baseOf(a)}`;
    const to = cls === "missing" ? `${repo}@${digest(`unattested-${k}`)}` : `${repo}@${targetOf(a)}`;
    const oldObj = deployment(namespace, name, labels, from, 7);
    const newObj = deployment(namespace, name, labels, to, 8);
    const body = JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: {
        uid: "@@UID@@",
        kind: { group: "apps", version: "v1", kind: "Deployment" },
        resource: { group: "apps", version: "v1", resource: "deployments" },
        requestKind: { group: "apps", version: "v1", kind: "Deployment" },
        requestResource: { group: "apps", version: "v1", resource: "deployments" },
        name,
        namespace,
        operation: "UPDATE",
        userInfo: {
          username: "system:serviceaccount:ci:deployer",
          uid: "5f0e1d2c-0000-4000-8000-000000000001",
          groups: ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"],
        },
        object: newObj,
        oldObject: oldObj,
        dryRun: false,
        options: {
          kind: "UpdateOptions",
          apiVersion: "meta.k8s.io/v1",
          fieldManager: "kubectl-client-side-apply",
        },
      },
    });
    const [prefix, suffix] = body.split("@@UID@@");
    if (prefix === undefined || suffix === undefined) throw new Error("body template");
    const prod = ns.get(namespace)?.env === "prod";
    const w: Workload = {
      cls,
      prefix,
      suffix,
      allowed: cls === "allowed" || cls === "nogate",
      warns: cls !== "nogate" && prod && labels.tier === "canary",
    };
    if (cls === "denied") w.denial = /delta_risk \d\.\d{3} > 0\.300/;
    if (cls === "missing") w.denial = /no DeltaAttestation for /;
    out.push(w);
  };
  for (let k = 0; k < 100; k++) add("allowed", k);
  for (const cls of ["denied", "missing", "nogate"] as const) for (let k = 0; k < 40; k++) add(cls, k);
  return out;
}

function handlerState(): { state: HandlerState; storeMs: number } {
  const t = performance.now();
  const store = new DeltaStore({ policy: DEFAULT_POLICY, hotness });
  for (const d of attestations()) store.set(d, false);
  const storeMs = performance.now() - t;
  const gs = gates();
  const ns = namespaces();
  return {
    storeMs,
    state: {
      gates: () => gs,
      namespaceLabels: (n) => ns.get(n),
      deltas: store,
      excludedNamespaces: new Set(["stella-system", "kube-system"]),
    },
  };
}

// ---- the server (child process) ---------------------------------------------------------------------------

async function serve(mode: string, pkiDir: string): Promise<void> {
  let handle: (r: ReviewRequest) => ReviewDecision;
  let storeMs = 0;
  if (mode === "real") {
    const built = handlerState();
    storeMs = built.storeMs;
    const state = built.state;
    handle = (r) => handleReview(r, state).response;
  } else if (mode === "trivial") {
    handle = () => ({ allowed: true });
  } else throw new Error(`--serve: ${mode}, expected real or trivial`);

  let measuring = false;
  const handlerMs: number[] = [];
  const server = new WebhookServer({
    address: "127.0.0.1:0",
    tls: { cert: readFileSync(join(pkiDir, "server.crt")), key: readFileSync(join(pkiDir, "server.key")) },
    handle: (r) => {
      const t = performance.now();
      const d = handle(r);
      if (measuring) handlerMs.push(performance.now() - t);
      return d;
    },
  });
  const port = await server.start();
  const eld = monitorEventLoopDelay({ resolution: 2 });
  const gc = { count: 0, totalMs: 0, maxMs: 0, major: 0 };
  new PerformanceObserver((list) => {
    if (!measuring) return;
    for (const e of list.getEntries()) {
      gc.count++;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR)
        gc.major++;
    }
  }).observe({ entryTypes: ["gc"] });
  let cpu0 = process.cpuUsage();
  let requests0 = 0;
  const say = (o: unknown): void => {
    process.stdout.write(JSON.stringify(o) + "\n");
  };
  say({ port, storeMs });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "begin") {
      measuring = true;
      cpu0 = process.cpuUsage();
      requests0 = server.stats.requests;
      eld.enable();
      say({ begun: true });
    } else if (line === "end") {
      const cpu = process.cpuUsage(cpu0);
      eld.disable();
      measuring = false;
      const ms = (ns: number): number => ns / 1e6;
      handlerMs.sort((a, b) => a - b);
      say({
        cpuS: (cpu.user + cpu.system) / 1e6,
        requests: server.stats.requests - requests0,
        refused: server.stats.refused,
        errors: server.stats.errors,
        eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
        gc,
        heapMB: process.memoryUsage().heapUsed / 1e6,
        handler: {
          p50: quantile(handlerMs, 0.5),
          p99: quantile(handlerMs, 0.99),
          max: handlerMs[handlerMs.length - 1] ?? NaN,
        },
      });
      await server.stop();
      process.exit(0);
    }
  }
}

// ---- the client -------------------------------------------------------------------------------------------

function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LoadResult {
  sent: number;
  completed: number;
  /** ms from intended send time to the end of the response body, sorted. */
  latency: Float64Array;
  /** ms from actual send to the end of the response body, sorted. */
  service: Float64Array;
  /** ms the client sent late, sorted. */
  lag: Float64Array;
  /** Seconds from the first send to the last. */
  spanS: number;
  errors: number;
  mismatches: number;
  examples: string[];
  connections: number;
  byClass: Map<Class, number[]>;
  /** Requests over the goal, by second of the run (of their intended send time). */
  slow: Map<number, number>;
}

/** Every socket the client has used, so a connection is counted once, in the turn that opened it. */
const sockets = new WeakSet<Socket>();

async function load(
  port: number,
  agent: Agent,
  pool: Record<Class, Workload[]>,
  opts: { seconds: number; seed: number; trivial: boolean; uidPrefix: string; offsetS?: number },
): Promise<LoadResult> {
  const n = Math.max(1, Math.round(opts.seconds * RPS));
  const interval = 1000 / RPS;
  const next = rng(opts.seed);
  const latency = new Float64Array(n).fill(NaN);
  const service = new Float64Array(n).fill(NaN);
  const lag = new Float64Array(n).fill(NaN);
  const byClass = new Map<Class, number[]>();
  const slow = new Map<number, number>();
  const r = { errors: 0, mismatches: 0, examples: [] as string[], connections: 0, completed: 0 };
  const fail = (kind: "errors" | "mismatches", why: string): void => {
    r[kind]++;
    if (r.examples.length < 5) r.examples.push(why);
  };
  const t0 = performance.now() + 20;
  let firstSend = NaN;
  let lastSend = NaN;
  const done: Promise<void>[] = [];

  const fire = (i: number, intended: number): void => {
    const x = next();
    const cls: Class = x < 0.6 ? "allowed" : x < 0.8 ? "denied" : x < 0.9 ? "missing" : "nogate";
    const list = pool[cls];
    const w = list[Math.floor(next() * list.length)];
    if (w === undefined) throw new Error("empty pool");
    const uid = `${opts.uidPrefix}-${String(i).padStart(8, "0")}`;
    const body = w.prefix + uid + w.suffix;
    const check = (status: number, text: string): void => {
      if (status !== 200) {
        fail("mismatches", `${uid}: HTTP ${status}: ${text.slice(0, 200)}`);
        return;
      }
      const resp = (JSON.parse(text) as { kind?: string; response?: Record<string, unknown> }).response;
      const status403 = (resp?.status as { code?: number; message?: string } | undefined) ?? {};
      const warnings = resp?.warnings as string[] | undefined;
      const allowed = opts.trivial || w.allowed;
      const warns = !opts.trivial && w.warns;
      const why =
        resp?.uid !== uid
          ? `uid ${String(resp?.uid)}`
          : resp.allowed !== allowed
            ? `allowed ${String(resp.allowed)}, expected ${allowed} (${status403.message ?? ""})`
            : (warnings !== undefined && warnings.length > 0) !== warns
              ? `warnings ${JSON.stringify(warnings)}, expected ${warns ? "some" : "none"}`
              : !allowed && (status403.code !== 403 || !(w.denial?.test(status403.message ?? "") ?? true))
                ? `denial ${JSON.stringify(status403)}`
                : undefined;
      if (why !== undefined) fail("mismatches", `${uid} (${cls}): ${why}`);
    };
    const sent = performance.now();
    if (Number.isNaN(firstSend)) firstSend = sent;
    lastSend = sent;
    lag[i] = sent - intended;
    done.push(
      new Promise<void>((resolve) => {
        const req = request(
          {
            host: "127.0.0.1",
            port,
            path: WEBHOOK_PATH,
            method: "POST",
            agent,
            headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
            timeout: 10_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const end = performance.now();
              latency[i] = end - intended;
              service[i] = end - sent;
              r.completed++;
              let ms = byClass.get(cls);
              if (!ms) byClass.set(cls, (ms = []));
              ms.push(end - intended);
              if (end - intended > GOAL_P99_MS) {
                const sec = (opts.offsetS ?? 0) + Math.floor((intended - t0) / 1000);
                slow.set(sec, (slow.get(sec) ?? 0) + 1);
              }
              check(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"));
              resolve();
            });
            res.on("error", (e) => {
              fail("errors", `${uid}: response: ${e.message}`);
              resolve();
            });
          },
        );
        req.on("socket", (s: Socket) => {
          if (!sockets.has(s)) {
            sockets.add(s);
            r.connections++;
          }
        });
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", (e) => {
          fail("errors", `${uid}: ${e.message}`);
          resolve();
        });
        req.end(body);
      }),
    );
  };

  let i = 0;
  await new Promise<void>((resolve) => {
    // Sleep to ~1.5 ms before the next intended time, then spin with setImmediate (I/O still runs between
    // turns), so the client's own timer slack stays out of the figures; requests due meanwhile go at once.
    const tick = (): void => {
      const now = performance.now();
      while (i < n && t0 + i * interval <= now) {
        fire(i, t0 + i * interval);
        i++;
      }
      if (i >= n) {
        resolve();
        return;
      }
      const wait = t0 + i * interval - performance.now();
      if (wait > 2) setTimeout(tick, wait - 1.5);
      else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(done);
  const sorted = (a: Float64Array): Float64Array => a.filter((x) => !Number.isNaN(x)).sort();
  for (const ms of byClass.values()) ms.sort((a, b) => a - b);
  return {
    sent: n,
    completed: r.completed,
    latency: sorted(latency),
    service: sorted(service),
    lag: sorted(lag),
    spanS: (lastSend - firstSend) / 1000,
    errors: r.errors,
    mismatches: r.mismatches,
    examples: r.examples,
    connections: r.connections,
    byClass,
    slow,
  };
}

interface ServerReport {
  cpuS: number;
  requests: number;
  refused: number;
  errors: number;
  eld: { p50: number; p99: number; max: number };
  gc: { count: number; totalMs: number; maxMs: number; major: number };
  heapMB: number;
  handler: { p50: number; p99: number; max: number };
}

interface RunResult {
  load: LoadResult;
  server: ServerReport;
  /** CPU seconds the client used on this server's turns. */
  clientCpuS: number;
}

/** Busy CPU seconds of the whole machine so far (all but idle and iowait), NaN off Linux. */
function machineBusyS(): number {
  try {
    const f =
      readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
  } catch {
    return NaN;
  }
}

type Mode = "trivial" | "real";

interface Served {
  mode: Mode;
  port: number;
  agent: Agent;
  say: (line: string) => void;
  next: <T>() => Promise<T>;
  /** Waits for the child to exit after "end"; kills it when a run failed before that. */
  stop: () => Promise<void>;
}

/** A server child: its port, a keep-alive agent for it, and its line protocol. */
async function startServer(mode: Mode, pkiDir: string): Promise<Served> {
  const child = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, "--serve", mode, "--pki", pkiDir],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  let ended = false;
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => {
    const l = await lines.next();
    if (l.done === true) throw new Error(`${mode} server exited early`);
    return JSON.parse(l.value) as T;
  };
  const exited = new Promise((resolve) => child.on("exit", resolve));
  child.stdin.on("error", () => undefined); // EPIPE once it exited; its exit is what counts
  const { port } = await next<{ port: number }>();
  return {
    mode,
    port,
    agent: new Agent({ keepAlive: true, ca: readFileSync(join(pkiDir, "ca.crt")) }),
    say: (line) => {
      if (line === "end") ended = true;
      child.stdin.write(line + "\n");
    },
    next,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null && !ended) child.kill();
      await exited;
    },
  };
}

function merge(parts: LoadResult[]): LoadResult {
  const cat = (k: "latency" | "service" | "lag"): Float64Array => {
    const out = new Float64Array(parts.reduce((a, p) => a + p[k].length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p[k], at);
      at += p[k].length;
    }
    return out.sort();
  };
  const byClass = new Map<Class, number[]>();
  const slow = new Map<number, number>();
  for (const p of parts) {
    for (const [c, ms] of p.byClass) byClass.set(c, [...(byClass.get(c) ?? []), ...ms]);
    for (const [sec, n] of p.slow) slow.set(sec, (slow.get(sec) ?? 0) + n);
  }
  for (const ms of byClass.values()) ms.sort((a, b) => a - b);
  const sum = (k: "sent" | "completed" | "errors" | "mismatches" | "connections" | "spanS"): number =>
    parts.reduce((a, p) => a + p[k], 0);
  return {
    sent: sum("sent"),
    completed: sum("completed"),
    latency: cat("latency"),
    service: cat("service"),
    lag: cat("lag"),
    spanS: sum("spanS"),
    errors: sum("errors"),
    mismatches: sum("mismatches"),
    examples: parts.flatMap((p) => p.examples).slice(0, 5),
    connections: sum("connections"),
    byClass,
    slow,
  };
}

/**
 * Both servers up and warmed, then measured in alternating turns of SEGMENT seconds (trivial, real, trivial,
 * real, …) until each has had SECONDS: drift in the machine (other load, the VM's host) then falls on both
 * alike, so their ratio holds. Returns both results and the machine's busy CPU seconds over the whole window.
 */
async function measure(
  pkiDir: string,
  pool: Record<Class, Workload[]>,
): Promise<{ trivial: RunResult; real: RunResult; machineCpuS: number }> {
  const servers = { trivial: await startServer("trivial", pkiDir), real: await startServer("real", pkiDir) };
  try {
    for (const s of Object.values(servers)) {
      // Warm-up: connections, JIT, the server's first GCs; checked but not measured.
      if (WARMUP <= 0) continue;
      const w = await load(s.port, s.agent, pool, {
        trivial: s.mode === "trivial",
        seconds: WARMUP,
        seed: 7,
        uidPrefix: `${s.mode}-warm`,
      });
      if (w.errors + w.mismatches > 0) throw new Error(`${s.mode} warm-up: ${w.examples.join("; ")}`);
    }
    for (const s of Object.values(servers)) {
      s.say("begin");
      await s.next();
    }
    const parts: Record<Mode, LoadResult[]> = { trivial: [], real: [] };
    const clientCpuS: Record<Mode, number> = { trivial: 0, real: 0 };
    const busy0 = machineBusyS();
    const turns = Math.ceil(SECONDS / SEGMENT);
    for (let k = 0; k < turns; k++) {
      const seconds = Math.min(SEGMENT, SECONDS - k * SEGMENT);
      // Strictly alternating: a server idle longer than the client agent keeps sockets (the server's 5 s keep-alive
      // hint less 1 s) would see every turn start with new TLS handshakes, which the API server does not cause.
      for (const mode of ["trivial", "real"] as const) {
        const s = servers[mode];
        const cpu0 = process.cpuUsage();
        parts[mode].push(
          await load(s.port, s.agent, pool, {
            trivial: mode === "trivial",
            seconds,
            seed: 11 + k,
            uidPrefix: `${mode}-${k}`,
            offsetS: k * SEGMENT,
          }),
        );
        const cpu = process.cpuUsage(cpu0);
        clientCpuS[mode] += (cpu.user + cpu.system) / 1e6;
      }
    }
    const machineCpuS = machineBusyS() - busy0;
    const result = async (mode: Mode): Promise<RunResult> => {
      const s = servers[mode];
      s.say("end");
      return { load: merge(parts[mode]), server: await s.next<ServerReport>(), clientCpuS: clientCpuS[mode] };
    };
    return { trivial: await result("trivial"), real: await result("real"), machineCpuS };
  } finally {
    for (const s of Object.values(servers)) {
      s.agent.destroy();
      await s.stop();
    }
  }
}

function report(label: string, r: RunResult): void {
  const l = r.load;
  const f = (x: number): string => x.toFixed(2);
  const q = (a: ArrayLike<number>): string =>
    `p50 ${f(quantile(a, 0.5))}  p90 ${f(quantile(a, 0.9))}  p99 ${f(quantile(a, 0.99))}  ` +
    `p99.9 ${f(quantile(a, 0.999))}  max ${f(quantile(a, 1))} ms`;
  const s = r.server;
  console.log(
    `\n${label}: ${l.sent} requests, ${l.completed} completed, achieved ${(l.sent / l.spanS).toFixed(1)} req/s, ` +
      `errors ${l.errors}, mismatches ${l.mismatches}, new TLS connections (after warm-up) ${l.connections}`,
  );
  console.log(`  latency (from intended send): ${q(l.latency)}`);
  console.log(`  latency (from actual send):   ${q(l.service)}`);
  console.log(
    `  client send lag:              p99 ${f(quantile(l.lag, 0.99))}  max ${f(quantile(l.lag, 1))} ms`,
  );
  for (const cls of ["allowed", "denied", "missing", "nogate"] as const) {
    const ms = l.byClass.get(cls) ?? [];
    console.log(
      `    ${cls.padEnd(8)} ${String(ms.length).padStart(6)} requests  ` +
        `p50 ${f(quantile(ms, 0.5))}  p99 ${f(quantile(ms, 0.99))} ms`,
    );
  }
  console.log(
    `  server: CPU ${s.cpuS.toFixed(2)} s (${((s.cpuS / SECONDS) * 100).toFixed(1)} % of one core, ` +
      `${((s.cpuS / Math.max(1, s.requests)) * 1e6).toFixed(0)} µs/request), ${s.requests} requests, ` +
      `refused ${s.refused}, 500s ${s.errors}; handler p50 ${(s.handler.p50 * 1000).toFixed(0)} µs ` +
      `p99 ${(s.handler.p99 * 1000).toFixed(0)} µs max ${f(s.handler.max)} ms; ` +
      `event-loop delay p99 ${f(s.eld.p99)} max ${f(s.eld.max)} ms; ` +
      `GC ${s.gc.count} pauses (${s.gc.major} major), ${f(s.gc.totalMs)} ms total, max ${f(s.gc.maxMs)} ms, ` +
      `heap ${s.heapMB.toFixed(0)} MB; ` +
      `client CPU on its turns ${r.clientCpuS.toFixed(1)} s`,
  );
  const slowest = [...l.slow].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log(
    `  over ${GOAL_P99_MS} ms: ${[...l.slow.values()].reduce((a, b) => a + b, 0)} requests; ` +
      `worst seconds of the run (second:count): ${slowest.map(([sec, c]) => `${sec}:${c}`).join(" ") || "none"}`,
  );
  for (const e of l.examples) console.log(`  ! ${e}`);
}

/** Median wall ms of `fn` after `warm` untimed calls. */
function timeMs(fn: () => void, runs: number, warm = 2): number {
  for (let k = 0; k < warm; k++) fn();
  const t: number[] = [];
  for (let k = 0; k < runs; k++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  return median(t);
}

/**
 * In process, before any load: each workload's decision checked against its class (so the world is what the
 * bench claims), what one decision and one uncached deltaRisk cost. Its own function, so none of it stays on
 * the client's heap during the runs.
 */
function inProcess(all: Workload[]): string[] {
  const { state, storeMs } = handlerState();
  const perClass = new Map<Class, number[]>();
  for (const w of all) {
    const review = parseReview(JSON.parse(w.prefix + "check" + w.suffix) as unknown);
    const h = handleReview(review, state);
    const warns = (h.response.warnings?.length ?? 0) > 0;
    if (
      h.response.allowed !== w.allowed ||
      warns !== w.warns ||
      !(w.denial?.test(h.response.message ?? "") ?? true)
    ) {
      throw new Error(`world: ${w.cls} ${review.namespace}/${review.name}: ${JSON.stringify(h.response)}`);
    }
    let ms = perClass.get(w.cls);
    if (!ms) perClass.set(w.cls, (ms = []));
    ms.push(timeMs(() => handleReview(review, state), 20) * 1000);
  }
  const big = attestations()[0]?.scoreInputs;
  if (!big) throw new Error("no big attestation");
  const bigHot = new Map(big.functions.changed.map((fn) => [fn, hotness(baseOf(0), fn.symbol)]));
  const hot = (): ScoreInputs => withHotness(big, (fn) => bigHot.get(fn));
  const riskMs = timeMs(() => deltaRisk(big, DEFAULT_POLICY), 7);
  const riskHotMs = timeMs(() => deltaRisk(hot(), DEFAULT_POLICY), 7);
  const score = deltaRisk(hot(), DEFAULT_POLICY).score;
  const sizes = all.map((w) => w.prefix.length + w.suffix.length);
  return [
    `  state: ${ATTESTATIONS} attestations (one with ${BIG_FUNCTIONS} changed functions), ${gates().length} gates, ` +
      `store filled in ${storeMs.toFixed(0)} ms; bodies ${Math.min(...sizes)}..${Math.max(...sizes)} bytes ` +
      `(old + new Deployment)`,
    `  deltaRisk on the ${BIG_FUNCTIONS}-function inputs: ${riskMs.toFixed(1)} ms, with hotness ` +
      `${riskHotMs.toFixed(1)} ms (score ${score}); the store caches it, so the request path does not pay it`,
    `  handleReview in process (median µs per class): ` +
      [...perClass].map(([c, ms]) => `${c} ${median(ms).toFixed(1)}`).join(", "),
  ];
}

async function main(): Promise<void> {
  const all = workloads();
  const pool: Record<Class, Workload[]> = {
    allowed: all.filter((w) => w.cls === "allowed"),
    denied: all.filter((w) => w.cls === "denied"),
    missing: all.filter((w) => w.cls === "missing"),
    nogate: all.filter((w) => w.cls === "nogate"),
  };
  const lines = inProcess(all);
  console.log(
    `webhook bench: ${RPS} req/s for ${SECONDS} s (+${WARMUP} s warm-up) per run, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  for (const l of lines) console.log(l);

  const dir = mkdtempSync(join(tmpdir(), "stella-webhook-bench-"));
  try {
    makeTestPki(dir);
    const { trivial, real, machineCpuS } = await measure(dir, pool);
    report("trivial handler (always allow)", trivial);
    report("real handler (handleReview over the DeltaStore)", real);
    const others =
      machineCpuS - trivial.clientCpuS - real.clientCpuS - trivial.server.cpuS - real.server.cpuS;
    const window = 2 * SECONDS * cpus().length;
    console.log(
      `\nmachine: ${machineCpuS.toFixed(1)} CPU s busy of ~${window.toFixed(0)} (${cpus().length} CPUs) over both ` +
        `runs; other processes ${others.toFixed(1)} s` +
        (others > 0.05 * window
          ? " (NOT idle: the figures are disturbed, run again on a quiet machine)"
          : ""),
    );
    const p99 = quantile(real.load.latency, 0.99);
    const ratio = p99 / quantile(trivial.load.latency, 0.99);
    const bad = real.load.errors + real.load.mismatches + trivial.load.errors + trivial.load.mismatches;
    console.log(
      `\np99 ${p99.toFixed(2)} ms = ${(p99 / GOAL_P99_MS).toFixed(2)}× the goal of ${GOAL_P99_MS} ms ` +
        `(${p99 < GOAL_P99_MS ? "met" : "NOT met"}); p99 real / trivial ${ratio.toFixed(2)}×; ` +
        `errors + mismatches ${bad}`,
    );
    if (bad > 0) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.serve !== undefined) {
  if (values.pki === undefined) throw new Error("--serve needs --pki DIR");
  await serve(values.serve, values.pki);
} else {
  await main();
}

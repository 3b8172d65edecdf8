import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";

import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";

import type { VexStatement } from "../api/generated/index.ts";
import type { HotSymbolIndex, SymbolObservation, SymbolQuery } from "../index/types.ts";
import { FakeEventRecorder } from "../runtime/events.ts";
import type { ResourceInformer } from "../runtime/informer.ts";
import type { StatusApi } from "../runtime/status.ts";
import { createRegistry } from "../../core/service/metrics.ts";
import { silentLogger } from "../../core/service/log.ts";
import { parseEnvelope } from "../../core/dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey, loadPublicKey } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import { parseStatement } from "../../core/dsse/statement.ts";
import { verifyEnvelope } from "../../core/dsse/verify.ts";
import { validateOpenVex } from "../../core/vex/openvex.ts";
import { VexStatementController, type ConfigMapApi } from "./vexstatement.ts";
import { InMemoryFunctionPresence } from "./vexstatement-presence.ts";

const T0 = Date.UTC(2024, 4, 1, 14, 0, 0);
const BUILD_ID = "03d4a1b2c3d4e5f60718293a4b5c6d7e8f901234";
const IMAGE = `sha256:${"ab".repeat(32)}`;

/** A HotSymbolIndex answering from fixed numbers. */
class FakeIndex implements HotSymbolIndex {
  hot = 0;
  product = 1000;
  readonly queries: SymbolQuery[] = [];
  fold(): void {}
  query(q: SymbolQuery): SymbolObservation {
    this.queries.push(q);
    const n = q.name === "stella_hot" ? this.hot : 0;
    return {
      samples: n,
      productSamples: this.product,
      buildIds: n > 0 ? [BUILD_ID] : [],
      pods: n > 0 ? ["shop/apigw-0"] : [],
      nodes: n > 0 ? ["node-a"] : [],
      topStacks: n > 0 ? [{ stack: "stella_hot;handle;main", count: n }] : [],
    };
  }
  productSamples(): { samples: number } {
    return { samples: this.product };
  }
  buildId(): undefined {
    return undefined;
  }
  prune(): void {}
  clear(): void {}
  readonly stats = { symbols: 0, buckets: 0, approxBytes: 0, foldedBatches: 0, foldedSamples: 0 };
}

/** RFC 7386 JSON merge patch. */
function merge(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target) ? { ...target } : {};
  const entries = Object.entries(patch as Record<string, unknown>);
  return Object.fromEntries([
    ...Object.entries(out).filter(([k]) => !entries.some(([p]) => p === k)),
    ...entries.filter(([, v]) => v !== null).map(([k, v]) => [k, merge(out[k], v)]),
  ]);
}

function world(statement: VexStatement) {
  let obj: VexStatement = structuredClone(statement);
  let rv = 1;
  const patches: unknown[] = [];
  const api = {
    getNamespacedCustomObjectStatus: () => Promise.resolve(structuredClone(obj)),
    patchNamespacedCustomObjectStatus: (req: { body: { status: unknown } }) => {
      patches.push(req.body.status);
      obj = merge(obj, { status: req.body.status }) as VexStatement;
      obj.metadata.resourceVersion = String(++rv);
      return Promise.resolve(structuredClone(obj));
    },
  } as unknown as StatusApi;
  const configMaps = new Map<string, V1ConfigMap>();
  const cmApi: ConfigMapApi = {
    readNamespacedConfigMap: (req: { name: string; namespace: string }) => {
      const cm = configMaps.get(`${req.namespace}/${req.name}`);
      if (cm === undefined) return Promise.reject(Object.assign(new Error("not found"), { code: 404 }));
      return Promise.resolve(structuredClone(cm));
    },
    createNamespacedConfigMap: (req: { namespace: string; body: V1ConfigMap }) => {
      configMaps.set(`${req.namespace}/${req.body.metadata?.name ?? ""}`, structuredClone(req.body));
      return Promise.resolve(req.body);
    },
    replaceNamespacedConfigMap: (req: { name: string; namespace: string; body: V1ConfigMap }) => {
      configMaps.set(`${req.namespace}/${req.name}`, structuredClone(req.body));
      return Promise.resolve(req.body);
    },
  };
  const informer = {
    get: () => structuredClone(obj),
    keys: () => ["shop/cve-2024-1234"],
    onChange: () => undefined,
  } as unknown as ResourceInformer<VexStatement>;
  return { api, cmApi, informer, patches, configMaps, current: () => obj };
}

const STATEMENT: VexStatement = {
  apiVersion: "evidence.stella-ops.org/v1alpha1",
  kind: "VexStatement",
  metadata: {
    name: "cve-2024-1234",
    namespace: "shop",
    uid: "6f1e2d3c-0000-4000-8000-000000000001",
    generation: 1,
    resourceVersion: "1",
  },
  spec: {
    vulnerability: { id: "CVE-2024-1234" },
    product: { imageDigest: IMAGE },
    symbols: [{ name: "stella_hot" }],
    policy: { windowSeconds: 3600, minSamples: 5, notAffectedAfterSeconds: 7200, revisitSeconds: 600 },
  },
};

function setup(signed: boolean) {
  const w = world(STATEMENT);
  const index = new FakeIndex();
  const presence = new InMemoryFunctionPresence();
  presence.add(BUILD_ID, ["main", "stella_hot"]);
  const events = new FakeEventRecorder();
  const registry = createRegistry();
  const pair = generateKeyPair("ecdsa-p256");
  let now = T0;
  const controller = new VexStatementController({
    kubeConfig: new KubeConfig(),
    index,
    presence,
    signer: signed ? keySigner(loadPrivateKey(pair.privatePem, "key")) : undefined,
    events,
    registry,
    logger: silentLogger(),
    workers: 1,
    clock: { now: () => now, setTimeout: () => () => undefined },
    customObjectsApi: w.api,
    configMapApi: w.cmApi,
    informer: w.informer,
  });
  return {
    ...w,
    index,
    events,
    registry,
    pair,
    controller,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function transitions(registry: ReturnType<typeof createRegistry>): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric("stella_operator_vex_transitions_total")?.get();
  return Object.fromEntries((m?.values ?? []).map((v) => [String(v.labels.status), v.value]));
}

describe("VexStatementController", () => {
  test("decides, signs, stores, records; writes nothing when nothing changed; flips to affected", async () => {
    const s = setup(true);
    const r1 = await s.controller.reconcile("shop/cve-2024-1234");
    assert.equal(r1.requeueAfterMs, 600_000);
    const st = s.current().status!;
    assert.equal(st.vexStatus, "under_investigation");
    assert.equal(st.observedGeneration, 1);
    const conds = Object.fromEntries((st.conditions ?? []).map((c) => [c.type, c]));
    assert.equal(conds["Decided"]?.status, "True");
    assert.equal(conds["Decided"]?.reason, "AwaitingEvidence");
    assert.equal(conds["Signed"]?.status, "True");
    assert.equal(conds["Signed"]?.observedGeneration, 1);

    const cm = s.configMaps.get("shop/vex-cve-2024-1234")!;
    assert.deepEqual(cm.metadata?.ownerReferences, [
      {
        apiVersion: "evidence.stella-ops.org/v1alpha1",
        kind: "VexStatement",
        name: "cve-2024-1234",
        uid: STATEMENT.metadata.uid,
        controller: true,
      },
    ]);
    const envJson = cm.data?.["openvex.dsse.json"] ?? "";
    assert.equal(st.documentDigest, `sha256:${createHash("sha256").update(envJson).digest("hex")}`);
    assert.equal(cm.metadata?.annotations?.["evidence.stella-ops.org/openvex-version"], "1");
    assert.match(cm.data?.["evidence.md"] ?? "", /^# CVE-2024-1234: under_investigation/);
    assert.equal(s.events.events.length, 1);
    assert.equal(s.events.events[0]?.reason, "AwaitingEvidence");
    assert.deepEqual(await transitions(s.registry), { under_investigation: 1 });
    // The index was asked about the product's image over the window and the quiet range.
    assert.deepEqual(
      s.index.queries.map((q) => [q.imageDigest, T0 - q.sinceMs]),
      [
        [IMAGE, 3_600_000],
        [IMAGE, 7_200_000],
      ],
    );

    // Same evidence: no write, no event.
    s.advance(60_000);
    await s.controller.reconcile("shop/cve-2024-1234");
    assert.equal(s.patches.length, 1);
    assert.equal(s.events.events.length, 1);

    // The vulnerable symbol runs: affected, re-signed, version 2.
    s.index.hot = 173;
    s.advance(60_000);
    await s.controller.reconcile("shop/cve-2024-1234");
    const st2 = s.current().status!;
    assert.equal(st2.vexStatus, "affected");
    assert.equal(st2.evidence?.cpuSharePermille, 173);
    assert.deepEqual(
      st2.transitions?.map((t) => [t.from, t.to, t.reason]),
      [
        [undefined, "under_investigation", "AwaitingEvidence"],
        ["under_investigation", "affected", "SymbolObserved"],
      ],
    );
    const ev = s.events.events[1]!;
    assert.equal(ev.reason, "SymbolObserved");
    assert.equal(ev.type, "Warning");
    assert.equal(
      ev.note,
      "CVE-2024-1234 observed in stella_hot (BuildID 03d4…), 17.3% of CPU in shop/apigw-0 between 13:02 and 14:02 UTC; VEX → affected",
    );
    assert.deepEqual(await transitions(s.registry), { under_investigation: 1, affected: 1 });

    const cm2 = s.configMaps.get("shop/vex-cve-2024-1234")!;
    assert.equal(cm2.metadata?.annotations?.["evidence.stella-ops.org/openvex-version"], "2");
    const env = parseEnvelope(cm2.data?.["openvex.dsse.json"] ?? "", "cm");
    const verified = verifyEnvelope(env, [loadPublicKey(s.pair.publicPem, "pub")]);
    const stmt = parseStatement(verified.payload, "cm");
    assert.deepEqual(validateOpenVex(stmt.predicate), []);
    const doc = stmt.predicate as { version: number; "@id": string; statements: { status: string }[] };
    assert.equal(doc.version, 2);
    assert.equal(doc["@id"], `urn:uuid:${STATEMENT.metadata.uid ?? ""}`);
    assert.equal(doc.statements[0]?.status, "affected");
  });

  test("without a signing key: decided, Signed=False, no envelope, no digest", async () => {
    const s = setup(false);
    await s.controller.reconcile("shop/cve-2024-1234");
    const st = s.current().status!;
    assert.equal(st.vexStatus, "under_investigation");
    assert.equal(st.documentDigest, undefined);
    const signed = st.conditions?.find((c) => c.type === "Signed");
    assert.equal(signed?.status, "False");
    assert.equal(signed?.reason, "SigningKeyMissing");
    const cm = s.configMaps.get("shop/vex-cve-2024-1234")!;
    assert.equal(cm.data?.["openvex.dsse.json"], undefined);
    assert.deepEqual(validateOpenVex(JSON.parse(cm.data?.["openvex.json"] ?? "{}")), []);
  });
});

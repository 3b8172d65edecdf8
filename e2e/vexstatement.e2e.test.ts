// The VexStatement controller against a real API server: its status writes pass the CRD's schema and
// CEL rules, the ConfigMap `vex-<name>` is owned by the statement, and `stella vex export` fetches an
// envelope that `stella attest verify` accepts. The controller runs in-process on a fixed index.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { CustomObjectsApi } from "@kubernetes/client-node";
import { stringify } from "yaml";

import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { installCrds, kubectlOk } from "./helpers/kubectl.ts";
import type { VexStatement } from "../operator/api/generated/index.ts";
import type { HotSymbolIndex, SymbolObservation } from "../operator/index/types.ts";
import { FakeEventRecorder } from "../operator/runtime/events.ts";
import type { ResourceInformer } from "../operator/runtime/informer.ts";
import { VexStatementController } from "../operator/controllers/vexstatement.ts";
import { InMemoryFunctionPresence } from "../operator/controllers/vexstatement-presence.ts";
import { createRegistry } from "../core/service/metrics.ts";
import { silentLogger } from "../core/service/log.ts";
import { generateKeyPair, loadPrivateKey } from "../core/dsse/keys.ts";
import { keySigner } from "../core/dsse/sign.ts";

const NS = "shop";
const NAME = "cve-2024-1234";
const BUILD_ID = "03d4a1b2c3d4e5f60718293a4b5c6d7e8f901234";
const CLI = new URL("../cli/stella.ts", import.meta.url).pathname;

let cp: ControlPlane;
let work: string;

class FixedIndex implements HotSymbolIndex {
  hot = 0;
  fold(): void {}
  query(q: { name: string }): SymbolObservation {
    const n = q.name === "stella_hot" ? this.hot : 0;
    return {
      samples: n,
      productSamples: 1000,
      buildIds: n > 0 ? [BUILD_ID] : [],
      pods: n > 0 ? [`${NS}/apigw-0`] : [],
      nodes: n > 0 ? ["node-a"] : [],
      topStacks: n > 0 ? [{ stack: "stella_hot;handle;main", count: n }] : [],
    };
  }
  productSamples(): { samples: number } {
    return { samples: 1000 };
  }
  buildId(): undefined {
    return undefined;
  }
  prune(): void {}
  clear(): void {}
  readonly stats = { symbols: 0, buckets: 0, approxBytes: 0, foldedBatches: 0, foldedSamples: 0 };
}

function stella(env: Record<string, string>, ...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stella-vex-e2e-"));
  cp = await startControlPlane();
  installCrds(cp);
  kubectlOk(cp, ["create", "namespace", NS]);
});

after(async () => {
  await cp?.stop();
});

describe("VexStatement controller on a real API server", () => {
  it("decides, writes a schema-valid status, stores a signed document that export and verify accept", async () => {
    const statement = {
      apiVersion: "evidence.stella-ops.org/v1alpha1",
      kind: "VexStatement",
      metadata: { name: NAME, namespace: NS },
      spec: {
        vulnerability: { id: "CVE-2024-1234" },
        product: { imageDigest: `sha256:${"ab".repeat(32)}` },
        symbols: [{ name: "stella_hot" }],
        policy: { windowSeconds: 3600, minSamples: 5, notAffectedAfterSeconds: 3600, revisitSeconds: 600 },
      },
    };
    kubectlOk(cp, ["apply", "--server-side", "-f", "-"], stringify(statement));
    const kc = cp.kubeConfig();
    const custom = kc.makeApiClient(CustomObjectsApi);
    const read = async (): Promise<VexStatement> =>
      (await custom.getNamespacedCustomObject({
        group: "evidence.stella-ops.org",
        version: "v1alpha1",
        plural: "vexstatements",
        namespace: NS,
        name: NAME,
      })) as VexStatement;
    let cached = await read();
    const informer = {
      get: () => cached,
      keys: () => [`${NS}/${NAME}`],
      onChange: () => undefined,
    } as unknown as ResourceInformer<VexStatement>;
    const index = new FixedIndex();
    const presence = new InMemoryFunctionPresence();
    presence.add(BUILD_ID, ["main", "stella_hot"]);
    const pair = generateKeyPair("ecdsa-p256");
    const events = new FakeEventRecorder();
    let now = Date.now();
    const controller = new VexStatementController({
      kubeConfig: kc,
      index,
      presence,
      signer: keySigner(loadPrivateKey(pair.privatePem, "key")),
      events,
      registry: createRegistry(),
      logger: silentLogger(),
      workers: 1,
      informer,
      clock: { now: () => now, setTimeout: () => () => undefined },
    });

    // 1: no samples → under_investigation.
    await controller.reconcile(`${NS}/${NAME}`);
    cached = await read();
    assert.equal(cached.status?.vexStatus, "under_investigation");
    // 2: an hour of quiet while the product runs → not_affected / not in execute path.
    now += 3600_000;
    await controller.reconcile(`${NS}/${NAME}`);
    cached = await read();
    assert.equal(cached.status?.vexStatus, "not_affected");
    assert.equal(cached.status?.justification, "vulnerable_code_not_in_execute_path");
    // 3: the symbol runs → affected; the justification must be gone (CEL: only with not_affected).
    index.hot = 173;
    now += 60_000;
    await controller.reconcile(`${NS}/${NAME}`);
    cached = await read();
    assert.equal(cached.status?.vexStatus, "affected");
    assert.equal(cached.status?.justification, undefined);
    assert.equal(cached.status?.evidence?.cpuSharePermille, 173);
    assert.deepEqual(
      cached.status?.transitions?.map((t) => t.to),
      ["under_investigation", "not_affected", "affected"],
    );
    assert.deepEqual(
      events.events.map((e) => e.reason),
      ["AwaitingEvidence", "NotInExecutePath", "SymbolObserved"],
    );

    const cm = JSON.parse(kubectlOk(cp, ["-n", NS, "get", "configmap", `vex-${NAME}`, "-o", "json"])) as {
      metadata: { ownerReferences?: { kind: string; name: string; uid: string }[] };
    };
    assert.equal(cm.metadata.ownerReferences?.[0]?.kind, "VexStatement");
    assert.equal(cm.metadata.ownerReferences?.[0]?.uid, cached.metadata.uid);

    const env = { KUBECONFIG: cp.kubeconfigPath };
    const exported = stella(env, "vex", "export", NAME, "-n", NS, "--out", join(work, "vex.dsse.json"));
    assert.equal(exported.code, 0, exported.err);
    assert.equal(exported.err, "");
    writeFileSync(join(work, "key.pub"), pair.publicPem);
    const verified = stella(
      {},
      "attest",
      "verify",
      "--key",
      join(work, "key.pub"),
      join(work, "vex.dsse.json"),
    );
    assert.equal(verified.code, 0, verified.err + verified.out);
    const evidence = stella(env, "vex", "export", NAME, "-n", NS, "--evidence");
    assert.equal(evidence.code, 0, evidence.err);
    assert.match(
      evidence.out,
      /^# CVE-2024-1234: affected\n\nCVE-2024-1234 observed in stella_hot \(BuildID 03d4…\), 17\.3% of CPU in shop\/apigw-0/,
    );
    assert.equal(stella(env, "vex", "export", "nope", "-n", NS).code, 3);
  });
});

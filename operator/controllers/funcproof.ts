import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";

import { API_VERSION, FUNC_PROOF_PLURAL, GROUP, VERSION, type FuncProof } from "../api/generated/index.ts";
import { Controller, type ReconcileResult } from "../runtime/controller.ts";
import { type EventRecorder, objectRef } from "../runtime/events.ts";
import { customResourceInformer, type ResourceInformer } from "../runtime/informer.ts";
import { counter } from "../../core/service/metrics.ts";
import { type Condition, patchStatus, setCondition, type StatusObject } from "../runtime/status.ts";
import { verifyFuncProofResource, type FuncProofSpecView, type VerifyDecision } from "./funcproof-verify.ts";
import type { TrustedKeys } from "./trusted-keys.ts";
import type { FuncProof as CoreFuncProof } from "../../core/funcproof/funcproof.ts";
import type { BuildIdObservation } from "../index/types.ts";

export interface FuncProofControllerOptions {
  kubeConfig: KubeConfig;
  trustedKeys: TrustedKeys;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  workers: number;
  /**
   * Told, on every reconcile, the signed body of a Verified FuncProof (its function table names stripped
   * frames and answers "is this symbol in the product?"), or undefined when it is not (or no longer) verified.
   */
  onVerified?: (buildId: string, proof: CoreFuncProof | undefined) => void;
  /** Where agents saw the BuildID run: written to status.observed with the Observed condition. */
  observations?: { buildId(buildId: string): BuildIdObservation | undefined };
  /** How often status.observed is refreshed (default 30 s). */
  observedResyncMs?: number;
}

const MAX_OBSERVED_NODES = 256;

/**
 * Verifies FuncProof resources: level-based, so every reconcile recomputes `Verified` from the
 * object as it is now and the trusted keys as they are now, and writes status only on change.
 */
export class FuncProofController {
  readonly informer: ResourceInformer<FuncProof>;
  readonly controller: Controller;
  readonly #api: CustomObjectsApi;
  readonly #keys: TrustedKeys;
  readonly #events: EventRecorder;
  readonly #verifications: Counter<"result">;
  readonly #opts: FuncProofControllerOptions;

  constructor(opts: FuncProofControllerOptions) {
    this.#opts = opts;
    this.#api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#keys = opts.trustedKeys;
    this.#events = opts.events;
    this.#verifications = counter(opts.registry, {
      name: "stella_funcproof_verifications_total",
      help: "FuncProof verification outcomes written to status, by result (the Verified reason).",
      labelNames: ["result"],
    });
    this.informer = customResourceInformer<FuncProof>(
      opts.kubeConfig,
      { group: GROUP, version: VERSION, plural: FUNC_PROOF_PLURAL },
      { logger: opts.logger },
    );
    this.controller = new Controller({
      name: "funcproof",
      reconcile: (key) => this.reconcile(key),
      workers: opts.workers,
      registry: opts.registry,
      logger: opts.logger,
    });
    this.informer.onChange((_type, key) => {
      this.controller.enqueue(key);
    });
    // New or rotated keys change every verdict: revisit all.
    this.#keys.onChange(() => {
      for (const key of this.informer.keys()) this.controller.enqueue(key);
    });
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const cached = this.informer.get(key);
    if (cached === undefined) {
      this.#opts.onVerified?.(key, undefined); // deleted
      return undefined;
    }
    const observations = this.#opts.observations;
    let decided: VerifyDecision | undefined;
    let transitioned = false;
    await patchStatus(
      this.#api,
      { group: GROUP, version: VERSION, plural: FUNC_PROOF_PLURAL, name: key },
      (current: StatusObject) => {
        const fp = current as unknown as FuncProof;
        const decision = verifyFuncProofResource(
          fp.metadata?.name ?? key,
          fp.spec as unknown as FuncProofSpecView,
          this.#keys.keys(),
        );
        decided = decision;
        const old = (fp.status?.conditions ?? []) as Condition[];
        const before = old.find((c) => c.type === "Verified");
        const generation = fp.metadata?.generation;
        const next = setCondition(old, {
          type: "Verified",
          status: decision.status,
          reason: decision.reason,
          message: decision.message,
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
        });
        const ids = [...decision.verifiedKeyIds].sort();
        const sameIds = JSON.stringify(fp.status?.verifiedKeyIds ?? []) === JSON.stringify(ids);
        const sameGen = fp.status?.observedGeneration === generation;
        // Observed: where and when agents last saw this BuildID execute (from the hot-symbol index).
        const seen = observations?.buildId(fp.spec.buildId);
        let conditions = next.conditions;
        let observed = fp.status?.observed;
        let observedChanged = false;
        if (seen) {
          observed = {
            lastSeen: new Date(seen.lastSeenMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
            nodes: seen.nodes.slice(0, MAX_OBSERVED_NODES),
            pods: seen.pods.length,
          };
          observedChanged = JSON.stringify(observed) !== JSON.stringify(fp.status?.observed);
          const o = setCondition(conditions, {
            type: "Observed",
            status: "True",
            reason: "Executed",
            message: `${seen.samples} samples on ${seen.nodes.length} node(s), ${seen.pods.length} pod(s); last ${observed.lastSeen}`,
            ...(generation !== undefined ? { observedGeneration: generation } : {}),
          });
          conditions = o.conditions;
          observedChanged ||= o.changed;
        }
        if (!next.changed && sameIds && sameGen && !observedChanged) return undefined;
        transitioned = before?.status !== decision.status || before.reason !== decision.reason;
        return {
          ...(fp.status ?? {}),
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
          conditions,
          verifiedKeyIds: ids,
          ...(observed ? { observed } : {}),
        };
      },
      { resourceVersion: cached.metadata?.resourceVersion },
    );
    this.#opts.onVerified?.(key, decided?.status === "True" ? decided.proof : undefined);
    if (decided && transitioned) {
      this.#verifications.inc({ result: decided.reason });
      this.#events.event(
        { ...objectRef(cached), apiVersion: API_VERSION, kind: "FuncProof" },
        {
          type: decided.status === "True" ? "Normal" : "Warning",
          reason: decided.reason,
          action: "Verify",
          note: decided.message,
        },
      );
    }
    return observations ? { requeueAfterMs: this.#opts.observedResyncMs ?? 30_000 } : undefined;
  }
}

import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";

import { API_VERSION, FUNC_PROOF_PLURAL, GROUP, VERSION, type FuncProof } from "../api/generated/index.ts";
import { Controller } from "../runtime/controller.ts";
import { type EventRecorder, objectRef } from "../runtime/events.ts";
import { customResourceInformer, type ResourceInformer } from "../runtime/informer.ts";
import { counter } from "../../core/service/metrics.ts";
import { type Condition, patchStatus, setCondition, type StatusObject } from "../runtime/status.ts";
import { verifyFuncProofResource, type FuncProofSpecView, type VerifyDecision } from "./funcproof-verify.ts";
import type { TrustedKeys } from "./trusted-keys.ts";

export interface FuncProofControllerOptions {
  kubeConfig: KubeConfig;
  trustedKeys: TrustedKeys;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  workers: number;
}

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

  constructor(opts: FuncProofControllerOptions) {
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

  async reconcile(key: string): Promise<void> {
    const cached = this.informer.get(key);
    if (cached === undefined) return; // deleted: nothing to do
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
        if (!next.changed && sameIds && sameGen) return undefined;
        transitioned = before?.status !== decision.status || before.reason !== decision.reason;
        return {
          ...(fp.status ?? {}),
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
          conditions: next.conditions,
          verifiedKeyIds: ids,
        };
      },
      { resourceVersion: cached.metadata?.resourceVersion },
    );
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
  }
}

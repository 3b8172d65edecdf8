// DeltaAttestations (issue 7): every replica checks each one as its informer delivers it and keeps the result in
// the webhook's DeltaStore (so any ready replica decides the same); the leader writes status — Verified, the
// verifying keys, delta_risk in permille with its breakdown (runtime hotness included) — and an Event when the
// verdict changes.
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";

import type { PublicKey } from "../../core/dsse/keys.ts";
import { counter } from "../../core/service/metrics.ts";
import type { DeltaAttestation } from "../api/generated/deltaattestation.ts";
import { API_VERSION, DELTA_ATTESTATION_PLURAL, GROUP, VERSION } from "../api/generated/index.ts";
import { Controller, type ReconcileResult } from "../runtime/controller.ts";
import { type EventRecorder, objectRef } from "../runtime/events.ts";
import { customResourceInformer, type ResourceInformer } from "../runtime/informer.ts";
import { type Condition, patchStatus, setCondition, type StatusObject } from "../runtime/status.ts";
import type { DeltaStore } from "../webhook/store.ts";
import { checkDeltaAttestation, type DeltaCheck, type ForwardView } from "./deltaattestation-verify.ts";

export interface DeltaAttestationControllerOptions {
  kubeConfig: KubeConfig;
  /** Every key the operator knows: its trusted-keys Secret and the RolloutGates' keys. */
  keys: () => readonly PublicKey[];
  store: DeltaStore;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  workers: number;
}

export class DeltaAttestationController {
  readonly informer: ResourceInformer<DeltaAttestation>;
  readonly controller: Controller;
  readonly #api: CustomObjectsApi;
  readonly #opts: DeltaAttestationControllerOptions;
  readonly #checks = new Map<string, DeltaCheck>();
  readonly #checkedGeneration = new Map<string, number>();
  readonly #verifications: Counter<"result">;
  readonly #log: Logger;

  constructor(opts: DeltaAttestationControllerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ controller: "deltaattestation" });
    this.#api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#verifications = counter(opts.registry, {
      name: "stella_deltaattestation_verifications_total",
      help: "DeltaAttestation verdicts written to status, by result (the Verified reason).",
      labelNames: ["result"],
    });
    this.informer = customResourceInformer<DeltaAttestation>(
      opts.kubeConfig,
      { group: GROUP, version: VERSION, plural: DELTA_ATTESTATION_PLURAL },
      { logger: opts.logger },
    );
    this.controller = new Controller({
      name: "deltaattestation",
      reconcile: (key) => this.reconcile(key),
      workers: opts.workers,
      registry: opts.registry,
      logger: opts.logger,
    });
    this.informer.onChange((_type, key) => {
      // Our own status writes come back as updates: the spec (generation) is what a check depends on.
      const generation = this.informer.get(key)?.metadata.generation;
      if (generation !== undefined && this.#checkedGeneration.get(key) === generation) return;
      this.#check(key);
      this.controller.enqueue(key);
      // Rollbacks of this one are checked against it.
      for (const other of this.informer.keys()) {
        if (this.informer.get(other)?.spec.rollbackOf?.name === key) {
          this.#check(other);
          this.controller.enqueue(other);
        }
      }
    });
  }

  /** Re-checks everything (the set of known keys changed). */
  recheckAll(): void {
    const keys = this.informer.keys().sort((a, b) => this.#order(a) - this.#order(b));
    for (const key of keys) {
      this.#check(key);
      this.controller.enqueue(key);
    }
  }

  /** Forward deltas first, so their rollbacks are checked against fresh results. */
  #order(key: string): number {
    return this.informer.get(key)?.spec.rollbackOf === undefined ? 0 : 1;
  }

  #forwardOf = (name: string): ForwardView | undefined => {
    const obj = this.informer.get(name);
    const check = this.#checks.get(name);
    return obj && check ? { check, spec: obj.spec } : undefined;
  };

  #check(key: string): DeltaCheck | undefined {
    const obj = this.informer.get(key);
    if (obj === undefined) {
      this.#checks.delete(key);
      this.#checkedGeneration.delete(key);
      this.#opts.store.delete(key);
      return undefined;
    }
    if (obj.metadata.generation !== undefined) this.#checkedGeneration.set(key, obj.metadata.generation);
    let check: DeltaCheck;
    try {
      check = checkDeltaAttestation(key, obj.spec, this.#opts.keys(), this.#forwardOf);
    } catch (err: unknown) {
      // Not a verdict about the resource (a bug or an unexpected shape): keep it out of the store.
      this.#log.error({ err, name: key }, "DeltaAttestation check failed");
      this.#checks.delete(key);
      this.#opts.store.delete(key);
      return undefined;
    }
    this.#checks.set(key, check);
    this.#opts.store.set(check.known, obj.spec.rollbackOf !== undefined);
    return check;
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const cached = this.informer.get(key);
    if (cached === undefined) return undefined;
    const check = this.#checks.get(key) ?? this.#check(key);
    if (check === undefined) return undefined;
    const risk = check.known.invalid === undefined ? this.#opts.store.risk(check.known) : undefined;
    let transitioned = false;
    await patchStatus(
      this.#api,
      { group: GROUP, version: VERSION, plural: DELTA_ATTESTATION_PLURAL, name: key },
      (current: StatusObject) => {
        const da = current as unknown as DeltaAttestation;
        const old = (da.status?.conditions ?? []) as Condition[];
        const before = old.find((c) => c.type === "Verified");
        const generation = da.metadata.generation;
        const next = setCondition(old, {
          type: "Verified",
          status: check.status,
          reason: check.reason,
          message: check.message,
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
        });
        const status: NonNullable<DeltaAttestation["status"]> = {
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
          conditions: next.conditions,
          signatureVerified: check.status === "True",
          ...(risk
            ? {
                deltaRisk: Math.round(risk.score * 1000),
                breakdown: risk.breakdown.map((b) => ({
                  factor: b.factor,
                  contribution: Math.round(b.contribution * 1000),
                })),
              }
            : {}),
        };
        const same = (a: object, b: object): boolean =>
          JSON.stringify({ ...a, conditions: undefined }) === JSON.stringify({ ...b, conditions: undefined });
        if (!next.changed && same(status, da.status ?? {})) return undefined;
        transitioned = before?.status !== check.status || before.reason !== check.reason;
        return status;
      },
      { resourceVersion: cached.metadata.resourceVersion },
    );
    if (transitioned) {
      this.#verifications.inc({ result: check.reason });
      this.#opts.events.event(
        { ...objectRef(cached), apiVersion: API_VERSION, kind: "DeltaAttestation" },
        {
          type: check.status === "True" ? "Normal" : "Warning",
          reason: check.reason,
          action: "Verify",
          note: risk ? `${check.message}; delta_risk ${Math.round(risk.score * 1000)}‰` : check.message,
        },
      );
    }
    return undefined;
  }
}

// RolloutGates (issue 7): every replica keeps the gates, with the ids of the keys their Secrets hold, for its
// webhook (informer-driven, so a non-leader serves the same decisions); the leader writes each gate's Ready
// condition and the decision counters the webhook accumulated.
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";

import type { PublicKey } from "../../core/dsse/keys.ts";
import { API_VERSION, GROUP, ROLLOUT_GATE_PLURAL, VERSION } from "../api/generated/index.ts";
import type { RolloutGate, RolloutGateDecisions } from "../api/generated/rolloutgate.ts";
import { Controller, type ReconcileResult } from "../runtime/controller.ts";
import { type EventRecorder, objectRef } from "../runtime/events.ts";
import { customResourceInformer, type ResourceInformer } from "../runtime/informer.ts";
import { type Condition, patchStatus, setCondition, type StatusObject } from "../runtime/status.ts";
import type { GateEntry } from "../webhook/decide.ts";
import type { GateKeys } from "./gate-keys.ts";

export type DecisionOutcome = "allowed" | "denied" | "audited";

export interface RolloutGateControllerOptions {
  kubeConfig: KubeConfig;
  keys: GateKeys;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  workers: number;
  /** How often accumulated decision counts are written to status (default 10 s). */
  flushMs?: number;
}

interface Gate {
  entry: GateEntry;
  keys: PublicKey[];
  problems: string[];
}

export class RolloutGateController {
  readonly informer: ResourceInformer<RolloutGate>;
  readonly controller: Controller;
  readonly #api: CustomObjectsApi;
  readonly #opts: RolloutGateControllerOptions;
  readonly #gates = new Map<string, Gate>();
  #sorted: GateEntry[] = [];
  /** Decisions not yet written to status, per gate. */
  readonly #pending = new Map<string, Required<RolloutGateDecisions>>();
  readonly #listeners: (() => void)[] = [];

  constructor(opts: RolloutGateControllerOptions) {
    this.#opts = opts;
    this.#api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.informer = customResourceInformer<RolloutGate>(
      opts.kubeConfig,
      { group: GROUP, version: VERSION, plural: ROLLOUT_GATE_PLURAL },
      { logger: opts.logger },
    );
    this.controller = new Controller({
      name: "rolloutgate",
      reconcile: (key) => this.reconcile(key),
      workers: opts.workers,
      registry: opts.registry,
      logger: opts.logger,
    });
    this.informer.onChange((_type, key) => {
      this.#refresh(key);
      this.controller.enqueue(key);
    });
    // A Secret appearing, rotating or disappearing can change any gate's keys.
    opts.keys.informer.onChange(() => {
      for (const key of this.informer.keys()) {
        this.#refresh(key);
        this.controller.enqueue(key);
      }
    });
  }

  /** The gates now, sorted by name (the webhook's view). */
  gates(): readonly GateEntry[] {
    return this.#sorted;
  }

  /** Every key some gate trusts (DeltaAttestations are checked against these and the operator's own). */
  keys(): PublicKey[] {
    const all = new Map<string, PublicKey>();
    for (const g of this.#gates.values()) for (const k of g.keys) all.set(k.keyid, k);
    return [...all.values()];
  }

  /** Called when the set of gates or their keys changes. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** Counts one webhook decision for the gate's status.decisions (written by the leader's next reconcile). */
  record(gate: string, outcome: DecisionOutcome): void {
    const p = this.#pending.get(gate) ?? { allowed: 0, denied: 0, audited: 0 };
    p[outcome]++;
    this.#pending.set(gate, p);
    // Batched: at hundreds of admissions per second, one status write per gate per flush interval.
    this.controller.enqueueAfter(gate, this.#opts.flushMs ?? 10_000);
  }

  #refresh(key: string): void {
    const obj = this.informer.get(key);
    if (obj === undefined) this.#gates.delete(key);
    else {
      const { keys, problems } = this.#opts.keys.resolve(obj.spec.trustedKeys);
      this.#gates.set(key, {
        entry: { name: key, spec: obj.spec, keyids: new Set(keys.map((k) => k.keyid)) },
        keys,
        problems,
      });
    }
    this.#sorted = [...this.#gates.values()]
      .map((g) => g.entry)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const l of this.#listeners) l();
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const cached = this.informer.get(key);
    const gate = this.#gates.get(key);
    if (cached === undefined || gate === undefined) {
      this.#pending.delete(key);
      return undefined;
    }
    const pending = this.#pending.get(key);
    this.#pending.delete(key);
    const ids = [...gate.entry.keyids].sort();
    const ready = ids.length > 0;
    const spec = gate.entry.spec;
    const message = ready
      ? `${spec.mode ?? "enforce"} mode, maxDeltaRisk ${spec.maxDeltaRisk}‰, minProvenance ${spec.minProvenance ?? "verified"}; trusts ${ids.join(", ")}` +
        (gate.problems.length > 0 ? `; ignored: ${gate.problems.join("; ")}` : "")
      : `no usable trusted key: ${gate.problems.join("; ") || "spec.trustedKeys is empty"}`;
    let transitioned = false;
    try {
      await patchStatus(
        this.#api,
        { group: GROUP, version: VERSION, plural: ROLLOUT_GATE_PLURAL, name: key },
        (current: StatusObject) => {
          const g = current as unknown as RolloutGate;
          const old = (g.status?.conditions ?? []) as Condition[];
          const before = old.find((c) => c.type === "Ready");
          const generation = g.metadata.generation;
          const next = setCondition(old, {
            type: "Ready",
            status: ready ? "True" : "False",
            reason: ready ? "Ready" : "NoTrustedKeys",
            message,
            ...(generation !== undefined ? { observedGeneration: generation } : {}),
          });
          const d = g.status?.decisions ?? {};
          const decisions = {
            allowed: (d.allowed ?? 0) + (pending?.allowed ?? 0),
            denied: (d.denied ?? 0) + (pending?.denied ?? 0),
            audited: (d.audited ?? 0) + (pending?.audited ?? 0),
          };
          const counted = pending !== undefined && pending.allowed + pending.denied + pending.audited > 0;
          if (!next.changed && !counted && g.status?.observedGeneration === generation) return undefined;
          transitioned = before?.status !== (ready ? "True" : "False");
          return {
            ...(g.status ?? {}),
            ...(generation !== undefined ? { observedGeneration: generation } : {}),
            conditions: next.conditions,
            decisions,
          };
        },
        { resourceVersion: cached.metadata.resourceVersion },
      );
    } catch (err: unknown) {
      // Put the counts back: they are written with the next attempt.
      if (pending) {
        const p = this.#pending.get(key) ?? { allowed: 0, denied: 0, audited: 0 };
        this.#pending.set(key, {
          allowed: p.allowed + pending.allowed,
          denied: p.denied + pending.denied,
          audited: p.audited + pending.audited,
        });
      }
      throw err;
    }
    if (transitioned) {
      this.#opts.events.event(
        { ...objectRef(cached), apiVersion: API_VERSION, kind: "RolloutGate" },
        {
          type: ready ? "Normal" : "Warning",
          reason: ready ? "Ready" : "NoTrustedKeys",
          action: "Resolve",
          note: message,
        },
      );
    }
    return undefined;
  }
}

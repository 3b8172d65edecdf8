// The rollout-gating webhook as the operator runs it (issue 7): the handler over in-memory state (RolloutGates,
// checked DeltaAttestations with cached scores, namespace labels from an informer), and for every decision that
// covered an image change, a Kubernetes Event on the workload, a metric and a count on the gate's status. No
// network call happens on the request path: events are queued by the recorder, status is written later.
import { CoreV1Api, type KubeConfig, type V1Namespace, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Counter, Histogram, Registry } from "prom-client";

import { counter, histogram } from "../../core/service/metrics.ts";
import type { EventRecorder } from "../runtime/events.ts";
import { ResourceInformer } from "../runtime/informer.ts";
import { API_VERSION } from "../api/generated/index.ts";
import type { DecisionOutcome } from "../controllers/rolloutgate.ts";
import type { DeltaLookup, GateEntry } from "./decide.ts";
import { handleReview, type HandledReview } from "./handler.ts";
import type { ReviewDecision, ReviewRequest } from "./review.ts";

export interface RolloutWebhookOptions {
  kubeConfig: KubeConfig;
  gates: () => readonly GateEntry[];
  deltas: DeltaLookup;
  /** Counts a decision on the gate's status. */
  record: (gate: string, outcome: DecisionOutcome) => void;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  /** Never gated: the operator's own namespace and kube-system. */
  excludedNamespaces: readonly string[];
}

const GROUP_OF: Record<string, string> = {
  Deployment: "apps/v1",
  StatefulSet: "apps/v1",
  DaemonSet: "apps/v1",
  Job: "batch/v1",
  CronJob: "batch/v1",
};

export class RolloutWebhook {
  readonly namespaces: ResourceInformer<V1Namespace>;
  readonly #o: RolloutWebhookOptions;
  readonly #excluded: ReadonlySet<string>;
  readonly #decisions: Counter<"gate" | "decision">;
  readonly #duration: Histogram<"decision">;

  constructor(opts: RolloutWebhookOptions) {
    this.#o = opts;
    this.#excluded = new Set(opts.excludedNamespaces);
    const api = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.namespaces = new ResourceInformer<V1Namespace>({
      name: "namespaces",
      path: "/api/v1/namespaces",
      list: () => api.listNamespace(),
      watch: new Watch(opts.kubeConfig),
      logger: opts.logger,
    });
    this.#decisions = counter(opts.registry, {
      name: "stella_webhook_decisions_total",
      help: "Rollout admission decisions per RolloutGate: allowed, denied, or audited (audit mode, would deny).",
      labelNames: ["gate", "decision"],
    });
    this.#duration = histogram(opts.registry, {
      name: "stella_webhook_decision_duration_seconds",
      help: "Time to decide one AdmissionReview (parsing excluded), by response.",
      labelNames: ["decision"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    });
  }

  /** The WebhookServer's handler. */
  handle = (review: ReviewRequest): ReviewDecision => {
    const t0 = process.hrtime.bigint();
    const handled = handleReview(review, {
      gates: this.#o.gates,
      namespaceLabels: (ns) => this.namespaces.get(ns)?.metadata?.labels,
      deltas: this.#o.deltas,
      excludedNamespaces: this.#excluded,
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    this.#duration.observe({ decision: handled.response.allowed ? "allowed" : "denied" }, seconds);
    this.#report(review, handled);
    return handled.response;
  };

  #report(review: ReviewRequest, handled: HandledReview): void {
    for (const { name, decision } of handled.gates) {
      if (decision.verdicts.length === 0) continue; // no image changed (a scale, a label edit)
      const outcome: DecisionOutcome = !decision.wouldDeny
        ? "allowed"
        : decision.allowed
          ? "audited"
          : "denied";
      this.#decisions.inc({ gate: name, decision: outcome });
      this.#o.logger.info(
        {
          gate: name,
          decision: outcome,
          workload: `${review.kind.kind} ${review.namespace}/${review.name}`,
          operation: review.operation,
          dryRun: review.dryRun,
          uid: review.uid,
        },
        decision.message,
      );
      // A dry run has no side effects (the configuration says sideEffects: None).
      if (review.dryRun) continue;
      this.#o.record(name, outcome);
      if (review.name === "") continue; // generateName: nothing to point the Event at yet
      this.#o.events.event(
        {
          apiVersion: GROUP_OF[review.kind.kind] ?? `${review.kind.group}/${review.kind.version}`,
          kind: review.kind.kind,
          namespace: review.namespace,
          name: review.name,
        },
        {
          type: outcome === "allowed" ? "Normal" : "Warning",
          reason:
            outcome === "allowed"
              ? "RolloutAllowed"
              : outcome === "denied"
                ? "RolloutDenied"
                : "RolloutAudited",
          action: "Admit",
          note: outcome === "audited" ? `audit (would deny): ${decision.message}` : decision.message,
          related: { apiVersion: API_VERSION, kind: "RolloutGate", name },
        },
      );
    }
  }
}

/**
 * The VexStatement controller: gathers runtime evidence (the hot-symbol index) and static evidence
 * (FunctionPresence, from verified FuncProofs), decides with the pure `decideVexStatement`, and on a
 * change signs the OpenVEX document (DSSE, in-toto Statement with predicateType the OpenVEX context),
 * stores it with its evidence pack in the ConfigMap `vex-<name>` (owned by the statement), writes status
 * (vexStatus, justification, evidence, Decided/Signed conditions, transitions, documentDigest), records an
 * Event and counts the transition. Level-based: undecided and time-boxed decisions are re-decided by
 * requeueing, since the index has no change notifications.
 */
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-misused-spread --
   client-node's model classes are plain data: its ObjectSerializer reads their fields and never their
   prototype, and its own examples pass object literals (as in runtime/lease-client.ts). */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";

import {
  API_VERSION,
  GROUP,
  VERSION,
  VEX_STATEMENT_PLURAL,
  type VexStatement,
  type VexStatementStatus,
} from "../api/generated/index.ts";
import type { HotSymbolIndex, SymbolObservation } from "../index/types.ts";
import { Controller, type ReconcileResult } from "../runtime/controller.ts";
import { systemClock, type Clock } from "../runtime/clock.ts";
import { isNotFound } from "../runtime/errors.ts";
import { type EventRecorder, objectRef } from "../runtime/events.ts";
import { customResourceInformer, type ResourceInformer } from "../runtime/informer.ts";
import { requestOptions } from "../runtime/request-options.ts";
import {
  type Condition,
  patchStatus,
  setCondition,
  type StatusApi,
  type StatusObject,
} from "../runtime/status.ts";
import { counter } from "../../core/service/metrics.ts";
import { StellaError } from "../../core/errors.ts";
import { keySigner, type Signer } from "../../core/dsse/sign.ts";
import { loadPrivateKeyFile } from "../../core/dsse/keys.ts";
import { canonicalJson } from "../../core/canonical-json.ts";
import { signOpenVex, type SignedOpenVex } from "../../core/vex/attest.ts";
import {
  VEX_DIGEST_ANNOTATION,
  VEX_DOCUMENT_KEY,
  VEX_ENVELOPE_KEY,
  VEX_EVIDENCE_KEY,
  VEX_VERSION_ANNOTATION,
  vexBundleName,
} from "../../core/vex/bundle-names.ts";
import { evidenceMarkdown, evidenceSentence } from "../../core/vex/evidence-pack.ts";
import { buildOpenVexDocument } from "../../core/vex/openvex.ts";
import type { VexDecision } from "../../core/vex/decision.ts";
import {
  decideVexStatement,
  resolvePolicy,
  rfc3339,
  type DecideInput,
  type DecideResult,
  type RangeObservations,
} from "./vexstatement-decide.ts";
import type { FunctionPresence } from "./vexstatement-presence.ts";

export type ConfigMapApi = Pick<
  CoreV1Api,
  "readNamespacedConfigMap" | "createNamespacedConfigMap" | "replaceNamespacedConfigMap"
>;

export interface VexStatementControllerOptions {
  kubeConfig: KubeConfig;
  /** The hot-symbol index (runtime evidence). */
  index: HotSymbolIndex;
  /** Which verified FuncProofs contain which symbols (static evidence). */
  presence: FunctionPresence;
  /**
   * Signs the OpenVEX documents (see `loadVexSigner`); absent = decisions are stored unsigned and the
   * Signed condition is False/SigningKeyMissing.
   */
  signer?: Signer | undefined;
  events: EventRecorder;
  registry: Registry;
  logger: Logger;
  workers: number;
  /** OpenVEX `author` when the statement sets none. Default "stella-operator". */
  author?: string;
  /** Watch only this namespace; default all namespaces. */
  namespace?: string;
  clock?: Clock;
  /** Test seams; default clients from kubeConfig. */
  customObjectsApi?: StatusApi;
  configMapApi?: ConfigMapApi;
  informer?: ResourceInformer<VexStatement>;
}

export const DEFAULT_VEX_AUTHOR = "stella-operator";
const FIELD_MANAGER = "stella-operator";

export class VexDecisionRaceError extends StellaError<"VEX_DECISION_RACE"> {}

/** The operator's signer from a PEM private key file (as `stella keygen` writes it). */
export function loadVexSigner(signingKeyFile: string): Signer | undefined {
  if (signingKeyFile === "") return undefined;
  return keySigner(loadPrivateKeyFile(signingKeyFile));
}

export class VexStatementController {
  readonly informer: ResourceInformer<VexStatement>;
  readonly controller: Controller;
  readonly #api: StatusApi;
  readonly #configMaps: ConfigMapApi;
  readonly #index: HotSymbolIndex;
  readonly #presence: FunctionPresence;
  readonly #signer: Signer | undefined;
  readonly #events: EventRecorder;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #author: string;
  readonly #transitions: Counter<"status">;

  constructor(opts: VexStatementControllerOptions) {
    this.#api = opts.customObjectsApi ?? opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#configMaps = opts.configMapApi ?? opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#index = opts.index;
    this.#presence = opts.presence;
    this.#signer = opts.signer;
    this.#events = opts.events;
    this.#logger = opts.logger.child({ controller: "vexstatement" });
    this.#clock = opts.clock ?? systemClock;
    this.#author = opts.author ?? DEFAULT_VEX_AUTHOR;
    this.#transitions = counter(opts.registry, {
      name: "stella_operator_vex_transitions_total",
      help: "VexStatement status transitions, by the status transitioned to.",
      labelNames: ["status"],
    });
    this.informer =
      opts.informer ??
      customResourceInformer<VexStatement>(
        opts.kubeConfig,
        {
          group: GROUP,
          version: VERSION,
          plural: VEX_STATEMENT_PLURAL,
          ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
        },
        { logger: opts.logger },
      );
    this.controller = new Controller({
      name: "vexstatement",
      reconcile: (key) => this.reconcile(key),
      workers: opts.workers,
      registry: opts.registry,
      logger: opts.logger,
      clock: this.#clock,
    });
    this.informer.onChange((_type, key) => {
      this.controller.enqueue(key);
    });
    // A FuncProof verified or withdrawn can change NotPresent / NotInExecutePath: revisit all.
    opts.presence.onChange?.(() => {
      for (const key of this.informer.keys()) this.controller.enqueue(key);
    });
  }

  /** Gathers the decision's inputs for a statement as it is now. */
  gather(vs: VexStatement, nowMs: number): DecideInput {
    const spec = vs.spec;
    const policy = resolvePolicy(spec.policy);
    const image = spec.product.imageDigest;
    const range = (sinceMs: number): RangeObservations => {
      const symbols: Record<string, SymbolObservation> = {};
      for (const s of spec.symbols) {
        symbols[s.name] = this.#index.query({
          name: s.name,
          ...(s.buildIds !== undefined ? { buildIds: s.buildIds } : {}),
          ...(image !== undefined ? { imageDigest: image } : {}),
          sinceMs,
          untilMs: nowMs,
        });
      }
      const productSamples = this.#index.productSamples(image, sinceMs, nowMs).samples;
      return { sinceMs, untilMs: nowMs, symbols, productSamples };
    };
    const productBuildIds = this.#productBuildIds(vs);
    const presence: Record<string, string[]> = {};
    for (const s of spec.symbols) {
      presence[s.name] = this.#presence.lookup(s.name, s.buildIds ?? productBuildIds);
    }
    return {
      spec,
      status: vs.status,
      window: range(nowMs - policy.windowSeconds * 1000),
      quiet: range(nowMs - policy.notAffectedAfterSeconds * 1000),
      presence,
      productBuildIds,
      nowMs,
    };
  }

  /**
   * The product's BuildIDs with verified FuncProofs, when every binary of it is known: the image's
   * BuildIDs (if FunctionPresence knows them), else the BuildIDs every symbol is restricted to.
   */
  #productBuildIds(vs: VexStatement): string[] | undefined {
    const image = vs.spec.product.imageDigest;
    let ids = image !== undefined ? this.#presence.imageBuildIds?.(image) : undefined;
    if (ids === undefined && vs.spec.symbols.every((s) => (s.buildIds?.length ?? 0) > 0)) {
      ids = [...new Set(vs.spec.symbols.flatMap((s) => s.buildIds ?? []))].sort();
    }
    if (ids === undefined || ids.length === 0) return undefined;
    // Only a product whose every binary has a verified function table can be said not to contain a symbol.
    return this.#presence.verified(ids).length === ids.length ? ids : undefined;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.informer.get(key);
    if (cached === undefined) return {}; // deleted: the ConfigMap goes with it (ownerReference)
    const name = cached.metadata?.name ?? key;
    const namespace = cached.metadata?.namespace ?? "default";
    const nowMs = this.#clock.now();
    const input = this.gather(cached, nowMs);
    const result = decideVexStatement(input);
    if (!needsWrite(cached, result, this.#signer !== undefined)) {
      return { requeueAfterMs: result.requeueAfterMs };
    }

    const sentence = evidenceSentence(result.decision);
    const stored = await this.#store(cached, result.decision, sentence, nowMs);
    const generation = cached.metadata?.generation;
    let wrote = false;
    await patchStatus(
      this.#api,
      { group: GROUP, version: VERSION, plural: VEX_STATEMENT_PLURAL, namespace, name },
      (current: StatusObject) => {
        const fresh = current as unknown as VexStatement;
        // Re-decide on the fresh status (same observations): the cache may have been behind.
        const again = decideVexStatement({ ...input, status: fresh.status });
        if (again.decision.status !== result.decision.status) {
          throw new VexDecisionRaceError(
            "VEX_DECISION_RACE",
            `${key}: status moved while deciding; retrying`,
          );
        }
        if (!needsWrite(fresh, again, this.#signer !== undefined)) return undefined;
        wrote = true;
        // The generation whose spec was decided on; a newer one is enqueued by its own watch event.
        return nextStatus(fresh.status, again, generation, sentence, stored, nowMs);
      },
      { resourceVersion: cached.metadata?.resourceVersion, fieldManager: FIELD_MANAGER },
    );
    if (wrote && result.changed) {
      this.#transitions.inc({ status: result.decision.status });
      this.#events.event(
        { ...objectRef(cached), apiVersion: API_VERSION, kind: "VexStatement" },
        {
          type: result.decision.status === "affected" ? "Warning" : "Normal",
          reason: result.reason,
          action: "Decide",
          note: sentence,
        },
      );
      this.#logger.info(
        { statement: key, status: result.decision.status, reason: result.reason, digest: stored.digest },
        "vex decision",
      );
    }
    return { requeueAfterMs: result.requeueAfterMs };
  }

  /** Builds, signs and stores the document and evidence pack; returns what status should name. */
  async #store(
    vs: VexStatement,
    decision: VexDecision,
    sentence: string,
    nowMs: number,
  ): Promise<{ digest?: string; keyid?: string; configMap: string }> {
    const namespace = vs.metadata?.namespace ?? "default";
    const name = vs.metadata?.name ?? "";
    const cmName = vexBundleName(name);
    let existing: V1ConfigMap | undefined;
    try {
      existing = await this.#configMaps.readNamespacedConfigMap(
        { name: cmName, namespace },
        requestOptions({}),
      );
    } catch (err: unknown) {
      if (!isNotFound(err)) throw err;
    }
    const prevVersion = Number.parseInt(existing?.metadata?.annotations?.[VEX_VERSION_ANNOTATION] ?? "0", 10);
    const version = (Number.isSafeInteger(prevVersion) && prevVersion > 0 ? prevVersion : 0) + 1;
    const uid = vs.metadata?.uid;
    const doc = buildOpenVexDocument(decision, {
      id: uid !== undefined ? `urn:uuid:${uid}` : `urn:stella:vexstatement:${namespace}:${name}`,
      author: vs.spec.author ?? this.#author,
      timestamp: rfc3339(nowMs),
      version,
      statusNotes: sentence,
    });
    let signed: SignedOpenVex | undefined;
    if (this.#signer !== undefined) signed = await signOpenVex(decision.product, doc, [this.#signer]);
    const data: Record<string, string> = {
      [VEX_DOCUMENT_KEY]: canonicalJson(doc),
      [VEX_EVIDENCE_KEY]: evidenceMarkdown(decision),
    };
    if (signed !== undefined) data[VEX_ENVELOPE_KEY] = signed.json;
    const annotations: Record<string, string> = { [VEX_VERSION_ANNOTATION]: String(version) };
    if (signed !== undefined) annotations[VEX_DIGEST_ANNOTATION] = signed.digest;
    const body: V1ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: cmName,
        namespace,
        labels: {
          "app.kubernetes.io/managed-by": "stella-operator",
          "app.kubernetes.io/component": "vex",
        },
        annotations,
        // Garbage-collected with the statement. No blockOwnerDeletion: it would need update on
        // vexstatements/finalizers (OwnerReferencesPermissionEnforcement) for no benefit here.
        ownerReferences:
          uid === undefined
            ? []
            : [{ apiVersion: API_VERSION, kind: "VexStatement", name, uid, controller: true }],
      },
      data,
    };
    if (existing === undefined) {
      // A 409 (created concurrently, e.g. across a leader change) throws: the retry reads and replaces it.
      await this.#configMaps.createNamespacedConfigMap({ namespace, body, fieldManager: FIELD_MANAGER });
    } else {
      const resourceVersion = existing.metadata?.resourceVersion;
      body.metadata = { ...body.metadata, ...(resourceVersion !== undefined ? { resourceVersion } : {}) };
      await this.#configMaps.replaceNamespacedConfigMap({
        name: cmName,
        namespace,
        body,
        fieldManager: FIELD_MANAGER,
      });
    }
    return {
      configMap: cmName,
      ...(signed !== undefined ? { digest: signed.digest } : {}),
      ...(this.#signer !== undefined ? { keyid: this.#signer.keyid } : {}),
    };
  }
}

function needsWrite(vs: VexStatement, result: DecideResult, canSign: boolean): boolean {
  const status = vs.status;
  if (result.changed) return true;
  if (status?.observedGeneration !== vs.metadata?.generation) return true;
  const conds = (status?.conditions ?? []) as Condition[];
  if (!conds.some((c) => c.type === "Decided")) return true;
  const signed = conds.find((c) => c.type === "Signed");
  // A key configured after the decision: sign the current decision now.
  if (canSign && signed?.status !== "True") return true;
  return false;
}

/** The full status to write (merge patch: documentDigest null removes a stale digest). */
export function nextStatus(
  current: VexStatementStatus | undefined,
  result: DecideResult,
  generation: number | undefined,
  sentence: string,
  stored: { digest?: string; keyid?: string; configMap: string },
  nowMs: number,
): Record<string, unknown> {
  const now = new Date(nowMs);
  const gen = generation !== undefined ? { observedGeneration: generation } : {};
  let conditions = setCondition(
    current?.conditions ?? [],
    { type: "Decided", status: "True", reason: result.reason, message: sentence, ...gen },
    now,
  ).conditions;
  conditions = setCondition(
    conditions,
    stored.digest !== undefined
      ? {
          type: "Signed",
          status: "True",
          reason: "Signed",
          message: `DSSE envelope ${stored.digest} signed by ${stored.keyid ?? "?"}, in ConfigMap ${stored.configMap}`,
          ...gen,
        }
      : {
          type: "Signed",
          status: "False",
          reason: "SigningKeyMissing",
          message: `the operator has no signing key (--signing-key-file); the unsigned document is in ConfigMap ${stored.configMap}`,
          ...gen,
        },
    now,
  ).conditions;
  return {
    ...(current ?? {}),
    ...gen,
    conditions,
    vexStatus: result.next.vexStatus,
    justification: result.next.justification ?? null,
    // Decisions carry no impact statement of their own; a stale one would contradict the new status.
    impactStatement: null,
    evidence: result.next.evidence,
    transitions: result.next.transitions,
    documentDigest: stored.digest ?? null,
  };
}

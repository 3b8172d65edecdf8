// The operator process: configuration, wiring and signal handling in one place. Everything it
// starts has start()/shutdown(); the manager stops them in order on SIGTERM.
import { KubeConfig } from "@kubernetes/client-node";

import { ConfigError, loadConfig, type OperatorConfig } from "./config.ts";
import { FuncProofController } from "./controllers/funcproof.ts";
import { TrustedKeys } from "./controllers/trusted-keys.ts";
import { createLogger } from "../core/service/log.ts";
import { installSignalHandlers, Manager } from "./runtime/manager.ts";
import { VexStatementController, loadVexSigner } from "./controllers/vexstatement.ts";
import { InMemoryFunctionPresence, type FunctionPresence } from "./controllers/vexstatement-presence.ts";
import { createHotSymbolIndex } from "./index/hot-symbols.ts";
import { ImageBinaries, withFoldObservers, type FoldObserver } from "./index/image-binaries.ts";
import { FuncProofNamer } from "./index/namer.ts";
import type { HotSymbolIndex } from "./index/types.ts";
import type { PublicKey } from "../core/dsse/keys.ts";
import { IngestServer, type IngestTls } from "./ingest/server.ts";
import { DEFAULT_POLICY, loadPolicy } from "../core/risk/policy.ts";
import { DeltaAttestationController } from "./controllers/deltaattestation.ts";
import { GateKeys } from "./controllers/gate-keys.ts";
import { RolloutGateController } from "./controllers/rolloutgate.ts";
import { RolloutWebhook } from "./webhook/admission.ts";
import { indexHotness } from "./webhook/hotness.ts";
import { WebhookServer } from "./webhook/server.ts";
import { DeltaStore } from "./webhook/store.ts";
import { WebhookTls } from "./webhook/tls.ts";

export interface OperatorOptions {
  config: OperatorConfig;
  /** Default: in-cluster, or $KUBECONFIG. */
  kubeConfig?: KubeConfig;
}

/** How soon after new batches every VexStatement is re-decided. */
const REDECIDE_DEBOUNCE_MS = 1000;
/** How soon after new batches, and how often anyway (the window slides), delta scores take in new hotness. */
const HOTNESS_DEBOUNCE_MS = 2000;
const HOTNESS_REFRESH_MS = 30_000;

function ingestTls(c: OperatorConfig): IngestTls {
  if (c.ingestTlsCertFile === "") return { insecure: true };
  return {
    certFile: c.ingestTlsCertFile,
    keyFile: c.ingestTlsKeyFile,
    ...(c.ingestClientCaFile !== "" ? { clientCaFile: c.ingestClientCaFile } : {}),
  };
}

/**
 * Builds the manager with every component; the caller starts it. Data flow: agents → IngestServer
 * (write-ahead log, then fold, then ack) → hot-symbol index ← FuncProof controller (verified function
 * tables name stripped frames; a newly verified one triggers a rebuild of the index from the log) →
 * VexStatement controller (decisions, signed OpenVEX). Ingest and the controllers run on the leader
 * only: the index behind a decision is the one the agents feed.
 */
export function buildOperator(opts: OperatorOptions): Manager {
  const config = opts.config;
  const logger = createLogger({ level: config.logLevel });
  const kubeConfig = opts.kubeConfig ?? loadKubeConfig();
  const manager = new Manager({ config, logger, kubeConfig });
  const keys = new TrustedKeys(kubeConfig, config.namespace, config.trustedKeysSecret, logger);
  manager.addInformer(keys.informer);

  const namer = new FuncProofNamer();
  const images = new ImageBinaries();
  // New evidence can decide a statement now: every VexStatement is re-decided soon after batches arrive
  // (debounced) rather than at its next revisit. This keeps a flip within about one agent interval.
  let redecide: () => void = () => undefined;
  let redecideTimer: NodeJS.Timeout | undefined;
  const redecideSoon: FoldObserver = {
    observe: () => {
      redecideTimer ??= setTimeout(() => {
        redecideTimer = undefined;
        redecide();
      }, REDECIDE_DEBOUNCE_MS);
      redecideTimer.unref();
    },
  };
  let rescore: () => void = () => undefined;
  let rescoreTimer: NodeJS.Timeout | undefined;
  const rescoreSoon: FoldObserver = {
    observe: () => {
      rescoreTimer ??= setTimeout(() => {
        rescoreTimer = undefined;
        rescore();
      }, HOTNESS_DEBOUNCE_MS);
      rescoreTimer.unref();
    },
  };
  const index = withFoldObservers(createHotSymbolIndex({ namer }), [images, redecideSoon, rescoreSoon]);
  const functions = new InMemoryFunctionPresence();
  const presence: FunctionPresence = {
    lookup: (symbol, buildIds) => functions.lookup(symbol, buildIds),
    verified: (buildIds) => functions.verified(buildIds),
    imageBuildIds: (digest) => images.buildIds(digest) ?? functions.imageBuildIds(digest),
    onChange: (handler) => {
      functions.onChange(handler);
    },
  };
  const ingest = new IngestServer({
    address: config.ingestAddr,
    tls: ingestTls(config),
    walDir: config.walDir,
    index,
    logger: logger.child({ component: "ingest" }),
    registry: manager.registry,
  });
  let rebuildTimer: NodeJS.Timeout | undefined;
  const funcProofs = new FuncProofController({
    kubeConfig,
    trustedKeys: keys,
    events: manager.eventRecorder,
    registry: manager.registry,
    logger,
    workers: config.workers,
    observations: index,
    onVerified: (buildId, proof) => {
      if (proof === undefined) {
        namer.delete(buildId);
        functions.remove(buildId);
        return;
      }
      const known = namer.has(buildId);
      namer.addFuncProof(proof);
      if (!known) {
        functions.add(
          buildId,
          proof.functions.map((f) => f.sym),
        );
        // Frames of this binary folded before its FuncProof verified are still unnamed: refold the log
        // (debounced: a burst of new FuncProofs costs one rebuild).
        if (ingest.ready) {
          clearTimeout(rebuildTimer);
          rebuildTimer = setTimeout(() => {
            ingest.rebuildIndex().catch((err: unknown) => {
              logger.error({ err }, "index rebuild failed");
            });
          }, 1000);
          rebuildTimer.unref();
        }
      }
    },
  });
  manager.addInformer(funcProofs.informer);
  manager.addController(funcProofs.controller);
  const vex = new VexStatementController({
    kubeConfig,
    index,
    presence,
    signer: loadVexSigner(config.signingKeyFile),
    events: manager.eventRecorder,
    registry: manager.registry,
    logger,
    workers: config.workers,
  });
  manager.addInformer(vex.informer);
  manager.addController(vex.controller);
  redecide = () => {
    for (const key of vex.informer.keys()) vex.controller.enqueue(key);
  };
  addRolloutGating(manager, config, kubeConfig, keys, logger, index, (fn) => {
    rescore = fn;
  });
  // Ready once the write-ahead log is replayed (on the leader; other replicas do not ingest).
  manager.healthServer.addReadinessCheck("ingest", () => {
    if (manager.isLeader() && !ingest.ready) throw new Error("replaying the ingest write-ahead log");
  });
  manager.add(
    {
      name: "ingest",
      start: async () => {
        await ingest.start();
      },
      shutdown: async () => {
        clearTimeout(rebuildTimer);
        clearTimeout(redecideTimer);
        clearTimeout(rescoreTimer);
        await ingest.shutdown();
      },
    },
    { needLeaderElection: true },
  );
  return manager;
}

/**
 * Rollout gating (issue 7): DeltaAttestations are checked on every replica into the webhook's store and scored
 * with the index's hotness (`setRescore` receives the refresh to run after new batches); with the webhook
 * enabled, RolloutGates, their key Secrets and the HTTPS webhook (every replica serves it) join in.
 */
function addRolloutGating(
  manager: Manager,
  config: OperatorConfig,
  kubeConfig: KubeConfig,
  trusted: TrustedKeys,
  logger: Manager["logger"],
  index: HotSymbolIndex,
  setRescore: (fn: () => void) => void,
): void {
  const policy = config.riskPolicyFile === "" ? DEFAULT_POLICY : loadPolicy(config.riskPolicyFile);
  const windowMs = config.hotnessWindowSeconds * 1000;
  const hotnessNow = () => {
    const now = Date.now();
    return indexHotness(index, now - windowMs, now + 60_000);
  };
  const store = new DeltaStore({ policy, hotness: hotnessNow() });
  // The RolloutGates' keys join the operator's own once gating is on.
  const gateKeysOf: { keys: () => PublicKey[] } = { keys: () => [] };
  const deltas = new DeltaAttestationController({
    kubeConfig,
    keys: () => [...trusted.keys(), ...gateKeysOf.keys()],
    store,
    events: manager.eventRecorder,
    registry: manager.registry,
    logger,
    workers: config.workers,
  });
  manager.addInformer(deltas.informer);
  manager.addController(deltas.controller);
  // Re-check every attestation when the set of known keys changes (not on every gate edit), once per burst.
  const keyIds = (): string =>
    [...trusted.keys(), ...gateKeysOf.keys()]
      .map((k) => k.keyid)
      .sort()
      .join(",");
  let knownKeyIds = "";
  let recheckQueued = false;
  const recheckOnNewKeys = (): void => {
    if (recheckQueued || keyIds() === knownKeyIds) return;
    recheckQueued = true;
    setImmediate(() => {
      recheckQueued = false;
      knownKeyIds = keyIds();
      deltas.recheckAll();
    });
  };
  trusted.onChange(recheckOnNewKeys);
  const rescore = (): void => {
    for (const name of store.refreshHotness(hotnessNow())) deltas.controller.enqueue(name);
  };
  setRescore(rescore);
  const refresher = setInterval(rescore, HOTNESS_REFRESH_MS);
  refresher.unref();
  if (!config.webhookEnabled) return;

  const gateKeys = new GateKeys(kubeConfig, config.namespace, logger);
  const gates = new RolloutGateController({
    kubeConfig,
    keys: gateKeys,
    events: manager.eventRecorder,
    registry: manager.registry,
    logger,
    workers: config.workers,
  });
  const g = gates;
  gateKeysOf.keys = () => g.keys();
  gates.onChange(recheckOnNewKeys);
  manager.addInformer(gateKeys.informer);
  manager.addInformer(gates.informer);
  manager.addController(gates.controller);
  const webhook = new RolloutWebhook({
    kubeConfig,
    gates: () => g.gates(),
    deltas: store,
    record: (gate, outcome) => {
      g.record(gate, outcome);
    },
    events: manager.eventRecorder,
    registry: manager.registry,
    logger: logger.child({ component: "webhook" }),
    excludedNamespaces: [config.namespace, "kube-system"],
  });
  manager.addInformer(webhook.namespaces);
  const log = logger.child({ component: "webhook-server" });
  let server: WebhookServer | undefined;
  let tls: WebhookTls | undefined;
  manager.healthServer.addReadinessCheck("webhook", () => {
    if (server === undefined) throw new Error("webhook not serving yet");
  });
  manager.add(
    {
      name: "webhook",
      start: async () => {
        const serverLog = (
          level: "info" | "warn" | "error",
          msg: string,
          fields?: Record<string, unknown>,
        ) => {
          log[level](fields ?? {}, msg);
        };
        if (config.webhookCertMode === "cert-manager") {
          server = new WebhookServer({
            address: config.webhookAddr,
            tls: {
              certFile: `${config.webhookCertDir}/tls.crt`,
              keyFile: `${config.webhookCertDir}/tls.key`,
            },
            handle: webhook.handle,
            log: serverLog,
          });
        } else {
          tls = new WebhookTls({
            kubeConfig,
            namespace: config.namespace,
            secretName: config.webhookTlsSecret,
            serviceName: config.webhookService,
            configurationName: config.webhookConfiguration,
            clusterDomain: config.clusterDomain,
            extraSans: config.webhookCertExtraSans,
            logger,
          });
          await tls.start();
          const pair = tls.current();
          const s = new WebhookServer({
            address: config.webhookAddr,
            tls: { cert: pair.cert, key: pair.key },
            handle: webhook.handle,
            log: serverLog,
          });
          tls.onChange((p) => {
            s.setCertificate(p.cert, p.key);
          });
          server = s;
        }
        const port = await server.start();
        log.info({ port, certMode: config.webhookCertMode }, "admission webhook serving");
      },
      shutdown: async () => {
        clearInterval(refresher);
        await tls?.shutdown();
        await server?.stop();
      },
    },
    { needLeaderElection: false },
  );
}

function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

async function main(): Promise<void> {
  let config: OperatorConfig;
  try {
    config = loadConfig({
      argv: process.argv.slice(2),
      env: process.env,
      warn: (m) => process.stderr.write(`stella-operator: ${m}\n`),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`stella-operator: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const manager = buildOperator({ config });
  installSignalHandlers(manager, manager.logger);
  await manager.start();
  manager.logger.info({ identity: manager.identity }, "operator started");
}

if (import.meta.main) await main();

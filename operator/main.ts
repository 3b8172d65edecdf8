// The operator process: configuration, wiring and signal handling in one place. Everything it
// starts has start()/shutdown(); the manager stops them in order on SIGTERM.
import { KubeConfig } from "@kubernetes/client-node";

import { ConfigError, loadConfig, type OperatorConfig } from "./config.ts";
import { FuncProofController } from "./controllers/funcproof.ts";
import { TrustedKeys } from "./controllers/trusted-keys.ts";
import { createLogger } from "../core/service/log.ts";
import { installSignalHandlers, Manager } from "./runtime/manager.ts";

export interface OperatorOptions {
  config: OperatorConfig;
  /** Default: in-cluster, or $KUBECONFIG. */
  kubeConfig?: KubeConfig;
}

/** Builds the manager with every controller; the caller starts it. */
export function buildOperator(opts: OperatorOptions): Manager {
  const logger = createLogger({ level: opts.config.logLevel });
  const kubeConfig = opts.kubeConfig ?? loadKubeConfig();
  const manager = new Manager({ config: opts.config, logger, kubeConfig });
  const keys = new TrustedKeys(kubeConfig, opts.config.namespace, opts.config.trustedKeysSecret, logger);
  manager.addInformer(keys.informer);
  const funcProofs = new FuncProofController({
    kubeConfig,
    trustedKeys: keys,
    events: manager.eventRecorder,
    registry: manager.registry,
    logger,
    workers: opts.config.workers,
  });
  manager.addInformer(funcProofs.informer);
  manager.addController(funcProofs.controller);
  return manager;
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

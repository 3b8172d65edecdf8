// The DaemonSet's long-running mode (`stella agent run`): configuration, wiring and signal handling in
// one place. Start order: metrics/probe servers → pod index (in a cluster) → shipper → sampling.
// Shutdown (SIGTERM/SIGINT) in reverse: stop bpftrace (its last interval is still shipped), give the
// shipper shutdownTimeoutSeconds to get everything acknowledged, stop the pod watch, close the servers.
import { KubeConfig } from "@kubernetes/client-node";

import { HealthServer } from "../core/service/health.ts";
import { createLogger, type Logger } from "../core/service/log.ts";
import { createRegistry } from "../core/service/metrics.ts";
import { Agent, type StackSink } from "./agent.ts";
import { Attributor } from "./attribute/attributor.ts";
import { PodIndex } from "./attribute/pod-index.ts";
import { loadAgentConfig, type AgentConfig, type AgentConfigOverrides } from "./config.ts";
import { registerAgentMetrics } from "./metrics.ts";
import { resolveCgroupFilter } from "./pipeline/cgroup-filter.ts";
import type { SamplerFilter } from "./sampler/sampler.ts";
import { Shipper } from "./ship/shipper.ts";
import { Symbolizer } from "./symbolize/symbolizer.ts";

export interface RunAgentOptions {
  fileText?: string;
  fileName?: string;
  overrides?: AgentConfigOverrides;
  env?: NodeJS.ProcessEnv;
  /** Aborting it shuts the agent down (tests); the process's SIGTERM/SIGINT do too. */
  signal?: AbortSignal;
  /** Called once everything is started (tests read the bound addresses here). */
  onStarted?: (started: { metricsUrl?: string; healthUrl?: string; agentId?: string }) => void;
  /** Default: in-cluster, or $KUBECONFIG. */
  kubeConfig?: KubeConfig;
}

/** In a cluster when the service-account environment is there, or a kubeconfig is named. */
function inCluster(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST) || Boolean(env.KUBECONFIG);
}

function samplerTarget(c: AgentConfig): { filter: SamplerFilter; accept?: (pid: number) => boolean } {
  const t = c.sampling.target;
  if ("pid" in t) return { filter: { pid: t.pid } };
  if ("cgroup" in t) {
    const f = resolveCgroupFilter(
      t.cgroup,
      c.attribution.cgroupRoot !== undefined ? { cgroupRoot: c.attribution.cgroupRoot } : {},
    );
    return f.accept ? { filter: f.sampler, accept: f.accept } : { filter: f.sampler };
  }
  return { filter: { all: true, excludePid: process.pid } };
}

/** Stacks go nowhere without an operator: counted and summarised in the log (debug). */
function logOnlySink(log: Logger): StackSink {
  return {
    enqueue(body) {
      log.debug(
        { stacks: body.samples.length, samples: body.samples.reduce((n, s) => n + s.count, 0) },
        "interval (no operator configured: not shipped)",
      );
    },
  };
}

/** Runs until a signal (or `signal`); resolves to the process exit code. */
export async function runAgent(o: RunAgentOptions): Promise<number> {
  const env = o.env ?? process.env;
  const warnings: string[] = [];
  const config = loadAgentConfig({
    ...(o.fileText !== undefined ? { fileText: o.fileText } : {}),
    ...(o.fileName !== undefined ? { fileName: o.fileName } : {}),
    ...(o.overrides ? { overrides: o.overrides } : {}),
    env,
    warn: (m) => warnings.push(m),
  });
  const log = createLogger({ level: config.logLevel, base: { service: "stella-agent", node: config.node } });
  for (const w of warnings) log.warn({}, w);
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    log.info({ signal: sig }, "shutting down");
    stop.abort();
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  o.signal?.addEventListener(
    "abort",
    () => {
      stop.abort();
    },
    { once: true },
  );

  const registry = createRegistry();
  const servers: HealthServer[] = [];
  let podIndex: PodIndex | undefined;
  let shipper: Shipper | undefined;
  let agent: Agent | undefined;
  let exitCode = 0;
  try {
    const target = samplerTarget(config);
    const health = new HealthServer({
      address: config.healthAddr,
      registry,
      logger: log,
      metrics: config.metricsAddr === config.healthAddr,
    });
    servers.push(health);
    if (config.metricsAddr !== "0" && config.metricsAddr !== config.healthAddr)
      servers.push(new HealthServer({ address: config.metricsAddr, registry, logger: log, probes: false }));

    const useKube =
      config.attribution.kubernetes === "on" || (config.attribution.kubernetes === "auto" && inCluster(env));
    if (useKube) {
      const kc =
        o.kubeConfig ??
        (() => {
          const k = new KubeConfig();
          k.loadFromDefault();
          return k;
        })();
      podIndex = new PodIndex({ kubeConfig: kc, nodeName: config.node, logger: log, signal: stop.signal });
      const idx = podIndex;
      health.addReadinessCheck("pod-index", () => {
        if (!idx.hasSynced) throw new Error("this node's pods are not listed yet");
      });
    }
    const attributor = new Attributor(podIndex ? { podLookup: podIndex } : {});
    const symbolizer = new Symbolizer({
      maxBytes: config.symbolization.cacheBytes,
      kernel: config.symbolization.kernel,
    });
    if (config.operator) {
      shipper = new Shipper({
        target: config.operator.address,
        node: config.node,
        tls: config.operator.tls,
        maxBufferBytes: config.operator.maxBufferBytes,
        maxMessageBytes: config.operator.maxMessageBytes,
        logger: log.child({ component: "shipper" }),
      });
    }
    const sink: StackSink = shipper ?? logOnlySink(log);
    agent = new Agent({
      hz: config.sampling.frequencyHz,
      intervalMs: config.sampling.intervalSeconds * 1000,
      ...target,
      ...(config.sampling.dutyCycle
        ? {
            dutyCycle: {
              onMs: config.sampling.dutyCycle.onSeconds * 1000,
              periodMs: config.sampling.dutyCycle.periodSeconds * 1000,
            },
          }
        : {}),
      symbolizer,
      attribution: attributor,
      sink,
      logger: log.child({ component: "sampler" }),
      onFatal: (err) => {
        log.fatal({ err }, "sampling failed for good");
        exitCode = 1;
        stop.abort();
      },
    });
    const a = agent;
    const s = shipper;
    const idx = podIndex;
    registerAgentMetrics(registry, {
      agent: () => a.stats,
      sampling: () => a.sampling,
      bpftracePid: () => a.bpftracePid,
      elfCache: () => symbolizer.cache.stats,
      ...(s ? { shipper: () => s.stats } : {}),
      ...(idx ? { attribution: () => idx.stats() } : {}),
    });
    health.addReadinessCheck("sampler", () => {
      if (a.stats.samplerStarts === 0) throw new Error("bpftrace has not started yet");
    });

    for (const srv of servers) await srv.start();
    if (podIndex) await podIndex.start();
    shipper?.start();
    await agent.start();
    log.info(
      {
        hz: config.sampling.frequencyHz,
        intervalSeconds: config.sampling.intervalSeconds,
        dutyCycle: config.sampling.dutyCycle ?? null,
        operator: config.operator?.address ?? null,
        kubernetes: useKube,
      },
      "agent started",
    );
    o.onStarted?.({
      healthUrl: health.url(),
      ...(servers[1] ? { metricsUrl: servers[1].url() } : { metricsUrl: health.url() }),
      ...(shipper ? { agentId: shipper.agentId } : {}),
    });
    if (!stop.signal.aborted)
      await new Promise((r) => {
        stop.signal.addEventListener("abort", r, { once: true });
      });
  } catch (err) {
    log.fatal({ err }, "agent failed");
    throw err;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await agent?.shutdown().catch((err: unknown) => {
      log.error({ err }, "sampler shutdown");
    });
    await shipper
      ?.shutdown({ flushTimeoutMs: config.shutdownTimeoutSeconds * 1000 })
      .catch((err: unknown) => {
        log.error({ err }, "shipper shutdown");
      });
    if (shipper) {
      const st = shipper.stats;
      log.info(
        { acked: st.acked, unacknowledged: st.bufferBatches, dropped: st.droppedBatches },
        "shipper stopped",
      );
    }
    await podIndex?.shutdown().catch((err: unknown) => {
      log.error({ err }, "pod index shutdown");
    });
    for (const srv of servers.reverse()) await srv.shutdown(1000).catch(() => undefined);
    log.flush();
  }
  return exitCode;
}

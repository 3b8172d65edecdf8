// `stella agent run --config FILE`: the DaemonSet's configuration, typed, defaults in one place,
// validated at start-up with errors that name the field. Precedence: flags > config file > STELLA_*
// environment (what the Helm chart sets) > defaults. A malformed environment value warns and falls
// back (a Helm typo degrades, never crash-loops); a malformed file or flag is an error.
import { hostname } from "node:os";
import { parse as parseYaml } from "yaml";
import type { LevelWithSilent } from "pino";

import { StellaError } from "../core/errors.ts";
import { LOG_LEVELS } from "../core/service/log.ts";
import { parseListenAddress } from "../core/service/listen-address.ts";

export type SamplingTarget = { all: true } | { pid: number } | { cgroup: string };

export type TlsConfig =
  { insecure: true } | { caFile: string; certFile?: string; keyFile?: string; serverNameOverride?: string };

export interface AgentConfig {
  /** Node name (Kubernetes) or host name: the batch's `node`, and the pod watch's field selector. */
  node: string;
  sampling: {
    /** profile:hz:N per CPU. 19 Hz: a prime, so sampling does not lock step with periodic work. */
    frequencyHz: number;
    /** How often stacks are collected from bpftrace and shipped. */
    intervalSeconds: number;
    /** Sample onSeconds of every periodSeconds; absent = always on. */
    dutyCycle?: { onSeconds: number; periodSeconds: number };
    target: SamplingTarget;
  };
  symbolization: {
    /** Upper bound on ELF function tables held in memory. */
    cacheBytes: number;
    /** Resolve kernel frames through /proc/kallsyms (bpftrace samples user stacks only; off by default). */
    kernel: boolean;
  };
  attribution: {
    /** Watch this node's pods for pod/namespace/image: "auto" = when running in a cluster. */
    kubernetes: "auto" | "on" | "off";
    /** cgroup v2 mount as the agent sees the host's (the chart mounts it at /host/sys/fs/cgroup). */
    cgroupRoot?: string;
  };
  /** The operator's gRPC ingest; absent = do not ship (stacks only counted and logged). */
  operator?: {
    address: string;
    tls: TlsConfig;
    maxBufferBytes: number;
    maxMessageBytes: number;
  };
  metricsAddr: string;
  healthAddr: string;
  logLevel: LevelWithSilent;
  /** Time to flush unacknowledged batches on SIGTERM. */
  shutdownTimeoutSeconds: number;
}

export class AgentConfigError extends StellaError<"INVALID_CONFIG"> {
  readonly field: string;
  readonly detail: string;
  constructor(field: string, detail: string) {
    super("INVALID_CONFIG", `invalid agent configuration: ${field}: ${detail}`);
    this.field = field;
    this.detail = detail;
  }
}

export function defaultAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return {
    node: env.NODE_NAME || hostname(),
    sampling: { frequencyHz: 19, intervalSeconds: 10, target: { all: true } },
    symbolization: { cacheBytes: 256 * 1024 * 1024, kernel: false },
    attribution: { kubernetes: "auto" },
    metricsAddr: ":8080",
    healthAddr: ":8081",
    logLevel: "info",
    shutdownTimeoutSeconds: 20,
  };
}

const MAX_HZ = 10_000;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function only(o: Obj, field: string, keys: readonly string[]): void {
  for (const k of Object.keys(o))
    if (!keys.includes(k)) throw new AgentConfigError(`${field}${field ? "." : ""}${k}`, `unknown field`);
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
    throw new AgentConfigError(field, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

function str(v: unknown, field: string): string {
  if (typeof v !== "string" || v === "") throw new AgentConfigError(field, `must be a non-empty string`);
  return v;
}

function addr(v: unknown, field: string): string {
  const s = str(v, field);
  if (s === "0") return s;
  try {
    parseListenAddress(s);
  } catch (err) {
    throw new AgentConfigError(field, (err as Error).message);
  }
  return s;
}

/** Environment fallbacks the Helm chart sets; malformed values warn and are ignored. */
function applyEnv(c: AgentConfig, env: NodeJS.ProcessEnv, warn: (msg: string) => void): void {
  const hz = env.STELLA_SAMPLE_FREQUENCY_HZ;
  if (hz !== undefined && hz !== "") {
    const n = Number(hz);
    if (Number.isSafeInteger(n) && n >= 1 && n <= MAX_HZ) c.sampling.frequencyHz = n;
    else
      warn(
        `STELLA_SAMPLE_FREQUENCY_HZ=${JSON.stringify(hz)} is not an integer in [1, ${MAX_HZ}]; using ${c.sampling.frequencyHz}`,
      );
  }
  if (env.STELLA_OPERATOR_ADDR) {
    c.operator = {
      address: env.STELLA_OPERATOR_ADDR,
      tls: { insecure: true },
      maxBufferBytes: 64 * 1024 * 1024,
      maxMessageBytes: 4 * 1024 * 1024,
    };
  }
  if (env.STELLA_HOST_CGROUP_ROOT) c.attribution.cgroupRoot = env.STELLA_HOST_CGROUP_ROOT;
  if (env.STELLA_LOG_LEVEL) {
    if ((LOG_LEVELS as readonly string[]).includes(env.STELLA_LOG_LEVEL))
      c.logLevel = env.STELLA_LOG_LEVEL as LevelWithSilent;
    else warn(`STELLA_LOG_LEVEL=${JSON.stringify(env.STELLA_LOG_LEVEL)} is not a level; using ${c.logLevel}`);
  }
}

function applyFile(c: AgentConfig, doc: unknown): void {
  if (doc === null || doc === undefined) return;
  if (!isObj(doc)) throw new AgentConfigError("(root)", "must be a mapping");
  only(doc, "", [
    "node",
    "sampling",
    "symbolization",
    "attribution",
    "operator",
    "metricsAddr",
    "healthAddr",
    "logLevel",
    "shutdownTimeoutSeconds",
  ]);
  if (doc.node !== undefined) c.node = str(doc.node, "node");
  if (doc.sampling !== undefined) {
    const s = doc.sampling;
    if (!isObj(s)) throw new AgentConfigError("sampling", "must be a mapping");
    only(s, "sampling", ["frequencyHz", "intervalSeconds", "dutyCycle", "target"]);
    if (s.frequencyHz !== undefined)
      c.sampling.frequencyHz = int(s.frequencyHz, "sampling.frequencyHz", 1, MAX_HZ);
    if (s.intervalSeconds !== undefined)
      c.sampling.intervalSeconds = int(s.intervalSeconds, "sampling.intervalSeconds", 1, 3600);
    if (s.dutyCycle !== undefined && s.dutyCycle !== null) {
      const d = s.dutyCycle;
      if (!isObj(d)) throw new AgentConfigError("sampling.dutyCycle", "must be a mapping");
      only(d, "sampling.dutyCycle", ["onSeconds", "periodSeconds"]);
      const on = int(d.onSeconds, "sampling.dutyCycle.onSeconds", 1, 86_400);
      const period = int(d.periodSeconds, "sampling.dutyCycle.periodSeconds", 1, 86_400);
      if (on > period)
        throw new AgentConfigError("sampling.dutyCycle.onSeconds", `must be <= periodSeconds (${period})`);
      c.sampling.dutyCycle = { onSeconds: on, periodSeconds: period };
    }
    if (s.target !== undefined) c.sampling.target = parseTarget(s.target, "sampling.target");
  }
  if (doc.symbolization !== undefined) {
    const s = doc.symbolization;
    if (!isObj(s)) throw new AgentConfigError("symbolization", "must be a mapping");
    only(s, "symbolization", ["cacheBytes", "kernel"]);
    if (s.cacheBytes !== undefined)
      c.symbolization.cacheBytes = int(s.cacheBytes, "symbolization.cacheBytes", 1024 * 1024, 2 ** 40);
    if (s.kernel !== undefined) {
      if (typeof s.kernel !== "boolean")
        throw new AgentConfigError("symbolization.kernel", "must be a boolean");
      c.symbolization.kernel = s.kernel;
    }
  }
  if (doc.attribution !== undefined) {
    const a = doc.attribution;
    if (!isObj(a)) throw new AgentConfigError("attribution", "must be a mapping");
    only(a, "attribution", ["kubernetes", "cgroupRoot"]);
    if (a.kubernetes !== undefined) {
      const k = a.kubernetes === true ? "on" : a.kubernetes === false ? "off" : a.kubernetes;
      if (k !== "auto" && k !== "on" && k !== "off")
        throw new AgentConfigError("attribution.kubernetes", `must be auto, on or off`);
      c.attribution.kubernetes = k;
    }
    if (a.cgroupRoot !== undefined) c.attribution.cgroupRoot = str(a.cgroupRoot, "attribution.cgroupRoot");
  }
  if (doc.operator !== undefined && doc.operator !== null) {
    const o = doc.operator;
    if (!isObj(o)) throw new AgentConfigError("operator", "must be a mapping");
    only(o, "operator", ["address", "tls", "maxBufferBytes", "maxMessageBytes"]);
    const prev = c.operator;
    c.operator = {
      address:
        o.address !== undefined ? str(o.address, "operator.address") : str(prev?.address, "operator.address"),
      tls: o.tls !== undefined ? parseTls(o.tls) : (prev?.tls ?? { insecure: true }),
      maxBufferBytes:
        o.maxBufferBytes !== undefined
          ? int(o.maxBufferBytes, "operator.maxBufferBytes", 64 * 1024, 2 ** 40)
          : (prev?.maxBufferBytes ?? 64 * 1024 * 1024),
      maxMessageBytes:
        o.maxMessageBytes !== undefined
          ? int(o.maxMessageBytes, "operator.maxMessageBytes", 16 * 1024, 1024 * 1024 * 1024)
          : (prev?.maxMessageBytes ?? 4 * 1024 * 1024),
    };
  }
  if (doc.metricsAddr !== undefined) c.metricsAddr = addr(doc.metricsAddr, "metricsAddr");
  if (doc.healthAddr !== undefined) c.healthAddr = addr(doc.healthAddr, "healthAddr");
  if (doc.logLevel !== undefined) c.logLevel = level(doc.logLevel, "logLevel");
  if (doc.shutdownTimeoutSeconds !== undefined)
    c.shutdownTimeoutSeconds = int(doc.shutdownTimeoutSeconds, "shutdownTimeoutSeconds", 0, 3600);
}

function level(v: unknown, field: string): LevelWithSilent {
  if (typeof v !== "string" || !(LOG_LEVELS as readonly string[]).includes(v))
    throw new AgentConfigError(field, `must be one of ${LOG_LEVELS.join(", ")}`);
  return v as LevelWithSilent;
}

export function parseTarget(v: unknown, field: string): SamplingTarget {
  if (v === "all") return { all: true };
  if (!isObj(v)) throw new AgentConfigError(field, `must be "all", {pid: N} or {cgroup: PATH}`);
  only(v, field, ["pid", "cgroup"]);
  if (v.pid !== undefined && v.cgroup !== undefined)
    throw new AgentConfigError(field, "pid and cgroup exclude each other");
  if (v.pid !== undefined) return { pid: int(v.pid, `${field}.pid`, 1, 2 ** 22) };
  return { cgroup: str(v.cgroup, `${field}.cgroup`) };
}

function parseTls(v: unknown): TlsConfig {
  if (!isObj(v)) throw new AgentConfigError("operator.tls", "must be a mapping");
  only(v, "operator.tls", ["insecure", "caFile", "certFile", "keyFile", "serverNameOverride"]);
  if (v.insecure === true) {
    if (Object.keys(v).length > 1)
      throw new AgentConfigError(
        "operator.tls.insecure",
        "excludes caFile, certFile, keyFile and serverNameOverride",
      );
    return { insecure: true };
  }
  const t: TlsConfig = { caFile: str(v.caFile, "operator.tls.caFile") };
  if ((v.certFile === undefined) !== (v.keyFile === undefined))
    throw new AgentConfigError("operator.tls.certFile", "certFile and keyFile go together (mTLS)");
  if (v.certFile !== undefined) t.certFile = str(v.certFile, "operator.tls.certFile");
  if (v.keyFile !== undefined) t.keyFile = str(v.keyFile, "operator.tls.keyFile");
  if (v.serverNameOverride !== undefined)
    t.serverNameOverride = str(v.serverNameOverride, "operator.tls.serverNameOverride");
  return t;
}

export interface AgentConfigOverrides {
  metricsAddr?: string;
  healthAddr?: string;
  logLevel?: string;
  operatorAddr?: string;
  node?: string;
}

/** Defaults ← env ← file (YAML text, `fileName` for messages) ← flags. */
export function loadAgentConfig(opts: {
  fileText?: string;
  fileName?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: AgentConfigOverrides;
  warn?: (msg: string) => void;
}): AgentConfig {
  const env = opts.env ?? process.env;
  const c = defaultAgentConfig(env);
  applyEnv(c, env, opts.warn ?? (() => {}));
  if (opts.fileText !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(opts.fileText);
    } catch (err) {
      throw new AgentConfigError(opts.fileName ?? "config", `not valid YAML: ${(err as Error).message}`);
    }
    try {
      applyFile(c, doc);
    } catch (err) {
      if (err instanceof AgentConfigError && opts.fileName)
        throw new AgentConfigError(`${opts.fileName}: ${err.field}`, err.detail);
      throw err;
    }
  }
  const o = opts.overrides ?? {};
  if (o.node !== undefined) c.node = str(o.node, "--node");
  if (o.metricsAddr !== undefined) c.metricsAddr = addr(o.metricsAddr, "--metrics-addr");
  if (o.healthAddr !== undefined) c.healthAddr = addr(o.healthAddr, "--health-addr");
  if (o.logLevel !== undefined) c.logLevel = level(o.logLevel, "--log-level");
  if (o.operatorAddr !== undefined) {
    c.operator = {
      tls: { insecure: true },
      maxBufferBytes: 64 * 1024 * 1024,
      maxMessageBytes: 4 * 1024 * 1024,
      ...c.operator,
      address: str(o.operatorAddr, "--operator-addr"),
    };
  }
  return c;
}

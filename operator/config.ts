/**
 * Operator configuration: typed options with their defaults in one place, read from STELLA_* environment
 * variables and command-line flags (flags win), validated at start-up with errors that name the field.
 *
 * Environment variables go through helpers that warn and fall back to the default on a malformed value
 * (OpenTelemetry `environment.ts`): a typo in a Helm value degrades to the default with a log line instead
 * of a crash loop. Flags are explicit operator intent, so a malformed flag is an error. Cross-field rules
 * (lease timings) are always errors.
 *
 * Flags: `--namespace=stella-system`, `--leader-elect[=true|false]` / `--no-leader-elect`,
 * `--lease-name`, `--lease-duration-seconds`, `--renew-deadline-seconds`, `--retry-period-seconds`,
 * `--metrics-addr` (alias `--metrics-bind-address`; "0" disables), `--health-addr` (alias
 * `--health-probe-bind-address`), `--trusted-keys-secret`, `--workers`, `--log-level`,
 * `--shutdown-timeout-seconds`, `--signing-key-file`, `--wal-dir`, `--ingest-tls-*`, `--webhook-enabled`,
 * `--webhook-cert-mode`, `--webhook-tls-secret`, `--webhook-service`, `--webhook-configuration`,
 * `--webhook-cert-dir`, `--webhook-cert-extra-sans`, `--cluster-domain`, `--risk-policy-file`,
 * `--hotness-window-seconds`. Both `--flag value` and `--flag=value` work.
 */
import { isIP } from "node:net";

import { StellaError } from "../core/errors.ts";
import type { LevelWithSilent } from "pino";
import { LOG_LEVELS } from "../core/service/log.ts";
import { parseListenAddress } from "../core/service/listen-address.ts";

export interface OperatorConfig {
  /** The operator's own namespace: the Lease and the trusted-keys Secret live here. */
  namespace: string;
  leaderElect: boolean;
  leaseName: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  /** Prometheus /metrics bind address; "0" disables the separate metrics server. */
  metricsAddr: string;
  /** /healthz and /readyz bind address. */
  healthAddr: string;
  /** Secret (in `namespace`) holding the public keys attestations are verified against. */
  trustedKeysSecret: string;
  /** Concurrent reconciles per controller. */
  workers: number;
  /** gRPC ingest for the agents' stacks (served from the ingest issue on; reserved now so the chart's flags parse). */
  ingestAddr: string;
  /** Admission webhook HTTPS address (served from the rollout-gating issue on). */
  webhookAddr: string;
  logLevel: LevelWithSilent;
  /** Grace period for draining reconciles on SIGTERM (controller-runtime GracefulShutdownTimeout). */
  shutdownTimeoutSeconds: number;
  /**
   * PEM private key (as `stella keygen` writes it) that signs the OpenVEX documents of VexStatement
   * decisions; "" = decisions are stored unsigned (Signed=False).
   */
  signingKeyFile: string;
  /** Directory of the ingest write-ahead log (a volume: acknowledged samples survive a restart). */
  walDir: string;
  /** PEM serving certificate and key of the gRPC ingest; both "" = plaintext (loopback/tests only). */
  ingestTlsCertFile: string;
  ingestTlsKeyFile: string;
  /** PEM CA bundle of agent client certificates; set = mTLS (agents without a valid certificate are refused). */
  ingestClientCaFile: string;
  /** Serve the rollout-gating admission webhook on `webhookAddr` (the chart sets it with webhook.enabled). */
  webhookEnabled: boolean;
  /**
   * Where the webhook's serving certificate comes from: "self-signed" (the operator keeps a CA and certificate in
   * `webhookTlsSecret`, renews them and patches the caBundle of `webhookConfiguration`) or "cert-manager" (it
   * reads tls.crt/tls.key from `webhookCertDir`, a mounted Secret that cert-manager fills, and reloads on change).
   */
  webhookCertMode: "self-signed" | "cert-manager";
  /** Secret (in `namespace`) holding the webhook's serving certificate. */
  webhookTlsSecret: string;
  /** Service in front of the webhook: its DNS names go into the self-signed certificate. */
  webhookService: string;
  /** ValidatingWebhookConfiguration whose caBundle the operator patches in self-signed mode. */
  webhookConfiguration: string;
  /** Directory with tls.crt and tls.key (cert-manager mode). */
  webhookCertDir: string;
  /** Extra subject alternative names (comma-separated DNS names or IPs) for the self-signed certificate. */
  webhookCertExtraSans: string;
  /** Cluster DNS domain, for the certificate's fully qualified Service name. */
  clusterDomain: string;
  /** policy.yaml (docs/delta-risk.md) for delta_risk weights and thresholds; "" = the built-in defaults. */
  riskPolicyFile: string;
  /** How far back the agents' samples count when the webhook weighs changed functions by hotness (seconds). */
  hotnessWindowSeconds: number;
}

export const DEFAULT_CONFIG: Readonly<OperatorConfig> = Object.freeze({
  namespace: "stella-system",
  leaderElect: true,
  leaseName: "stella-operator",
  // client-go's leader-election defaults.
  leaseDurationSeconds: 15,
  renewDeadlineSeconds: 10,
  retryPeriodSeconds: 2,
  metricsAddr: ":8080",
  healthAddr: ":8081",
  trustedKeysSecret: "stella-trusted-keys",
  workers: 2,
  ingestAddr: ":9090",
  webhookAddr: ":9443",
  logLevel: "info",
  shutdownTimeoutSeconds: 30,
  signingKeyFile: "",
  walDir: "/var/lib/stella/wal",
  ingestTlsCertFile: "",
  ingestTlsKeyFile: "",
  ingestClientCaFile: "",
  webhookEnabled: false,
  webhookCertMode: "self-signed",
  webhookTlsSecret: "stella-webhook-tls",
  webhookService: "stella-webhook",
  webhookConfiguration: "stella-rollout-gate",
  webhookCertDir: "/etc/stella/webhook-tls",
  webhookCertExtraSans: "",
  clusterDomain: "cluster.local",
  riskPolicyFile: "",
  hotnessWindowSeconds: 3600,
});

export class ConfigError extends StellaError<"INVALID_CONFIG"> {
  /** The offending field (`keyof OperatorConfig`) or, for unknown input, the flag/key as given. */
  readonly field: string;

  constructor(field: string, message: string) {
    super("INVALID_CONFIG", `invalid configuration: ${field}: ${message}`);
    this.field = field;
  }
}

type Kind = "string" | "bool" | "int";

interface FieldSpec {
  kind: Kind;
  env: string;
  flags: readonly string[];
}

const FIELDS: { readonly [K in keyof OperatorConfig]: FieldSpec } = {
  namespace: { kind: "string", env: "STELLA_NAMESPACE", flags: ["namespace"] },
  leaderElect: { kind: "bool", env: "STELLA_LEADER_ELECT", flags: ["leader-elect"] },
  leaseName: { kind: "string", env: "STELLA_LEASE_NAME", flags: ["lease-name", "leader-election-id"] },
  leaseDurationSeconds: {
    kind: "int",
    env: "STELLA_LEASE_DURATION_SECONDS",
    flags: ["lease-duration-seconds"],
  },
  renewDeadlineSeconds: {
    kind: "int",
    env: "STELLA_RENEW_DEADLINE_SECONDS",
    flags: ["renew-deadline-seconds"],
  },
  retryPeriodSeconds: { kind: "int", env: "STELLA_RETRY_PERIOD_SECONDS", flags: ["retry-period-seconds"] },
  metricsAddr: {
    kind: "string",
    env: "STELLA_METRICS_ADDR",
    flags: ["metrics-addr", "metrics-bind-address"],
  },
  healthAddr: {
    kind: "string",
    env: "STELLA_HEALTH_ADDR",
    flags: ["health-addr", "health-probe-bind-address"],
  },
  trustedKeysSecret: { kind: "string", env: "STELLA_TRUSTED_KEYS_SECRET", flags: ["trusted-keys-secret"] },
  workers: { kind: "int", env: "STELLA_WORKERS", flags: ["workers"] },
  ingestAddr: { kind: "string", env: "STELLA_INGEST_ADDR", flags: ["ingest-addr"] },
  webhookAddr: { kind: "string", env: "STELLA_WEBHOOK_ADDR", flags: ["webhook-addr"] },
  logLevel: { kind: "string", env: "STELLA_LOG_LEVEL", flags: ["log-level"] },
  shutdownTimeoutSeconds: {
    kind: "int",
    env: "STELLA_SHUTDOWN_TIMEOUT_SECONDS",
    flags: ["shutdown-timeout-seconds"],
  },
  signingKeyFile: { kind: "string", env: "STELLA_SIGNING_KEY_FILE", flags: ["signing-key-file"] },
  walDir: { kind: "string", env: "STELLA_WAL_DIR", flags: ["wal-dir"] },
  ingestTlsCertFile: { kind: "string", env: "STELLA_INGEST_TLS_CERT_FILE", flags: ["ingest-tls-cert-file"] },
  ingestTlsKeyFile: { kind: "string", env: "STELLA_INGEST_TLS_KEY_FILE", flags: ["ingest-tls-key-file"] },
  ingestClientCaFile: {
    kind: "string",
    env: "STELLA_INGEST_CLIENT_CA_FILE",
    flags: ["ingest-client-ca-file"],
  },
  webhookEnabled: { kind: "bool", env: "STELLA_WEBHOOK_ENABLED", flags: ["webhook-enabled"] },
  webhookCertMode: { kind: "string", env: "STELLA_WEBHOOK_CERT_MODE", flags: ["webhook-cert-mode"] },
  webhookTlsSecret: { kind: "string", env: "STELLA_WEBHOOK_TLS_SECRET", flags: ["webhook-tls-secret"] },
  webhookService: { kind: "string", env: "STELLA_WEBHOOK_SERVICE", flags: ["webhook-service"] },
  webhookConfiguration: {
    kind: "string",
    env: "STELLA_WEBHOOK_CONFIGURATION",
    flags: ["webhook-configuration"],
  },
  webhookCertDir: { kind: "string", env: "STELLA_WEBHOOK_CERT_DIR", flags: ["webhook-cert-dir"] },
  webhookCertExtraSans: {
    kind: "string",
    env: "STELLA_WEBHOOK_CERT_EXTRA_SANS",
    flags: ["webhook-cert-extra-sans"],
  },
  clusterDomain: { kind: "string", env: "STELLA_CLUSTER_DOMAIN", flags: ["cluster-domain"] },
  riskPolicyFile: { kind: "string", env: "STELLA_RISK_POLICY_FILE", flags: ["risk-policy-file"] },
  hotnessWindowSeconds: {
    kind: "int",
    env: "STELLA_HOTNESS_WINDOW_SECONDS",
    flags: ["hotness-window-seconds"],
  },
};

const FIELD_NAMES = Object.keys(FIELDS) as (keyof OperatorConfig)[];

export interface LoadConfigOptions {
  /** Command-line arguments after the program name; default `process.argv.slice(2)`. */
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** Receives one message per ignored malformed environment variable. */
  warn?: (message: string) => void;
}

/** defaults ← environment ← flags, then `validateConfig`. */
export function loadConfig(options: LoadConfigOptions = {}): OperatorConfig {
  const env = options.env ?? process.env;
  const warn = options.warn ?? (() => undefined);
  const raw: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const field of FIELD_NAMES) {
    const spec = FIELDS[field];
    const text = env[spec.env];
    if (text === undefined || text.trim() === "") continue;
    const parsed = parseValue(spec.kind, text.trim());
    if (parsed.ok) {
      const check = checkField(field, parsed.value);
      if (check === undefined) {
        raw[field] = parsed.value;
        continue;
      }
      warn(
        `${spec.env}=${JSON.stringify(text)} ignored (${check}); using default ${JSON.stringify(DEFAULT_CONFIG[field])}`,
      );
    } else {
      warn(
        `${spec.env}=${JSON.stringify(text)} ignored (${parsed.error}); using default ${JSON.stringify(DEFAULT_CONFIG[field])}`,
      );
    }
  }
  Object.assign(raw, parseFlags(options.argv ?? process.argv.slice(2)));
  return validateConfig(raw);
}

/** Merges `overrides` over the defaults and validates (tests, programmatic use). */
export function resolveConfig(overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  return validateConfig({ ...DEFAULT_CONFIG, ...overrides });
}

/** Checks every field and the cross-field rules; throws ConfigError naming the first bad field. */
export function validateConfig(raw: Record<string, unknown>): OperatorConfig {
  for (const key of Object.keys(raw)) {
    if (!(key in FIELDS)) throw new ConfigError(key, "unknown option");
  }
  for (const field of FIELD_NAMES) {
    const problem = checkField(field, raw[field]);
    if (problem !== undefined) throw new ConfigError(field, problem);
  }
  const c = raw as unknown as OperatorConfig;
  if ((c.ingestTlsCertFile === "") !== (c.ingestTlsKeyFile === "")) {
    throw new ConfigError("ingestTlsCertFile", "ingestTlsCertFile and ingestTlsKeyFile go together");
  }
  if (c.ingestClientCaFile !== "" && c.ingestTlsCertFile === "") {
    throw new ConfigError("ingestClientCaFile", "mTLS needs ingestTlsCertFile and ingestTlsKeyFile too");
  }
  if (c.walDir === "") throw new ConfigError("walDir", "must name a directory");
  // client-go NewLeaderElector's rules.
  if (c.leaseDurationSeconds <= c.renewDeadlineSeconds) {
    throw new ConfigError("leaseDurationSeconds", "must be greater than renewDeadlineSeconds");
  }
  if (c.renewDeadlineSeconds <= 1.2 * c.retryPeriodSeconds) {
    throw new ConfigError("renewDeadlineSeconds", "must be greater than 1.2 × retryPeriodSeconds");
  }
  return { ...c };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The problem with one field's value, or undefined when it is valid. */
function checkField(field: keyof OperatorConfig, value: unknown): string | undefined {
  const spec = FIELDS[field];
  if (spec.kind === "bool") return typeof value === "boolean" ? undefined : "must be true or false";
  if (spec.kind === "int") {
    if (typeof value !== "number" || !Number.isSafeInteger(value)) return "must be an integer";
    if (field === "workers") return value >= 1 && value <= 64 ? undefined : "must be between 1 and 64";
    if (field === "shutdownTimeoutSeconds") return value >= 0 && value <= 3600 ? undefined : "must be 0…3600";
    if (field === "hotnessWindowSeconds") {
      return value >= 60 && value <= 7 * 86400 ? undefined : "must be between 60 and 604800 seconds";
    }
    return value >= 1 && value <= 3600 ? undefined : "must be between 1 and 3600 seconds";
  }
  if (typeof value !== "string") return "must be a string";
  switch (field) {
    case "namespace":
      return value.length <= 63 && DNS_LABEL.test(value)
        ? undefined
        : "must be a DNS-1123 label (a Namespace name)";
    case "leaseName":
    case "trustedKeysSecret":
    case "webhookTlsSecret":
    case "webhookConfiguration":
    case "clusterDomain":
      return value.length <= 253 && DNS_SUBDOMAIN.test(value)
        ? undefined
        : "must be a DNS-1123 subdomain (an object name)";
    case "metricsAddr":
      if (value === "0") return undefined;
      return addressProblem(value);
    case "webhookService":
      return value.length <= 63 && DNS_LABEL.test(value)
        ? undefined
        : "must be a DNS-1123 label (a Service name)";
    case "webhookCertMode":
      return value === "self-signed" || value === "cert-manager"
        ? undefined
        : "must be self-signed or cert-manager";
    case "webhookCertExtraSans":
      return value
        .split(",")
        .every((s) => s.trim() === "" || DNS_SUBDOMAIN.test(s.trim()) || isIP(s.trim()) !== 0)
        ? undefined
        : "must be comma-separated DNS names or IP addresses";
    case "healthAddr":
    case "ingestAddr":
    case "webhookAddr":
      return addressProblem(value);
    case "logLevel":
      return (LOG_LEVELS as readonly string[]).includes(value)
        ? undefined
        : `must be one of ${LOG_LEVELS.join(", ")}`;
    default:
      return undefined;
  }
}

function addressProblem(value: string): string | undefined {
  try {
    parseListenAddress(value);
    return undefined;
  } catch (err: unknown) {
    return err instanceof Error ? err.message : String(err);
  }
}

type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

function parseValue(kind: Kind, text: string): Parsed {
  switch (kind) {
    case "bool": {
      const t = text.toLowerCase();
      if (["true", "1", "yes"].includes(t)) return { ok: true, value: true };
      if (["false", "0", "no"].includes(t)) return { ok: true, value: false };
      return { ok: false, error: "not a boolean" };
    }
    case "int":
      return /^-?\d+$/.test(text)
        ? { ok: true, value: Number(text) }
        : { ok: false, error: "not an integer" };
    case "string":
      return { ok: true, value: text };
  }
}

const FLAG_TO_FIELD = new Map<string, keyof OperatorConfig>(
  FIELD_NAMES.flatMap((f) => FIELDS[f].flags.map((flag) => [flag, f] as const)),
);

function parseFlags(argv: readonly string[]): Partial<Record<keyof OperatorConfig, unknown>> {
  const out: Partial<Record<keyof OperatorConfig, unknown>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) throw new ConfigError(arg, "unexpected argument (flags are --name=value)");
    const eq = arg.indexOf("=");
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let negated = false;
    if (!FLAG_TO_FIELD.has(name) && name.startsWith("no-") && FLAG_TO_FIELD.has(name.slice(3))) {
      name = name.slice(3);
      negated = true;
    }
    const field = FLAG_TO_FIELD.get(name);
    if (field === undefined) throw new ConfigError(`--${name}`, "unknown flag");
    const spec = FIELDS[field];
    if (spec.kind === "bool") {
      if (negated) {
        if (value !== undefined) throw new ConfigError(field, `--no-${name} takes no value`);
        value = "false";
      }
      value ??= "true";
    } else {
      if (negated) throw new ConfigError(`--no-${name}`, "unknown flag");
      if (value === undefined) {
        value = argv[i + 1];
        i++;
        if (value === undefined) throw new ConfigError(field, `--${name} needs a value`);
      }
    }
    const parsed = parseValue(spec.kind, value);
    if (!parsed.ok) throw new ConfigError(field, `--${name}=${JSON.stringify(value)}: ${parsed.error}`);
    out[field] = parsed.value;
  }
  return out;
}

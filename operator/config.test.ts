import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, DEFAULT_CONFIG, loadConfig, resolveConfig } from "./config.ts";

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err: unknown) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, "INVALID_CONFIG");
    return err.field;
  }
  assert.fail("expected a ConfigError");
}

describe("operator config", () => {
  test("defaults are client-go's and the documented ones", () => {
    const c = loadConfig({ argv: [], env: {} });
    assert.deepEqual(c, {
      namespace: "stella-system",
      leaderElect: true,
      leaseName: "stella-operator",
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
    assert.deepEqual(resolveConfig(), c);
    assert.ok(Object.isFrozen(DEFAULT_CONFIG));
  });

  test("environment, then flags (flags win)", () => {
    const c = loadConfig({
      env: {
        STELLA_NAMESPACE: "ops",
        STELLA_WORKERS: "4",
        STELLA_LEADER_ELECT: "false",
        STELLA_LOG_LEVEL: "debug",
      },
      argv: [
        "--workers=8",
        "--leader-elect",
        "--metrics-bind-address",
        "127.0.0.1:9090",
        "--lease-name=op-lock",
      ],
    });
    assert.equal(c.namespace, "ops");
    assert.equal(c.workers, 8);
    assert.equal(c.leaderElect, true);
    assert.equal(c.metricsAddr, "127.0.0.1:9090");
    assert.equal(c.leaseName, "op-lock");
    assert.equal(c.logLevel, "debug");
    assert.equal(loadConfig({ env: {}, argv: ["--no-leader-elect"] }).leaderElect, false);
    assert.equal(loadConfig({ env: {}, argv: ["--leader-elect=false"] }).leaderElect, false);
    assert.equal(loadConfig({ env: {}, argv: ["--metrics-addr=0"] }).metricsAddr, "0");
  });

  test("a malformed environment variable warns and falls back to the default", () => {
    const warnings: string[] = [];
    const c = loadConfig({
      env: { STELLA_WORKERS: "lots", STELLA_NAMESPACE: "Not_A_Namespace", STELLA_HEALTH_ADDR: "8081" },
      argv: [],
      warn: (m) => warnings.push(m),
    });
    assert.equal(c.workers, 2);
    assert.equal(c.namespace, "stella-system");
    assert.equal(c.healthAddr, ":8081");
    assert.equal(warnings.length, 3);
    assert.match(warnings[0]!, /^STELLA_NAMESPACE="Not_A_Namespace" ignored/);
  });

  test("malformed flags and cross-field violations are errors naming the field", () => {
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--workers=zero"] })),
      "workers",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--workers=0"] })),
      "workers",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--health-addr=localhost"] })),
      "healthAddr",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--log-level=loud"] })),
      "logLevel",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--frobnicate=1"] })),
      "--frobnicate",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--namespace"] })),
      "namespace",
    );
    assert.equal(
      fieldOf(() => loadConfig({ env: {}, argv: ["--lease-duration-seconds=10"] })),
      "leaseDurationSeconds",
    );
    assert.equal(
      fieldOf(() => resolveConfig({ renewDeadlineSeconds: 5, retryPeriodSeconds: 5 })),
      "renewDeadlineSeconds",
    );
    assert.match(
      (() => {
        try {
          resolveConfig({ trustedKeysSecret: "UPPER" });
        } catch (err: unknown) {
          return String(err);
        }
        return "";
      })(),
      /trustedKeysSecret: must be a DNS-1123 subdomain/,
    );
  });
});

describe("operator config: signing key", () => {
  test("--signing-key-file and STELLA_SIGNING_KEY_FILE (flag wins)", () => {
    assert.equal(
      loadConfig({ argv: [], env: { STELLA_SIGNING_KEY_FILE: "/keys/env.pem" } }).signingKeyFile,
      "/keys/env.pem",
    );
    assert.equal(
      loadConfig({
        argv: ["--signing-key-file", "/keys/flag.pem"],
        env: { STELLA_SIGNING_KEY_FILE: "/keys/env.pem" },
      }).signingKeyFile,
      "/keys/flag.pem",
    );
  });
});

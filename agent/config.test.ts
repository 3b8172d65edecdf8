import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { AgentConfigError, loadAgentConfig } from "./config.ts";

describe("agent configuration", () => {
  it("defaults: 19 Hz, 10 s intervals, all processes, no operator, node from NODE_NAME", () => {
    const c = loadAgentConfig({ env: { NODE_NAME: "node-a" } });
    assert.equal(c.node, "node-a");
    assert.deepEqual(c.sampling, { frequencyHz: 19, intervalSeconds: 10, target: { all: true } });
    assert.equal(c.operator, undefined);
    assert.equal(c.attribution.kubernetes, "auto");
  });

  it("flags > file > environment > defaults", () => {
    const warnings: string[] = [];
    const c = loadAgentConfig({
      env: {
        NODE_NAME: "env-node",
        STELLA_SAMPLE_FREQUENCY_HZ: "49",
        STELLA_OPERATOR_ADDR: "ingest.stella-system.svc:9090",
        STELLA_HOST_CGROUP_ROOT: "/host/sys/fs/cgroup",
      },
      fileText: [
        "node: file-node",
        "sampling:",
        "  intervalSeconds: 5",
        "  dutyCycle: {onSeconds: 60, periodSeconds: 300}",
        "operator:",
        "  tls: {caFile: /etc/stella/ca.crt, certFile: /etc/stella/tls.crt, keyFile: /etc/stella/tls.key}",
        "  maxBufferBytes: 1048576",
      ].join("\n"),
      overrides: { node: "flag-node", metricsAddr: "127.0.0.1:0" },
      warn: (m) => warnings.push(m),
    });
    assert.equal(c.node, "flag-node");
    assert.equal(c.sampling.frequencyHz, 49, "env, not overridden by the file");
    assert.equal(c.sampling.intervalSeconds, 5);
    assert.deepEqual(c.sampling.dutyCycle, { onSeconds: 60, periodSeconds: 300 });
    assert.equal(c.operator?.address, "ingest.stella-system.svc:9090", "address from env, TLS from file");
    assert.deepEqual(c.operator?.tls, {
      caFile: "/etc/stella/ca.crt",
      certFile: "/etc/stella/tls.crt",
      keyFile: "/etc/stella/tls.key",
    });
    assert.equal(c.operator?.maxBufferBytes, 1048576);
    assert.equal(c.attribution.cgroupRoot, "/host/sys/fs/cgroup");
    assert.equal(c.metricsAddr, "127.0.0.1:0");
    assert.deepEqual(warnings, []);
  });

  it("a malformed environment value warns and falls back", () => {
    const warnings: string[] = [];
    const c = loadAgentConfig({ env: { STELLA_SAMPLE_FREQUENCY_HZ: "fast" }, warn: (m) => warnings.push(m) });
    assert.equal(c.sampling.frequencyHz, 19);
    assert.match(warnings[0] ?? "", /STELLA_SAMPLE_FREQUENCY_HZ="fast"/);
  });

  const bad: [string, string, RegExp][] = [
    ["sampling: {frequencyHz: 0}", "sampling.frequencyHz", /\[1, 10000\]/],
    [
      "sampling: {dutyCycle: {onSeconds: 400, periodSeconds: 300}}",
      "sampling.dutyCycle.onSeconds",
      /<= periodSeconds/,
    ],
    ["sampling: {target: {pid: 1, cgroup: /x}}", "sampling.target", /exclude/],
    ["sampling: {hz: 99}", "sampling.hz", /unknown field/],
    ["operator: {address: a:1, tls: {certFile: /c}}", "operator.tls.caFile", /non-empty/],
    ["operator: {address: a:1, tls: {caFile: /ca, certFile: /c}}", "operator.tls.certFile", /go together/],
    ["operator: {address: a:1, tls: {insecure: true, caFile: /ca}}", "operator.tls.insecure", /excludes/],
    ["metricsAddr: nonsense", "metricsAddr", /host:port/],
    ["logLevel: loud", "logLevel", /one of/],
    ["- a list", "(root)", /mapping/],
  ];
  for (const [text, field, msg] of bad) {
    it(`rejects ${text} naming ${field} and the file`, () => {
      assert.throws(
        () => loadAgentConfig({ env: {}, fileText: text, fileName: "agent.yaml" }),
        (e) => e instanceof AgentConfigError && e.field === `agent.yaml: ${field}` && msg.test(e.message),
      );
    });
  }

  it("invalid YAML names the file", () => {
    assert.throws(
      () => loadAgentConfig({ env: {}, fileText: "sampling: [", fileName: "/etc/stella/agent.yaml" }),
      /\/etc\/stella\/agent.yaml: not valid YAML/,
    );
  });
});

// The CRDs on a real kube-apiserver: they install and reach Established, the examples are accepted,
// and every write that violates a schema or CEL rule is rejected with the field named.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { stringify } from "yaml";

import { EXAMPLES, INVALID_WRITES, type StellaObject } from "../crds/examples.ts";
import { startControlPlane, type ControlPlane } from "./harness/control-plane.ts";
import { installCrds, kubectl, kubectlOk } from "./helpers/kubectl.ts";

let cp: ControlPlane;
// The namespace the namespaced examples of crds/examples.ts use.
const NS = "shop";

before(async () => {
  cp = await startControlPlane();
  installCrds(cp);
  kubectlOk(cp, ["create", "namespace", NS]);
});

after(async () => {
  await cp?.stop();
});

function yamlOf(o: unknown): string {
  return stringify(o);
}

function nsArgs(o: unknown): string[] {
  const kind = (o as { kind?: string }).kind;
  return kind === "VexStatement" ? ["-n", NS] : [];
}

function withoutStatus(o: StellaObject): unknown {
  const copy: Record<string, unknown> = structuredClone(o) as unknown as Record<string, unknown>;
  delete copy.status;
  return copy;
}

describe("CRDs on a real API server", () => {
  it("lists the four kinds with their short names", () => {
    const out = kubectlOk(cp, ["api-resources", "--api-group=evidence.stella-ops.org", "-o", "wide"]);
    for (const [plural, short] of [
      ["funcproofs", "fp"],
      ["vexstatements", "vex"],
      ["deltaattestations", "da"],
      ["rolloutgates", "rg"],
    ]) {
      assert.match(out, new RegExp(`^${plural}\\s+${short}\\s`, "m"), plural);
    }
  });

  it("accepts every example (server-side dry run)", () => {
    for (const ex of EXAMPLES) {
      const r = kubectl(
        cp,
        ["create", "--dry-run=server", ...nsArgs(ex), "-f", "-"],
        yamlOf(withoutStatus(ex)),
      );
      assert.equal(r.code, 0, `${ex.kind}: ${r.stderr}`);
    }
  });

  it("rejects every invalid write with the rule's message", () => {
    const failures: string[] = [];
    for (const [i, w] of INVALID_WRITES.entries()) {
      const obj = structuredClone(w.object) as { metadata?: { name?: string } };
      let r;
      if (w.op === "create") {
        r = kubectl(cp, ["create", "--dry-run=server", ...nsArgs(obj), "-f", "-"], yamlOf(obj));
      } else {
        // A fresh name per case so earlier cases never interfere.
        const base = structuredClone(w.base) as StellaObject;
        const name = base.kind === "FuncProof" ? base.metadata?.name : `case-${i}`;
        if (base.metadata) base.metadata.name = name;
        if (obj.metadata) obj.metadata.name = name;
        kubectl(cp, ["delete", "--ignore-not-found", ...nsArgs(base), base.kind.toLowerCase(), name ?? ""]);
        kubectlOk(cp, ["create", ...nsArgs(base), "-f", "-"], yamlOf(withoutStatus(base)));
        const args = w.op === "status" ? ["replace", "--subresource=status"] : ["replace"];
        const current = JSON.parse(
          kubectlOk(cp, ["get", ...nsArgs(base), base.kind.toLowerCase(), name ?? "", "-o", "json"]),
        ) as { metadata: { resourceVersion: string } };
        (obj.metadata as { resourceVersion?: string }).resourceVersion = current.metadata.resourceVersion;
        r = kubectl(cp, [...args, ...nsArgs(base), "-f", "-"], yamlOf(obj));
      }
      if (r.code === 0) failures.push(`${w.name}: accepted`);
      else if (!r.stderr.includes(w.expect))
        failures.push(`${w.name}: error lacks "${w.expect}": ${r.stderr.trim()}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${INVALID_WRITES.length} invalid writes misjudged`);
  });
});

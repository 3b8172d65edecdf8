// kubectl against a test control plane: the same client people use, so e2e tests see what they would.
import { spawnSync } from "node:child_process";

import type { ControlPlane } from "../harness/control-plane.ts";
import { toolPath } from "../harness/tools.ts";

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectl(cp: ControlPlane, args: string[], input?: string): KubectlResult {
  const r = spawnSync(toolPath("kubectl"), ["--kubeconfig", cp.kubeconfigPath, ...args], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** kubectl that must succeed; the error carries kubectl's stderr. */
export function kubectlOk(cp: ControlPlane, args: string[], input?: string): string {
  const r = kubectl(cp, args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Applies the CRDs of crds/ and waits until every one is Established. */
export function installCrds(cp: ControlPlane): void {
  const dir = new URL("../../crds/", import.meta.url).pathname;
  kubectlOk(cp, ["apply", "--server-side", "-f", dir]);
  kubectlOk(cp, ["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
}

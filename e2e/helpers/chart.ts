// The Helm chart as the e2e suites use it: rendered with the helm built into e2e/.cache, and the agent's
// identity (ServiceAccount + the RBAC bound to it) applied exactly as the chart renders it.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

import type { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";

import type { ControlPlane } from "../harness/control-plane.ts";
import { toolPath } from "../harness/tools.ts";
import { kubectlOk } from "./kubectl.ts";

export const CHART_DIR = join(new URL("../../", import.meta.url).pathname, "charts/stella");

export interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec?: { template?: { spec?: { serviceAccountName?: string } } };
  subjects?: { kind: string; name: string }[];
  roleRef?: { name: string };
  data?: Record<string, string>;
}

export function helm(...args: string[]): string {
  const r = spawnSync(toolPath("helm"), args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** `helm template stella charts/stella -n NS [--set …]` as objects. */
export function renderChart(namespace: string, ...sets: string[]): K8sObject[] {
  const rendered = helm(
    "template",
    "stella",
    CHART_DIR,
    "--namespace",
    namespace,
    ...sets.flatMap((s) => ["--set", s]),
  );
  return parseAllDocuments(rendered)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/**
 * Applies the chart's agent ServiceAccount and the ClusterRoles bound to it, and returns a kubeconfig
 * with that ServiceAccount's token: what the DaemonSet's pods run as.
 */
export async function applyAgentIdentity(
  cp: ControlPlane,
  namespace: string,
): Promise<{ kubeConfig: KubeConfig; serviceAccount: string; manifests: K8sObject[] }> {
  const manifests = renderChart(namespace);
  const ds = manifests.find((m) => m.kind === "DaemonSet");
  const serviceAccount = ds?.spec?.template?.spec?.serviceAccountName ?? "";
  if (serviceAccount === "") throw new Error("the chart's agent DaemonSet names no ServiceAccount");
  const bindings = manifests.filter(
    (m) =>
      m.kind === "ClusterRoleBinding" &&
      m.subjects?.some((s) => s.kind === "ServiceAccount" && s.name === serviceAccount),
  );
  const roles = manifests.filter(
    (m) => m.kind === "ClusterRole" && bindings.some((b) => b.roleRef?.name === m.metadata.name),
  );
  const sa = manifests.filter((m) => m.kind === "ServiceAccount" && m.metadata.name === serviceAccount);
  if (sa.length !== 1 || roles.length === 0)
    throw new Error("the chart renders no agent ServiceAccount or ClusterRole");
  kubectlOk(
    cp,
    ["apply", "--server-side", "-n", namespace, "-f", "-"],
    [...sa, ...roles, ...bindings].map((m) => stringify(m)).join("---\n"),
  );
  return {
    kubeConfig: await cp.serviceAccountKubeConfig(namespace, serviceAccount),
    serviceAccount,
    manifests,
  };
}

/** The operator as the chart's Deployment runs it: its command line, environment and ServiceAccount. */
export interface OperatorIdentity {
  args: string[];
  /** Literal env values (fieldRef ones, e.g. STELLA_NAMESPACE, fall back to the operator's defaults). */
  env: Record<string, string>;
  serviceAccount: string;
  kubeConfig: KubeConfig;
}

/**
 * Applies the chart's ServiceAccounts and RBAC (`manifests` rendered for `namespace`) and returns how the chart
 * runs the operator, with a kubeconfig holding its ServiceAccount's token: a process started with it has exactly
 * the chart's permissions.
 */
export async function applyOperatorIdentity(
  cp: ControlPlane,
  namespace: string,
  manifests: readonly K8sObject[],
): Promise<OperatorIdentity> {
  const identity = manifests.filter((m) =>
    ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].includes(m.kind),
  );
  kubectlOk(
    cp,
    ["apply", "--server-side", "-n", namespace, "-f", "-"],
    identity.map((m) => stringify(m)).join("---\n"),
  );
  const dep = manifests.find((m) => m.kind === "Deployment") as unknown as {
    spec: {
      template: {
        spec: {
          serviceAccountName: string;
          containers: { args: string[]; env: { name: string; value?: string }[] }[];
        };
      };
    };
  };
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  if (c === undefined) throw new Error("the chart's operator Deployment has no container");
  const env: Record<string, string> = {};
  for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
  return {
    args: c.args,
    env,
    serviceAccount: pod.serviceAccountName,
    kubeConfig: await cp.serviceAccountKubeConfig(namespace, pod.serviceAccountName),
  };
}

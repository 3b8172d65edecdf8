/**
 * `stella vex export NAME`: fetches the signed OpenVEX document of a VexStatement (a DSSE envelope holding
 * an in-toto Statement, verifiable with `stella attest verify --key PUB`) or its evidence pack, from the
 * ConfigMap the operator writes (`vex-<name>`), through the default kubeconfig.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

import type { KubeConfig } from "@kubernetes/client-node";
import type { Command } from "commander";

import { StellaError } from "../../core/errors.ts";
import { VEX_ENVELOPE_KEY, VEX_EVIDENCE_KEY, vexBundleName } from "../../core/vex/bundle-names.ts";
import { action, printOut } from "../action.ts";
import { EXIT_INPUT, EXIT_OK } from "../exit-codes.ts";

// The VexStatement API (crds/schema/vexstatement.ts); the CLI imports core only, so spelled out here.
const GROUP = "evidence.stella-ops.org";
const VERSION = "v1alpha1";
const PLURAL = "vexstatements";

export interface VexExportOptions {
  namespace?: string;
  out?: string;
  evidence?: boolean;
  json?: boolean;
}

/** What export reads; tests pass fakes. */
export interface VexExportApi {
  getStatement(namespace: string, name: string): Promise<VexStatementView | undefined>;
  getBundle(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  defaultNamespace(): string;
}

interface VexStatementView {
  status?: { vexStatus?: string; justification?: string; documentDigest?: string };
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const c of [e.code, e.statusCode, e.response?.statusCode]) if (typeof c === "number") return c;
  return undefined;
}

async function orUndefinedOn404<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err: unknown) {
    if (statusCode(err) === 404) return undefined;
    throw new StellaError("KUBE_API", `Kubernetes API: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Through a kubeconfig, by default the default one ($KUBECONFIG, ~/.kube/config, or in-cluster).
 * client-node is imported here, not at the top, so other commands do not pay for loading it.
 */
export async function kubeExportApi(kubeConfig?: KubeConfig): Promise<VexExportApi> {
  const { CoreV1Api, CustomObjectsApi, KubeConfig } = await import("@kubernetes/client-node");
  let kc = kubeConfig;
  if (kc === undefined) {
    kc = new KubeConfig();
    kc.loadFromDefault();
  }
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    getStatement: (namespace, name) =>
      orUndefinedOn404(
        custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }),
      ) as Promise<VexStatementView | undefined>,
    getBundle: async (namespace, name) =>
      (await orUndefinedOn404(core.readNamespacedConfigMap({ namespace, name: vexBundleName(name) })))?.data,
    defaultNamespace: () => kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default",
  };
}

function fail(message: string): number {
  process.stderr.write(`stella vex export: ${message}\n`);
  return EXIT_INPUT;
}

/** Runs the export; returns the exit code (0, or 3 when not found, not decided or not signed). */
export async function exportVex(name: string, opts: VexExportOptions, api: VexExportApi): Promise<number> {
  const namespace = opts.namespace ?? api.defaultNamespace();
  const where = `${namespace}/${name}`;
  const vs = await api.getStatement(namespace, name);
  if (vs === undefined) return fail(`VexStatement ${where} not found`);
  const status = vs.status ?? {};
  if (status.vexStatus === undefined) return fail(`VexStatement ${where} is not decided yet`);
  const data = await api.getBundle(namespace, name);
  if (data === undefined) {
    return fail(`ConfigMap ${namespace}/${vexBundleName(name)} with the decision of ${where} not found`);
  }
  const envelope = data[VEX_ENVELOPE_KEY];
  const evidence = data[VEX_EVIDENCE_KEY];
  if (opts.evidence === true && evidence === undefined) return fail(`${where} has no evidence pack stored`);
  if (opts.evidence !== true && envelope === undefined) {
    return fail(`${where} is decided (${status.vexStatus}) but not signed: the operator has no signing key`);
  }
  if (envelope !== undefined && status.documentDigest !== undefined) {
    const digest = `sha256:${createHash("sha256").update(envelope, "utf8").digest("hex")}`;
    if (digest !== status.documentDigest) {
      process.stderr.write(
        `stella vex export: warning: stored envelope ${digest} is not status.documentDigest ${status.documentDigest} (a decision is being written)\n`,
      );
    }
  }
  let text: string;
  if (opts.json === true) {
    text = JSON.stringify(
      {
        namespace,
        name,
        vexStatus: status.vexStatus,
        ...(status.justification !== undefined ? { justification: status.justification } : {}),
        ...(status.documentDigest !== undefined ? { documentDigest: status.documentDigest } : {}),
        ...(envelope !== undefined ? { envelope: JSON.parse(envelope) as unknown } : {}),
        ...(opts.evidence === true ? { evidence } : {}),
      },
      null,
      2,
    );
  } else {
    text = (opts.evidence === true ? evidence : envelope) ?? "";
  }
  if (!text.endsWith("\n")) text += "\n";
  if (opts.out !== undefined) writeFileSync(opts.out, text);
  else printOut(text);
  return EXIT_OK;
}

export function registerVex(
  program: Command,
  api: () => Promise<VexExportApi> = () => kubeExportApi(),
): void {
  const cmd = program.command("vex").description("OpenVEX decisions of VexStatement resources");
  cmd
    .command("export")
    .description(
      "Print the signed OpenVEX document (DSSE envelope, canonical JSON; verify with `stella attest verify --key PUB`) of a VexStatement, or with --evidence its evidence pack; exit 3 when it is not found, not decided or not signed",
    )
    .argument("<name>", "the VexStatement's name")
    .option("-n, --namespace <namespace>", "its namespace (default: the kubeconfig context's, else default)")
    .option("--out <file>", "write to this file instead of stdout")
    .option("--evidence", "the evidence pack (Markdown) instead of the envelope")
    .option(
      "--json",
      "print {namespace, name, vexStatus, justification, documentDigest, envelope[, evidence]}",
    )
    .action(action(async (name: string, opts: VexExportOptions) => exportVex(name, opts, await api())));
}

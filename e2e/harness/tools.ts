// Where the e2e binaries live: ${STELLA_E2E_CACHE:-<repo>/e2e/.cache}/bin, as e2e/tools/build.sh writes them.
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "../..");
export const cacheDir = resolve(process.env.STELLA_E2E_CACHE ?? join(repoRoot, "e2e/.cache"));
export const binDir = join(cacheDir, "bin");
export const buildScript = join(repoRoot, "e2e/tools/build.sh");

export type Tool = "etcd" | "kube-apiserver" | "kubectl" | "helm";
export const allTools: readonly Tool[] = ["etcd", "kube-apiserver", "kubectl", "helm"];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The tool from the e2e cache, else from PATH; throws with a hint if neither has it. */
export function toolPath(name: Tool): string {
  const cached = join(binDir, name);
  if (executable(cached)) return cached;
  for (const d of (process.env.PATH ?? "").split(delimiter)) {
    if (d && executable(join(d, name))) return join(d, name);
  }
  throw new Error(`${name} not found in ${binDir} or on PATH: run \`make e2e-tools\` (e2e/tools/build.sh)`);
}

/** Runs e2e/tools/build.sh for the tools missing from the cache (its output goes to our stderr). */
export function ensureTools(names: readonly Tool[] = allTools): void {
  const missing = names.filter((n) => !executable(join(binDir, n)));
  if (missing.length === 0) return;
  process.stderr.write(`[e2e] building ${missing.join(", ")} with e2e/tools/build.sh (cold: ~17 min)\n`);
  const r = spawnSync(buildScript, missing, { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0)
    throw new Error(`e2e/tools/build.sh ${missing.join(" ")} failed (${r.status ?? r.signal})`);
}

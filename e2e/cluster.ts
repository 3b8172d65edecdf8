// A local Kubernetes control plane (etcd + kube-apiserver, RBAC on) for people: it keeps running after this command
// exits, until `down`.
//
//   node e2e/cluster.ts up [--dir DIR]       start (builds the binaries with e2e/tools/build.sh if missing) and print
//                                            the `export` lines: eval "$(node e2e/cluster.ts up)"
//   node e2e/cluster.ts status [--dir DIR]   exit 0 if running and ready
//   node e2e/cluster.ts down [--dir DIR]     stop it and remove DIR
//
// DIR defaults to e2e/.cache/cluster (kubeconfig: DIR/kubeconfig). Make targets: cluster-up, cluster-down.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  probeReadyz,
  readClusterState,
  runningProcesses,
  startControlPlane,
  stopClusterDir,
} from "./harness/control-plane.ts";
import { binDir, cacheDir, ensureTools } from "./harness/tools.ts";

const usage = "usage: node e2e/cluster.ts up|down|status [--dir DIR]";

function say(line: string): void {
  process.stderr.write(`[cluster] ${line}\n`);
}

function printExports(kubeconfig: string): void {
  process.stdout.write(`export KUBECONFIG=${kubeconfig}\nexport PATH=${binDir}:$PATH\n`);
}

async function up(dir: string): Promise<number> {
  const s = readClusterState(dir);
  if (s?.phase === "running" && s.kubeconfigPath && runningProcesses(s).length === s.processes.length) {
    say(`already running: ${s.server ?? "?"} (dir ${dir})`);
    printExports(s.kubeconfigPath);
    return 0;
  }
  ensureTools();
  const cp = await startControlPlane({ dir, persist: true, existingKubeconfig: null, log: say });
  say(
    `ready in ${(cp.timings.totalMs / 1000).toFixed(1)} s: ${cp.server} ` +
      `(pids ${cp.processes.map((p) => `${p.name} ${p.pid}`).join(", ")}; logs in ${dir})`,
  );
  say("stop it with `make cluster-down` (node e2e/cluster.ts down)");
  printExports(cp.kubeconfigPath);
  return 0;
}

async function status(dir: string): Promise<number> {
  const s = readClusterState(dir);
  if (!s) {
    process.stdout.write(`no cluster in ${dir}\n`);
    return 1;
  }
  const running = new Set(runningProcesses(s).map((p) => p.pid));
  let ready = "not running";
  if (running.size > 0 && s.server) {
    try {
      const r = await probeReadyz(dir, s.server);
      ready = r.status === 200 ? "ready" : `not ready (/readyz ${r.status})`;
    } catch (e) {
      ready = `not ready (${(e as Error).message})`;
    }
  }
  const rows: [string, string][] = [
    ["dir", dir],
    ["server", s.server ?? "-"],
    ["kubeconfig", s.kubeconfigPath ?? "-"],
    ...s.processes.map((p): [string, string] => [
      p.name,
      `pid ${p.pid} ${running.has(p.pid) ? "running" : "gone"}`,
    ]),
    ["status", ready],
  ];
  process.stdout.write(rows.map(([k, v]) => `${`${k}:`.padEnd(16)}${v}\n`).join(""));
  return ready === "ready" ? 0 : 1;
}

async function down(dir: string): Promise<number> {
  const found = await stopClusterDir(dir, { remove: true, log: say });
  say(found ? `stopped; removed ${dir}` : `no cluster in ${dir}`);
  return 0;
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const dir = resolve(values.dir ?? join(cacheDir, "cluster"));
  const [cmd, ...rest] = positionals;
  if (values.help || rest.length > 0) {
    process.stdout.write(usage + "\n");
    return values.help ? 0 : 2;
  }
  switch (cmd) {
    case "up":
      return up(dir);
    case "down":
      return down(dir);
    case "status":
      return status(dir);
    default:
      process.stderr.write(usage + "\n");
      return 2;
  }
}

try {
  process.exitCode = await main();
} catch (e) {
  process.stderr.write(`[cluster] ${(e as Error).message}\n`);
  process.exitCode = 1;
}

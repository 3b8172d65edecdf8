// `make demo`: the whole loop on this machine in about two minutes (root: bpftrace).
//
//   build evidence ─▶ run ─▶ observe ─▶ decide
//   FuncProof of the unstripped apigw (signed) · apigw runs stripped in a pod's cgroup · the agent samples
//   it with bpftrace and streams stacks to the operator · the operator names the stripped frames from the
//   FuncProof and flips VexStatements: CVE-DEMO-0001 (parse_hdr, hot) → affected with its evidence pack,
//   CVE-DEMO-0002 (legacy_decode, present but never run) → not_affected after its window, CVE-DEMO-0003
//   (a symbol the binary does not have) → not_affected / vulnerable_code_not_present.
//
// Ctrl-C (or the end) stops the agent, the operator and the control plane and removes every temporary file.
import { execFileSync } from "node:child_process";

import { ensureTools } from "../harness/tools.ts";
import { kubectlOk } from "../helpers/kubectl.ts";
import { DEMO_NS, startDemo, type Demo } from "./scenario.ts";

interface VexView {
  metadata: { name: string };
  spec: { vulnerability: { id: string }; symbols: { name: string }[] };
  status?: {
    vexStatus?: string;
    justification?: string;
    evidence?: { samples?: number; cpuSharePermille?: number; pods?: string[]; topStacks?: string[] };
  };
}

const STATEMENTS: [string, string, string[]][] = [
  ["cve-demo-0001", "CVE-DEMO-0001", ["parse_hdr"]],
  ["cve-demo-0002", "CVE-DEMO-0002", ["legacy_decode"]],
  ["cve-demo-0003", "CVE-DEMO-0003", ["ssl3_get_record"]],
];
const SETTLED: Record<string, string> = {
  "cve-demo-0001": "affected",
  "cve-demo-0002": "not_affected",
  "cve-demo-0003": "not_affected",
};
const TIMEOUT_MS = 240_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  if (process.geteuid?.() !== 0) {
    process.stderr.write("make demo needs root: bpftrace samples this machine (sudo make demo)\n");
    return 2;
  }
  ensureTools();
  let demo: Demo | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    demo = await startDemo({
      log: (l) => {
        say(`» ${l}`);
      },
    });
    say(`» apigw: BuildID ${demo.buildId}, image ${demo.imageDigest.slice(0, 19)}…, pid ${demo.workloadPid}`);
    for (const [name, cve, symbols] of STATEMENTS) demo.applyStatement(name, cve, symbols);
    say("» VexStatements applied (kubectl get vex -n shop); waiting for decisions…\n");
    const t0 = Date.now();
    const last = new Map<string, string>();
    while (!interrupted && Date.now() - t0 < TIMEOUT_MS) {
      const list = JSON.parse(kubectlOk(demo.cp, ["get", "vex", "-n", DEMO_NS, "-o", "json"])) as {
        items: VexView[];
      };
      for (const v of list.items) {
        const st = v.status?.vexStatus ?? "under_investigation";
        const shown = `${st}${v.status?.justification ? ` / ${v.status.justification}` : ""}`;
        if (last.get(v.metadata.name) === shown) continue;
        last.set(v.metadata.name, shown);
        const secs = ((Date.now() - t0) / 1000).toFixed(1);
        say(
          `[+${secs}s] ${v.spec.vulnerability.id} (${v.spec.symbols.map((s) => s.name).join(", ")}): ${shown}`,
        );
        if (st !== "under_investigation") {
          const pack = execFileSync(
            process.execPath,
            [
              new URL("../../cli/stella.ts", import.meta.url).pathname,
              "vex",
              "export",
              v.metadata.name,
              "-n",
              DEMO_NS,
              "--evidence",
            ],
            { encoding: "utf8", env: { ...process.env, KUBECONFIG: `${demo.dir}/admin.kubeconfig` } },
          );
          say(pack.replace(/^/gm, "    "));
        }
      }
      if ([...Object.entries(SETTLED)].every(([n, s]) => last.get(n)?.startsWith(s))) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const ok = [...Object.entries(SETTLED)].every(([n, s]) => last.get(n)?.startsWith(s));
    say(
      ok
        ? `\n» done in ${((Date.now() - t0) / 1000).toFixed(0)} s. Export a signed OpenVEX document with:\n` +
            "    stella vex export cve-demo-0001 -n shop --out vex.dsse.json && stella attest verify --key operator.pub vex.dsse.json"
        : interrupted
          ? "\n» interrupted"
          : "\n» not settled in time; see the operator and agent logs above",
    );
    return ok || interrupted ? 0 : 1;
  } finally {
    say("» stopping the agent, the operator and the control plane");
    await demo?.stop();
  }
}

process.exitCode = await main();

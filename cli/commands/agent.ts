import { writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

import { InvalidArgumentError, Option, type Command } from "commander";

import { canonicalJson } from "../../core/canonical-json.ts";
import { StellaError } from "../../core/errors.ts";
import type { LocalSample } from "../../agent/pipeline/aggregator.ts";
import { toFolded } from "../../agent/pipeline/folded.ts";
import type { WireFrame } from "../../agent/pipeline/wire.ts";
import { record, type RecordTarget, type Recording } from "../../agent/record.ts";
import { standaloneAttribution } from "../../agent/standalone.ts";
import { runAgent } from "../../agent/main.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE } from "../exit-codes.ts";
import { progress } from "../options.ts";

interface RecordFlags {
  pid?: number;
  cgroup?: string;
  cgroupRoot?: string;
  all?: boolean;
  duration: number;
  hz: number;
  intervalMs?: number;
  format: "folded" | "json";
  out?: string;
  kernel?: boolean;
  bpftrace?: string;
  json?: boolean;
}

interface RunFlags {
  config?: string;
  metricsAddr?: string;
  healthAddr?: string;
  logLevel?: string;
  operatorAddr?: string;
  node?: string;
}

function positiveInt(name: string, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`${name} must be an integer in [1, ${max}]`);
    return n;
  };
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400)
    throw new InvalidArgumentError("must be a number of seconds in (0, 86400]");
  return n;
}

/** Frames in the JSON output: the wire's fields with short kind names. */
function jsonFrame(f: WireFrame): Record<string, unknown> {
  const kind = f.kind.slice("KIND_".length).toLowerCase();
  if (f.kind === "KIND_UNRESOLVED") return { kind, reason: f.unresolvedReason };
  if (f.kind === "KIND_NATIVE") {
    const o: Record<string, unknown> = { kind, buildId: f.buildId, fileOffset: f.fileOffset };
    if (f.symbol !== undefined) Object.assign(o, { symbol: f.symbol, offset: f.offset });
    return o;
  }
  return { kind, symbol: f.symbol, offset: f.offset };
}

function jsonSample(s: LocalSample): Record<string, unknown> {
  return {
    pid: s.pid,
    comm: s.comm,
    count: s.count,
    attribution: {
      container: s.container,
      pod: s.pod,
      namespace: s.namespace,
      containerName: s.containerName,
      imageDigest: s.imageDigest,
    },
    frames: s.frames.map(jsonFrame),
  };
}

function recordingJson(r: Recording): string {
  const frames = r.agent.aggregator.framesResolved + r.agent.aggregator.framesUnresolved;
  return canonicalJson({
    window: r.window,
    hz: r.hz,
    endedEarly: r.endedEarly ?? null,
    samples: r.samples.map(jsonSample),
    stats: {
      samples: r.samples.reduce((n, s) => n + s.count, 0),
      stacks: r.samples.length,
      droppedSamples: r.droppedSamples,
      frames,
      unresolvedFrames: r.agent.aggregator.framesUnresolved,
      lostEvents: r.agent.lostEvents,
      bpftraceRestarts: r.agent.samplerRestarts,
      malformedLines: r.agent.badLines + r.agent.oversizeLines + r.agent.badKeys,
      symbolizer: r.symbolizer,
    },
  });
}

async function recordCommand(flags: RecordFlags): Promise<number> {
  const chosen = [flags.pid !== undefined, flags.cgroup !== undefined, flags.all === true].filter(Boolean);
  if (chosen.length > 1) {
    process.stderr.write("stella: --pid, --cgroup and --all exclude each other\n");
    return EXIT_USAGE;
  }
  const target: RecordTarget =
    flags.pid !== undefined
      ? { pid: flags.pid }
      : flags.cgroup !== undefined
        ? {
            cgroup: flags.cgroup,
            ...(flags.cgroupRoot !== undefined ? { cgroupRoot: flags.cgroupRoot } : {}),
          }
        : { all: true };
  const durationMs = Math.round(flags.duration * 1000);
  const bar = progress("record");
  const ac = new AbortController();
  const onSignal = (): void => {
    ac.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let rec: Recording;
  try {
    rec = await record({
      target,
      durationMs,
      hz: flags.hz,
      ...(flags.intervalMs !== undefined ? { intervalMs: flags.intervalMs } : {}),
      attribution: standaloneAttribution(),
      kernel: flags.kernel === true,
      ...(flags.bpftrace !== undefined ? { bpftracePath: flags.bpftrace } : {}),
      signal: ac.signal,
      onProgress: (ms) => {
        bar.update(Math.round(ms / 1000), Math.round(durationMs / 1000), "s");
      },
    });
  } finally {
    bar.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  const format = flags.json === true ? "json" : flags.format;
  const text = format === "json" ? `${recordingJson(rec)}\n` : toFolded(rec.samples);
  if (flags.out !== undefined) writeFileSync(flags.out, text);
  else if (text !== "") printOut(text);
  const total = rec.samples.reduce((n, s) => n + s.count, 0);
  process.stderr.write(
    `recorded ${total} samples, ${rec.samples.length} distinct stacks at ${rec.hz} Hz` +
      (rec.droppedSamples > 0
        ? `, ${rec.droppedSamples} dropped (process exited or nothing resolvable)`
        : "") +
      (rec.endedEarly === "pid-exited" ? "; the process exited" : "") +
      (flags.out !== undefined ? `; wrote ${flags.out}` : "") +
      "\n",
  );
  return EXIT_OK;
}

async function runCommand(flags: RunFlags): Promise<number> {
  let fileText: string | undefined;
  if (flags.config !== undefined) {
    try {
      fileText = await readFile(flags.config, "utf8");
    } catch (cause) {
      throw new StellaError("CONFIG_UNREADABLE", `${flags.config}: ${(cause as Error).message}`, { cause });
    }
  }
  return runAgent({
    ...(fileText !== undefined ? { fileText } : {}),
    ...(flags.config !== undefined ? { fileName: flags.config } : {}),
    overrides: {
      ...(flags.metricsAddr !== undefined ? { metricsAddr: flags.metricsAddr } : {}),
      ...(flags.healthAddr !== undefined ? { healthAddr: flags.healthAddr } : {}),
      ...(flags.logLevel !== undefined ? { logLevel: flags.logLevel } : {}),
      ...(flags.operatorAddr !== undefined ? { operatorAddr: flags.operatorAddr } : {}),
      ...(flags.node !== undefined ? { node: flags.node } : {}),
    },
  });
}

export function registerAgent(program: Command): void {
  const agent = program
    .command("agent")
    .description(
      "The eBPF node agent: sample stacks with bpftrace, symbolise and attribute them (needs root)",
    );

  agent
    .command("record")
    .description(
      "Sample this machine's user stacks for a while and print them: folded (flame-graph input: " +
        "'comm;root;…;leaf count', stripped code as [buildid+0xoffset]) or JSON (full frames with " +
        "buildId, fileOffset, symbol, offset and the attribution). Without --pid/--cgroup, every process " +
        "except this one.",
    )
    .option("--pid <pid>", "only this process", positiveInt("--pid", 2 ** 22))
    .option("--cgroup <path>", "only this cgroup v2 (a container's scope, or a pod slice: its subtree)")
    .option("--cgroup-root <dir>", "where cgroup v2 is mounted (default: from /proc/self/mountinfo)")
    .option("--all", "every process except this one (the default)")
    .option("--duration <seconds>", "how long to sample", seconds, 10)
    .option("--hz <n>", "samples per second per CPU", positiveInt("--hz", 10_000), 99)
    .option(
      "--interval-ms <ms>",
      "how often bpftrace hands over stacks",
      positiveInt("--interval-ms", 60_000),
    )
    .addOption(new Option("--format <format>", "output format").choices(["folded", "json"]).default("folded"))
    .option("--json", "same as --format json")
    .option("--out <file>", "write the output to a file instead of stdout")
    .option("--kernel", "resolve kernel addresses through /proc/kallsyms")
    .option("--bpftrace <path>", "the bpftrace binary", undefined)
    .addHelpText(
      "after",
      "\nExamples:\n  sudo stella agent record --pid 4242 --duration 30 > app.folded && flamegraph.pl app.folded > app.svg\n" +
        "  sudo stella agent record --all --hz 49 --duration 10 --format json | jq '.samples[0]'\n" +
        "\nExit codes: 0 recorded (possibly nothing), 2 bad flags, 3 bpftrace missing/too old/not permitted or a bad target.",
    )
    .action(action(recordCommand));

  agent
    .command("run")
    .description(
      "The DaemonSet's long-running mode: sample on the configured budget, attribute stacks to containers, " +
        "pods and images, ship them to the operator over gRPC, serve /metrics, /healthz and /readyz.",
    )
    .option("--config <file>", "agent configuration (YAML; see docs/agent.md)")
    .option("--metrics-addr <addr>", 'Prometheus /metrics address ("0" disables)')
    .option("--health-addr <addr>", "/healthz and /readyz address")
    .option("--log-level <level>", "trace, debug, info, warn, error, fatal or silent")
    .option("--operator-addr <host:port>", "the operator's gRPC ingest (overrides the config)")
    .option("--node <name>", "node name (default: $NODE_NAME or the host name)")
    .action(action(runCommand));
}

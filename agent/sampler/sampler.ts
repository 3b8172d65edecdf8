// The agent's sampler: owns a bpftrace child running ebpf/profile.bt and turns its JSON output into
// per-interval batches of raw user stacks. The child is spawned detached (its own process group) so
// shutdown can kill the whole group; a crashed child is restarted with exponential backoff.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Readable } from "node:stream";

import { StellaError } from "../../core/errors.ts";
import { BpftraceOutputParser, type ParserStats, type StackSample } from "./bpftrace-output.ts";

export type SamplerErrorCode =
  | "BPFTRACE_MISSING"
  | "BPFTRACE_TOO_OLD"
  | "BPFTRACE_NOT_PERMITTED"
  | "BPFTRACE_START_FAILED"
  | "SAMPLER_STATE";

/** The part of a child process the sampler uses (node's ChildProcess with piped stdio fits). */
export interface RunnerChild {
  readonly pid?: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  once(event: "close", listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: "error", listener: (err: Error) => void): this;
}

/** Seam over process creation, for tests. */
export interface ProcessRunner {
  spawn(
    command: string,
    args: readonly string[],
    options: { env: NodeJS.ProcessEnv; detached: boolean },
  ): RunnerChild;
  /** Signal a whole process group (pgid = the detached child's pid). */
  killGroup(pgid: number, signal: NodeJS.Signals): void;
}

export const nodeProcessRunner: ProcessRunner = {
  spawn(command, args, options) {
    return spawn(command, [...args], {
      env: options.env,
      detached: options.detached,
      stdio: ["ignore", "pipe", "pipe"],
    });
  },
  killGroup(pgid, signal) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // ESRCH: already gone.
    }
  },
};

/**
 * What to sample: one pid; every process except one (the agent); or the processes directly in one
 * cgroup v2 (its id is the inode number of its cgroupfs directory, what bpftrace's `cgroup` returns).
 */
export type SamplerFilter = { pid: number } | { all: true; excludePid: number } | { cgroupId: number };

export interface SamplerOptions {
  hz?: number;
  intervalMs?: number;
  /** Default: every process except this one. */
  filter?: SamplerFilter;
  onInterval: (stacks: StackSample[]) => void;
  /** A fatal error after start() resolved (the sampler stops). */
  onError?: (err: StellaError<SamplerErrorCode>) => void;
  runner?: ProcessRunner;
  bpftracePath?: string;
  scriptPath?: string;
  signal?: AbortSignal;
  /** Shut down on SIGTERM/SIGINT to this process. Default false (the agent's main decides). */
  handleSignals?: boolean;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Bound on kept stderr, bytes; default 64 KiB (the tail is kept). */
  maxStderrBytes?: number;
  /** Per-line cap of the JSON stream; default 16 MiB. */
  maxLineBytes?: number;
  /** Skip the euid check (e.g. CAP_BPF+CAP_PERFMON without root). */
  allowNonRoot?: boolean;
  /** Time to wait for a child to attach its probes; default 30 s. */
  startTimeoutMs?: number;
}

export interface SamplerStats {
  starts: number;
  restarts: number;
  crashes: number;
  /** Backoff delays used, in order. */
  backoffDelaysMs: number[];
  batches: number;
  parser: ParserStats;
}

const MIN_VERSION: readonly [number, number] = [0, 16];
/** ebpf/profile.bt at the package root: two levels up from source, three from the compiled dist/. */
const DEFAULT_SCRIPT =
  [new URL("../../ebpf/profile.bt", import.meta.url), new URL("../../../ebpf/profile.bt", import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((p) => existsSync(p)) ?? fileURLToPath(new URL("../../ebpf/profile.bt", import.meta.url));
const PERMISSION = /EPERM|Operation not permitted|Permission denied|must be run as root|CAP_SYS_ADMIN/i;

/** Parse "bpftrace v0.17.0" (or "v0.17.0-1"); undefined when there is no version. */
export function parseBpftraceVersion(text: string): [number, number, number] | undefined {
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

class BoundedTail {
  #chunks: Buffer[] = [];
  #bytes = 0;
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  push(b: Buffer): void {
    this.#chunks.push(b);
    this.#bytes += b.length;
    while (this.#bytes > this.#max && this.#chunks.length > 1) {
      const first = this.#chunks.shift();
      this.#bytes -= first?.length ?? 0;
    }
  }
  text(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - this.#max)).toString("utf8");
  }
}

export class Sampler {
  readonly stats: SamplerStats;
  readonly #opts: SamplerOptions;
  readonly #runner: ProcessRunner;
  readonly #bpftrace: string;
  #child: RunnerChild | undefined;
  #childPid: number | undefined;
  #childExited: Promise<void> = Promise.resolve();
  #stderr: BoundedTail;
  #parser: BpftraceOutputParser;
  #state: "idle" | "starting" | "running" | "stopping" | "stopped" = "idle";
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #signalHandler: (() => void) | undefined;
  #abortHandler: (() => void) | undefined;
  #exitHandler: (() => void) | undefined;
  #shutdown: Promise<void> | undefined;

  constructor(options: SamplerOptions) {
    this.#opts = options;
    this.#runner = options.runner ?? nodeProcessRunner;
    this.#bpftrace = options.bpftracePath ?? "bpftrace";
    this.#stderr = new BoundedTail(options.maxStderrBytes ?? 64 * 1024);
    this.#parser = this.#newParser();
    this.stats = {
      starts: 0,
      restarts: 0,
      crashes: 0,
      backoffDelaysMs: [],
      batches: 0,
      parser: this.#parser.stats,
    };
  }

  /** pid (= process group id) of the current bpftrace child. */
  get childPid(): number | undefined {
    return this.#childPid;
  }

  /** The kept tail of the current child's stderr. */
  get stderr(): string {
    return this.#stderr.text();
  }

  /** Checks bpftrace, spawns it and resolves once its probes are attached. */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new StellaError("SAMPLER_STATE", `sampler is ${this.#state}`);
    this.#state = "starting";
    try {
      if (this.#opts.signal?.aborted) throw new StellaError("SAMPLER_STATE", "aborted before start");
      await this.#checkAvailable();
      if (!this.#opts.allowNonRoot && typeof process.geteuid === "function" && process.geteuid() !== 0) {
        throw new StellaError(
          "BPFTRACE_NOT_PERMITTED",
          "bpftrace needs root (or CAP_BPF+CAP_PERFMON with allowNonRoot)",
        );
      }
      this.#installHandlers();
      await this.#spawnChild(true);
      if ((this.#state as string) === "starting") this.#state = "running";
    } catch (err) {
      await this.shutdown();
      throw err;
    }
  }

  /** Kills bpftrace and its process group; idempotent (concurrent calls share one shutdown). */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#doShutdown();
    return this.#shutdown;
  }

  async #doShutdown(): Promise<void> {
    this.#state = "stopping";
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#removeHandlers();
    const pid = this.#childPid;
    if (pid !== undefined) {
      const waitExit = (ms: number): Promise<boolean> =>
        Promise.race([
          this.#childExited.then(() => true),
          new Promise<boolean>((r) => {
            setTimeout(() => {
              r(false);
            }, ms).unref();
          }),
        ]);
      // SIGTERM: bpftrace prints the last partial interval and exits.
      this.#runner.killGroup(pid, "SIGTERM");
      await waitExit(3000);
      // Also reaps anything left in the group after the leader went.
      this.#runner.killGroup(pid, "SIGKILL");
      await waitExit(2000);
    }
    this.#childPid = undefined;
    this.#child = undefined;
    this.#state = "stopped";
  }

  #newParser(): BpftraceOutputParser {
    const opts = this.#opts.maxLineBytes === undefined ? {} : { maxLineBytes: this.#opts.maxLineBytes };
    return new BpftraceOutputParser(opts);
  }

  async #checkAvailable(): Promise<void> {
    const { out, error } = await new Promise<{ out: string; error: Error | undefined }>((resolve) => {
      let child: RunnerChild;
      try {
        child = this.#runner.spawn(this.#bpftrace, ["--version"], { env: process.env, detached: false });
      } catch (err) {
        resolve({ out: "", error: err instanceof Error ? err : new Error(String(err)) });
        return;
      }
      let text = "";
      const add = (b: Buffer): void => {
        if (text.length < 4096) text += b.toString("utf8");
      };
      child.stdout?.on("data", add);
      child.stderr?.on("data", add);
      child.once("error", (err) => {
        resolve({ out: text, error: err });
      });
      child.once("close", () => {
        resolve({ out: text, error: undefined });
      });
      setTimeout(() => {
        resolve({ out: text, error: new Error("bpftrace --version timed out") });
      }, 10_000).unref();
    });
    if (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EACCES") {
        throw new StellaError("BPFTRACE_MISSING", `bpftrace not found or not executable: ${this.#bpftrace}`, {
          cause: error,
        });
      }
      throw new StellaError("BPFTRACE_START_FAILED", `bpftrace --version failed: ${error.message}`, {
        cause: error,
      });
    }
    const v = parseBpftraceVersion(out);
    if (!v)
      throw new StellaError(
        "BPFTRACE_MISSING",
        `${this.#bpftrace} --version printed no version: ${out.trim()}`,
      );
    if (v[0] < MIN_VERSION[0] || (v[0] === MIN_VERSION[0] && v[1] < MIN_VERSION[1])) {
      throw new StellaError(
        "BPFTRACE_TOO_OLD",
        `bpftrace ${v.join(".")} is older than ${MIN_VERSION.join(".")}`,
      );
    }
  }

  #args(): string[] {
    const hz = this.#opts.hz ?? 99;
    const interval = this.#opts.intervalMs ?? 1000;
    const filter = this.#opts.filter ?? { all: true, excludePid: process.pid };
    const [mode, pid] =
      "all" in filter
        ? [1, filter.excludePid]
        : "cgroupId" in filter
          ? [2, filter.cgroupId]
          : [0, filter.pid];
    for (const [name, n] of [
      ["hz", hz],
      ["intervalMs", interval],
      ["pid or cgroup id", pid],
    ] as const) {
      if (!Number.isSafeInteger(n) || n < 0) throw new StellaError("SAMPLER_STATE", `bad ${name}: ${n}`);
    }
    const script = this.#opts.scriptPath ?? DEFAULT_SCRIPT;
    return ["-f", "json", script, String(hz), String(mode), String(pid), String(interval)];
  }

  /** Spawn one child; when `first`, resolve on attach / reject on early death. */
  #spawnChild(first: boolean): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, BPFTRACE_NO_USER_SYMBOLS: "1" };
    const args = this.#args();
    this.#stderr = new BoundedTail(this.#opts.maxStderrBytes ?? 64 * 1024);
    this.#parser = this.#newParser();
    this.stats.parser = this.#parser.stats;
    this.stats.starts++;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let startTimer: NodeJS.Timeout | undefined;
      const settle = (err?: StellaError<SamplerErrorCode>): void => {
        if (settled) return;
        settled = true;
        if (startTimer) clearTimeout(startTimer);
        if (err) reject(err);
        else resolve();
      };
      let child: RunnerChild;
      try {
        child = this.#runner.spawn(this.#bpftrace, args, { env, detached: true });
      } catch (err) {
        settle(new StellaError("BPFTRACE_START_FAILED", "spawn failed", { cause: err }));
        return;
      }
      this.#child = child;
      this.#childPid = child.pid;
      let markExited: () => void = () => {};
      this.#childExited = new Promise<void>((r) => (markExited = r));
      const parser = this.#parser;
      const stderr = this.#stderr;
      if (first) {
        startTimer = setTimeout(() => {
          settle(
            new StellaError("BPFTRACE_START_FAILED", `bpftrace did not attach: ${stderr.text().trim()}`),
          );
        }, this.#opts.startTimeoutMs ?? 30_000);
        startTimer.unref();
      }
      const onEvents = (events: ReturnType<BpftraceOutputParser["push"]>): void => {
        for (const ev of events) {
          if (ev.kind === "attached") settle();
          else if (ev.kind === "batch") {
            this.#attempt = 0;
            this.stats.batches++;
            // Also while stopping: on SIGTERM bpftrace prints the partial last interval before it exits.
            if (this.#state !== "stopped") this.#opts.onInterval(ev.samples);
          }
        }
      };
      child.stdout?.on("data", (b: Buffer) => {
        onEvents(parser.push(b));
      });
      child.stdout?.on("end", () => {
        onEvents(parser.end());
      });
      child.stderr?.on("data", (b: Buffer) => {
        stderr.push(b);
      });
      child.once("error", (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        const e =
          code === "ENOENT"
            ? new StellaError("BPFTRACE_MISSING", `bpftrace not found: ${this.#bpftrace}`, { cause: err })
            : new StellaError("BPFTRACE_START_FAILED", err.message, { cause: err });
        errored = true;
        markExited();
        if (first && !settled) settle(e);
        else {
          settle();
          this.#fatal(e);
        }
      });
      let errored = false;
      // "close": after the exit and after stdout/stderr have been drained.
      child.once("close", (code, signal) => {
        setImmediate(() => {
          markExited();
          if (errored) return;
          if (this.#child === child) {
            this.#child = undefined;
            this.#childPid = undefined;
          }
          if (this.#state === "stopping" || this.#state === "stopped") {
            settle();
            return;
          }
          const text = stderr.text();
          if (PERMISSION.test(text)) {
            const e = new StellaError<SamplerErrorCode>(
              "BPFTRACE_NOT_PERMITTED",
              `bpftrace not permitted: ${text.trim().slice(-500)}`,
            );
            if (first && !settled) {
              settle(e);
              return;
            }
            settle();
            this.#fatal(e);
            return;
          }
          if (first && !settled) {
            settle(
              new StellaError(
                "BPFTRACE_START_FAILED",
                `bpftrace exited (code ${code}, signal ${signal}) before attaching: ${text.trim().slice(-500)}`,
              ),
            );
            return;
          }
          settle();
          this.stats.crashes++;
          this.#scheduleRestart();
        });
      });
    });
  }

  #scheduleRestart(): void {
    const initial = this.#opts.backoff?.initialMs ?? 500;
    const max = this.#opts.backoff?.maxMs ?? 30_000;
    const delay = Math.min(max, initial * 2 ** this.#attempt);
    this.#attempt++;
    this.stats.backoffDelaysMs.push(delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#state !== "running") return;
      this.stats.restarts++;
      // A restart that dies before attaching counts as another crash (handled by the exit path).
      this.#spawnChild(false).catch(() => {});
    }, delay);
  }

  #fatal(err: StellaError<SamplerErrorCode>): void {
    void this.shutdown().then(() => this.#opts.onError?.(err));
  }

  #installHandlers(): void {
    const signal = this.#opts.signal;
    if (signal) {
      this.#abortHandler = () => void this.shutdown();
      signal.addEventListener("abort", this.#abortHandler, { once: true });
    }
    if (this.#opts.handleSignals) {
      this.#signalHandler = () => void this.shutdown();
      process.once("SIGTERM", this.#signalHandler);
      process.once("SIGINT", this.#signalHandler);
    }
    // Last resort: never leave bpftrace behind when the agent exits.
    this.#exitHandler = () => {
      if (this.#childPid !== undefined) this.#runner.killGroup(this.#childPid, "SIGKILL");
    };
    process.once("exit", this.#exitHandler);
  }

  #removeHandlers(): void {
    if (this.#abortHandler) this.#opts.signal?.removeEventListener("abort", this.#abortHandler);
    if (this.#signalHandler) {
      process.off("SIGTERM", this.#signalHandler);
      process.off("SIGINT", this.#signalHandler);
    }
    if (this.#exitHandler) process.off("exit", this.#exitHandler);
    this.#abortHandler = this.#signalHandler = this.#exitHandler = undefined;
  }
}

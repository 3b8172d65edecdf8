// Test helpers for running the oracle tools (readelf, nm, openssl, …) as child processes.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command; resolves also for non-zero exits (the caller decides), rejects when it cannot start. */
export async function run(cmd: string, args: string[], opts: { input?: string } = {}): Promise<RunResult> {
  try {
    const p = execFileAsync(cmd, args, { maxBuffer: 1 << 30, encoding: "utf8" });
    if (opts.input !== undefined) {
      p.child.stdin?.end(opts.input);
    }
    const { stdout, stderr } = await p;
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code === "number") return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code };
    throw new Error(
      `cannot run ${cmd}: ${(err as Error).message}. Is it installed? (.ci/run installs the oracles)`,
      {
        cause: err,
      },
    );
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// Test support: a real server binary (docker-registry, rekor-server) run as a child process on loopback, killed
// when the test process exits, its stderr kept in a file for error messages.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";

/** A loopback port free right now (the caller races other processes for it; good enough for tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

export interface ServerProcess {
  /** The last 8 KiB of the server's stderr. */
  log(): string;
  /** Polls `ready` every 50 ms until it says yes; throws with the log when the server exits or time runs out. */
  waitReady(ready: () => Promise<boolean>, timeoutMs: number): Promise<void>;
  /** SIGTERM, SIGKILL after 3 s. */
  stop(): Promise<void>;
}

/** Starts `binary args`; its stderr goes to `<logDir>/server.log`. */
export function spawnServer(
  name: string,
  binary: string,
  args: readonly string[],
  logDir: string,
): ServerProcess {
  // A file, not a pipe: a pipe fills while the parent is blocked (a test's spawnSync of the CLI) and stalls the
  // server mid-request.
  const logPath = join(logDir, "server.log");
  const logFd = openSync(logPath, "w");
  const child = spawn(binary, args, { stdio: ["ignore", "ignore", logFd] });
  closeSync(logFd);
  live.add(child);
  killAllOnExit();
  let exited = false;
  child.once("exit", () => {
    exited = true;
    live.delete(child);
  });
  child.once("error", () => {
    exited = true;
  });
  const log = (): string => {
    try {
      return readFileSync(logPath, "utf8").slice(-8192);
    } catch {
      return "";
    }
  };
  const stop = async (): Promise<void> => {
    if (exited) return;
    const done = new Promise<void>((resolve) => {
      child.once("exit", () => {
        resolve();
      });
    });
    child.kill("SIGTERM");
    const t = setTimeout(() => {
      child.kill("SIGKILL");
    }, 3000);
    await done;
    clearTimeout(t);
  };
  const waitReady = async (ready: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) throw new Error(`${name} exited during startup: ${log()}`);
      try {
        if (await ready()) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        const text = log();
        await stop();
        throw new Error(`${name} did not become ready within ${String(timeoutMs)} ms: ${text}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { log, waitReady, stop };
}

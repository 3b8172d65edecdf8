// Process-group helpers for the control-plane harness. etcd and kube-apiserver are spawned `detached` (setsid), so each
// runs as the leader of its own process group; we signal the group (negative pid), and before signalling a process we
// did not spawn ourselves (cluster-down, stale sweeps) we check that its command line still mentions the cluster dir, so
// a recycled pid is never hit.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const linux = process.platform === "linux";

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** True if pid exists and is not a zombie (a zombie's `kill(pid, 0)` still succeeds). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errno(e) === "EPERM";
  }
  if (!linux) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2).charAt(0);
    return state !== "Z" && state !== "X";
  } catch (e) {
    return errno(e) !== "ENOENT";
  }
}

/** The process's start time in clock ticks since boot (Linux), to tell a live owner from a recycled pid. */
export function startTime(pid: number): string | undefined {
  if (!linux) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** The command line, arguments joined with spaces; undefined if the process is gone. */
export function commandLine(pid: number): string | undefined {
  if (!isAlive(pid)) return undefined;
  try {
    if (linux) return readFileSync(`/proc/${pid}/cmdline`).toString("utf8").split("\0").join(" ");
    return execFileSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/** pid is alive and its command line contains marker (the cluster dir followed by a slash). */
export function isOurs(pid: number, marker: string): boolean {
  return commandLine(pid)?.includes(marker) ?? false;
}

/** Signals process group pgid; false if the group is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (e) {
    if (errno(e) === "ESRCH") return false;
    throw e;
  }
}

/** Signals one process; false if it is gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export interface GroupToStop {
  name: string;
  pid: number;
  /** For our own children: resolves once Node has reaped the process (then its pid is really gone). */
  exited?: Promise<unknown>;
}

async function gone(p: GroupToStop, marker: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  let reaped = false;
  void p.exited?.then(() => (reaped = true));
  while (true) {
    if (p.exited ? reaped : !isOurs(p.pid, marker)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
}

/**
 * SIGTERM the process group, wait up to graceMs for the leader to exit, then SIGKILL the group; finally SIGKILL
 * whatever is left in the group. Throws if the process survives SIGKILL for 5 s.
 */
export async function stopGroup(p: GroupToStop, marker: string, graceMs: number): Promise<void> {
  const ours = p.exited ? isAlive(p.pid) : isOurs(p.pid, marker);
  if (ours) {
    signalGroup(p.pid, "SIGTERM");
    if (!(await gone(p, marker, graceMs))) {
      signalGroup(p.pid, "SIGKILL");
      if (!(await gone(p, marker, 5000))) throw new Error(`${p.name} (pid ${p.pid}) survived SIGKILL`);
    }
  } else if (p.exited) {
    await gone(p, marker, 5000); // already dead: let Node reap it
  } else {
    return; // not (or no longer) ours: never signal a group we cannot vouch for
  }
  // Stragglers in the group (none for etcd/kube-apiserver, which don't fork). The pgid cannot have been recycled:
  // Linux does not hand out a pid that is still in use as a process-group id.
  signalGroup(p.pid, "SIGKILL");
}

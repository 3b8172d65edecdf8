// Finding bpftrace processes in tests. Test files run in parallel and several start bpftrace, so a test
// looks for its own: the children of the process that started it.
import { spawnSync } from "node:child_process";

function pgrep(args: string[]): number[] {
  return spawnSync("pgrep", args, { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => l !== "")
    .map(Number);
}

/** Every bpftrace on the machine. */
export function pgrepBpftrace(): number[] {
  return pgrep(["-x", "bpftrace"]);
}

/** The bpftrace processes whose parent is `pid`. */
export function bpftraceChildrenOf(pid: number): number[] {
  return pgrep(["-x", "-P", String(pid), "bpftrace"]);
}

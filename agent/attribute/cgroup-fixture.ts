/**
 * Test-only: real cgroups shaped like the ones kubelet and the runtimes create, with a `sleep` child moved into each
 * leaf, so attribution is tested against what the kernel really writes in /proc/PID/cgroup (used by
 * attributor.test.ts and e2e/attribution.e2e.test.ts; never imported by the agent).
 *
 * Needs root and a writable cgroup hierarchy. On a cgroup v2 host (`stat -fc %T /sys/fs/cgroup` = cgroup2fs) that is
 * /sys/fs/cgroup; on a hybrid host the v2 hierarchy is mounted at /sys/fs/cgroup/unified and v1 hierarchies beside
 * it; both are found through /proc/self/mountinfo. No controller is enabled in the test subtree, so cgroup v2's
 * "no internal processes" rule never applies; the children only ever live in leaves.
 *
 * cleanup() kills only the children it spawned, then removes leaves before parents, tolerating failures (a cgroup
 * whose last process has just exited can be EBUSY for a moment, so rmdir is retried briefly).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface CgroupMount {
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified or /sys/fs/cgroup/pids. */
  readonly mountPoint: string;
  readonly version: 1 | 2;
}

/** Finds a cgroup2 mount and, for v1, the mount of `controller`; undefined when absent. */
export function findCgroupMount(version: 1 | 2, controller = "pids"): CgroupMount | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    // proc(5): ID parent major:minor root mountpoint options [optional…] - fstype source superoptions
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const mountPoint = left[4];
    const fstype = right[0];
    const superOptions = (right[2] ?? "").split(",");
    if (mountPoint === undefined || left[3] !== "/") continue;
    if (version === 2 && fstype === "cgroup2") return { mountPoint, version };
    if (version === 1 && fstype === "cgroup" && superOptions.includes(controller))
      return { mountPoint, version };
  }
  return undefined;
}

/** Why real-cgroup tests cannot run here, or undefined when they can. */
export function cgroupSkipReason(version: 1 | 2): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to create cgroups";
  const m = findCgroupMount(version);
  if (m === undefined) return `no cgroup v${version} hierarchy mounted (see /proc/self/mountinfo)`;
  return undefined;
}

export const randomHex = (bytes: number): string => randomBytes(bytes).toString("hex");

/** A random pod UID in metadata.uid form. */
export function randomUid(): string {
  const h = randomHex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class CgroupFixture {
  readonly mount: CgroupMount;
  /** The top test cgroup, relative to the mount, e.g. `stella-test-1a2b3c.slice`. */
  readonly top: string;
  readonly #dirs: string[] = [];
  readonly #children: ChildProcess[] = [];

  constructor(mount: CgroupMount) {
    this.mount = mount;
    this.top = `stella-test-${randomHex(6)}.slice`;
  }

  /** mkdir each level of `top/segments…`; returns the leaf's absolute directory. */
  mkdirs(segments: readonly string[]): string {
    let dir = join(this.mount.mountPoint, this.top);
    for (const seg of ["", ...segments]) {
      if (seg !== "") dir = join(dir, seg);
      if (this.#dirs.includes(dir)) continue;
      mkdirSync(dir);
      this.#dirs.push(dir);
    }
    return dir;
  }

  /** Spawns `sleep 30` (or `command`) and moves it into `leafDir`; resolves with its pid once moved. */
  async spawnInto(leafDir: string, command = "sleep", args: readonly string[] = ["30"]): Promise<number> {
    const child = spawn(command, [...args], { stdio: "ignore" });
    this.#children.push(child);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("spawn", () => {
        resolve(child.pid ?? -1);
      });
      child.once("error", reject);
    });
    writeFileSync(join(leafDir, "cgroup.procs"), String(pid));
    return pid;
  }

  /** Kills one spawned child and waits until it has been reaped. */
  async kill(pid: number): Promise<void> {
    const child = this.#children.find((c) => c.pid === pid);
    if (child === undefined) return;
    await killAndWait(child);
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#children.map(killAndWait));
    for (const dir of [...this.#dirs].reverse()) {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err: unknown) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || attempt === 49) {
            process.emitWarning(`cgroup fixture: cannot remove ${dir}: ${String(err)}`);
            break;
          }
          await sleep(20);
        }
      }
    }
  }
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      resolve();
    }),
  );
  child.kill("SIGKILL");
  await exited;
}

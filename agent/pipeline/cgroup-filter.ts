// `--cgroup PATH`: sample one container (or a pod, or any cgroup v2 subtree).
//
// bpftrace's `cgroup` builtin is the task's cgroup v2 id, the inode number of its cgroupfs directory,
// and matches only tasks directly in that cgroup. So a leaf (a container's scope) is filtered in the
// kernel (nothing else is even sampled); a cgroup with children (a pod slice) samples every process and
// keeps, in userspace, those whose /proc/PID/cgroup v2 path lies under it.
import { readFileSync, readdirSync, statSync, statfsSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";

import { StellaError } from "../../core/errors.ts";
import type { SamplerFilter } from "../sampler/sampler.ts";

/** statfs f_type of cgroup v2 (linux/magic.h CGROUP2_SUPER_MAGIC). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

const ACCEPT_MEMO_MS = 5000;
const ACCEPT_MEMO_MAX_PIDS = 65_536;

export type CgroupFilterErrorCode = "CGROUP_NOT_FOUND" | "CGROUP_NOT_V2";

export interface CgroupFilter {
  /** What bpftrace filters on. */
  sampler: SamplerFilter;
  /** Userspace check, when the kernel filter is wider than the request. */
  accept?: (pid: number) => boolean;
  /** The cgroup's path as /proc/PID/cgroup shows it ("/kubepods.slice/…"). */
  cgroupPath: string;
  leaf: boolean;
}

/** Mount points of cgroup2 filesystems, from /proc/self/mountinfo (field 5 is the mount point). */
export function cgroup2Mounts(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    if (line.slice(dash + 3).split(" ")[0] !== "cgroup2") continue;
    const mp = line.slice(0, dash).split(" ")[4];
    // mountinfo escapes space, tab, newline and backslash as octal (\040 …).
    if (mp) out.push(mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** The process's cgroup v2 path ("0::/path" line), undefined when gone or absent. */
export function cgroupV2PathOf(pid: number, procRoot = "/proc"): string | undefined {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/cgroup`, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) if (line.startsWith("0::")) return line.slice(3);
  return undefined;
}

function isUnder(path: string, root: string): boolean {
  return root === "/" || path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

export interface CgroupFilterOptions {
  /** Where cgroup v2 is mounted; default: found in /proc/self/mountinfo. */
  cgroupRoot?: string;
  procRoot?: string;
  /** The agent's own pid, never sampled. */
  selfPid?: number;
}

/**
 * Resolve `--cgroup PATH`: an absolute cgroupfs directory (/sys/fs/cgroup/…) or a path as
 * /proc/PID/cgroup writes it (/kubepods.slice/…), taken relative to the cgroup v2 mount.
 */
export function resolveCgroupFilter(path: string, opts: CgroupFilterOptions = {}): CgroupFilter {
  const roots =
    opts.cgroupRoot !== undefined
      ? [opts.cgroupRoot]
      : cgroup2Mounts(readFileSync("/proc/self/mountinfo", "utf8"));
  if (roots.length === 0) throw new StellaError("CGROUP_NOT_V2", "no cgroup v2 filesystem is mounted");
  let dir: string | undefined;
  let root = roots[0] as string;
  for (const r of roots) {
    if (isAbsolute(path) && (path === r || path.startsWith(r.endsWith(sep) ? r : r + sep))) {
      dir = path;
      root = r;
      break;
    }
  }
  dir ??= join(root, path);
  let ino: number;
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new Error("not a directory");
    ino = st.ino;
  } catch (cause) {
    throw new StellaError("CGROUP_NOT_FOUND", `--cgroup ${path}: ${dir} is not a cgroup directory`, {
      cause,
    });
  }
  if (statfsSync(dir).type !== CGROUP2_SUPER_MAGIC)
    throw new StellaError("CGROUP_NOT_V2", `--cgroup ${path}: ${dir} is not on a cgroup v2 filesystem`);
  const rel = relative(root, dir);
  const cgroupPath = rel === "" ? "/" : `/${rel.split(sep).join("/")}`;
  const leaf = !readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory());
  if (leaf) return { sampler: { cgroupId: ino }, cgroupPath, leaf };
  const procRoot = opts.procRoot ?? "/proc";
  // One /proc read per pid per few seconds, not per stack; bounded (pids are reused, hence the expiry).
  const memo = new Map<number, { ok: boolean; at: number }>();
  return {
    sampler: { all: true, excludePid: opts.selfPid ?? process.pid },
    accept: (pid) => {
      const now = performance.now();
      const m = memo.get(pid);
      if (m && now - m.at < ACCEPT_MEMO_MS) return m.ok;
      const p = cgroupV2PathOf(pid, procRoot);
      const ok = p !== undefined && isUnder(p, cgroupPath);
      if (memo.size >= ACCEPT_MEMO_MAX_PIDS) memo.clear();
      memo.set(pid, { ok, at: now });
      return ok;
    },
    cgroupPath,
    leaf,
  };
}

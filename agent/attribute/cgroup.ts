/**
 * /proc/PID/cgroup → container id (and pod UID when the path names one).
 *
 * The file (proc(5), cgroups(7)) has one line per hierarchy, `hierarchy-ID:controller-list:cgroup-path`:
 * - cgroup v2 (unified): a single `0::/path` line;
 * - cgroup v1: `N:cpu,cpuacct:/path`, `N:name=systemd:/path`, …, one per mounted hierarchy;
 * - hybrid (systemd "hybrid" mode, and these test machines): both. Container runtimes on a hybrid host may place
 *   the container in the v1 hierarchies only, leaving the v2 line at `/` or a systemd unit. So the v2 line is tried
 *   first and the v1 lines after it (`containerFromCgroupInfo`) rather than dropping the v1 lines.
 * The path is untrusted-ish input (a process can move itself into any cgroup it may write to), so parsing is
 * defensive: garbage lines are skipped, nothing throws, ids must be exactly 64 hex digits.
 *
 * Container cgroup names, innermost segment (what kubelet, the runtimes and systemd produce):
 * - containerd, systemd driver:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
 *                                cri-containerd-<id>.scope   (guaranteed pods: no QoS slice, `kubepods-pod<uid_>`)
 * - CRI-O, systemd driver:       …/kubepods-besteffort-pod<uid_>.slice/crio-<id>.scope
 *                                …/crio-conmon-<id>.scope is CRI-O's monitor process, NOT the container → undefined
 * - CRI-O, cgroupfs driver:      /kubepods/besteffort/pod<uid>/crio-<id>   (and crio-conmon-<id>)
 * - dockershim/cri-dockerd:      …/kubepods-pod<uid_>.slice/docker-<id>.scope
 * - cgroupfs driver (containerd or dockershim — the path does not say which, so runtime "unknown-64hex"):
 *                                /kubepods/burstable/pod<uid>/<id>, guaranteed: /kubepods/pod<uid>/<id>
 * - Docker outside Kubernetes:   /docker/<id> (cgroupfs), /system.slice/docker-<id>.scope (systemd)
 * - kind / nested runtimes:      /kubelet.slice/kubelet-kubepods.slice/…-pod<uid_>.slice/cri-containerd-<id>.scope,
 *                                /docker/<node-id>/kubepods/besteffort/pod<uid>/<id>: the INNERMOST id is the container.
 * - systemd inside a container:  …/cri-containerd-<id>.scope/init.scope: still that container.
 * - cgroup namespaces: a process in our own cgroupns shows `/`; processes outside it show `/../../…` paths. `/`
 *   and relative paths (no leading `/`) are undefined; `..` segments are tolerated because the segments after them
 *   still name the container (an agent pod with a private cgroupns sees the other pods that way).
 * Pod UIDs appear with `_` for `-` in systemd slice names (systemd uses `-` as its hierarchy separator); they are
 * normalised to the dashed form of metadata.uid. Static pods have a 32-hex UID without dashes (kubelet's config
 * hash), kept as is.
 * Host forms (`/init.scope`, `/user.slice/…`, `/system.slice/ssh.service`, `/kubepods.slice` itself) → undefined.
 */

export interface CgroupV1Entry {
  readonly hierarchyId: number;
  /** e.g. ["cpu", "cpuacct"], ["name=systemd"]. */
  readonly controllers: readonly string[];
  readonly path: string;
}

export interface CgroupInfo {
  /** The `0::` line's path, when present. */
  readonly v2Path: string | undefined;
  /** The v1 lines, in file order. */
  readonly v1: readonly CgroupV1Entry[];
}

export type ContainerRuntime = "containerd" | "cri-o" | "docker" | "unknown-64hex";

export interface CgroupContainer {
  readonly runtime: ContainerRuntime;
  /** 64 lower-case hex digits. */
  readonly containerId: string;
  /** metadata.uid form (dashes), when the path names the pod. */
  readonly podUid?: string;
}

/** Bounds a single line so a hostile or corrupt file cannot make us build huge strings per line. */
const MAX_LINE_CHARS = 8192;

/** Parses /proc/PID/cgroup. Never throws; lines that do not fit either format are skipped. */
export function parseCgroupFile(text: string): CgroupInfo {
  let v2Path: string | undefined;
  const v1: CgroupV1Entry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line === "" || line.length > MAX_LINE_CHARS) continue;
    // The path itself may contain ':' (systemd unit names can), so only the first two colons separate fields.
    const c1 = line.indexOf(":");
    if (c1 <= 0) continue;
    const c2 = line.indexOf(":", c1 + 1);
    if (c2 < 0) continue;
    const idText = line.slice(0, c1);
    if (!/^\d{1,10}$/.test(idText)) continue;
    const hierarchyId = Number(idText);
    const controllerText = line.slice(c1 + 1, c2);
    const path = line.slice(c2 + 1);
    if (!path.startsWith("/")) continue;
    if (hierarchyId === 0 && controllerText === "") {
      v2Path ??= path;
      continue;
    }
    if (controllerText === "") continue; // v1 hierarchies always name their controllers (or name=…)
    v1.push({ hierarchyId, controllers: controllerText.split(","), path });
  }
  return { v2Path, v1 };
}

const HEX64 = /^[0-9a-f]{64}$/;
const CONTAINER_SEGMENTS: readonly (readonly [RegExp, ContainerRuntime | "conmon"])[] = [
  [/^cri-containerd-([0-9a-f]{64})\.scope$/, "containerd"],
  [/^crio-conmon-([0-9a-f]{64})(?:\.scope)?$/, "conmon"],
  [/^crio-([0-9a-f]{64})(?:\.scope)?$/, "cri-o"],
  [/^docker-([0-9a-f]{64})\.scope$/, "docker"],
];
/** `pod<uuid>` (cgroupfs), `kubepods[-qos]-pod<uuid_>.slice`, `kubelet-kubepods-…-pod<uuid_>.slice` (systemd). */
const POD_SEGMENT =
  /(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?$/;

/**
 * The container a cgroup path belongs to, or undefined for host processes, CRI-O's conmon, `/`, relative paths.
 * The innermost container-shaped segment wins (nested runtimes).
 */
export function containerFromCgroupPath(path: string): CgroupContainer | undefined {
  if (!path.startsWith("/") || path.length > MAX_LINE_CHARS) return undefined;
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = (segments[i] ?? "").toLowerCase();
    let runtime: ContainerRuntime | "conmon" | undefined;
    let id: string | undefined;
    for (const [re, rt] of CONTAINER_SEGMENTS) {
      const m = re.exec(seg);
      if (m?.[1] !== undefined) {
        runtime = rt;
        id = m[1];
        break;
      }
    }
    if (runtime === undefined && HEX64.test(seg)) {
      id = seg;
      runtime = i > 0 && segments[i - 1] === "docker" ? "docker" : "unknown-64hex";
    }
    if (runtime === "conmon") return undefined;
    if (runtime === undefined || id === undefined) continue;
    const podUid = podUidBefore(segments, i);
    return podUid === undefined ? { runtime, containerId: id } : { runtime, containerId: id, podUid };
  }
  return undefined;
}

function podUidBefore(segments: readonly string[], end: number): string | undefined {
  // Only the segment right above the container is the pod's; further up would be another pod (nesting).
  const seg = segments[end - 1];
  if (seg === undefined) return undefined;
  const m = POD_SEGMENT.exec(seg.toLowerCase());
  return m?.[1]?.replaceAll("_", "-");
}

/** The container of a parsed /proc/PID/cgroup: the v2 line first, then each v1 line. */
export function containerFromCgroupInfo(info: CgroupInfo): CgroupContainer | undefined {
  if (info.v2Path !== undefined) {
    const c = containerFromCgroupPath(info.v2Path);
    if (c !== undefined) return c;
  }
  for (const e of info.v1) {
    const c = containerFromCgroupPath(e.path);
    if (c !== undefined) return c;
  }
  return undefined;
}

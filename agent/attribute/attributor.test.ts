import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Attributor, type ContainerMeta, type PodLookup, type PodMeta } from "./attributor.ts";
import { containerFromCgroupInfo, parseCgroupFile } from "./cgroup.ts";
import { CgroupFixture, cgroupSkipReason, findCgroupMount, randomHex, randomUid } from "./cgroup-fixture.ts";

const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);

/** A fake /proc tree: PID/stat with a given start time, PID/cgroup with given text. */
class FakeProc {
  readonly root = mkdtempSync(join(tmpdir(), "stella-fakeproc-"));

  set(pid: number, startTime: number, cgroup: string, comm = "sleep"): void {
    const dir = join(this.root, String(pid));
    mkdirSync(dir, { recursive: true });
    // Real stat layout (proc(5)): fields 3..21, then 22 = starttime. comm may contain spaces and ')'.
    const tail = [
      "S",
      "1",
      pid,
      pid,
      "0",
      "-1",
      "4194560",
      "100",
      "0",
      "0",
      "0",
      "1",
      "2",
      "0",
      "0",
      "20",
      "0",
      "1",
      "0",
    ];
    writeFileSync(
      join(dir, "stat"),
      `${pid} (${comm}) ${tail.join(" ")} ${startTime} 2326528 131 18446744073709551615\n`,
    );
    writeFileSync(join(dir, "cgroup"), cgroup);
  }

  remove(pid: number): void {
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }

  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

describe("Attributor with a fake /proc", () => {
  let proc: FakeProc;
  before(() => {
    proc = new FakeProc();
  });
  after(() => {
    proc.dispose();
  });

  it("does not charge a reused pid to the previous process's container", () => {
    const a = new Attributor({ procRoot: proc.root });
    proc.set(4242, 1000, `0::/docker/${ID_A}\n`, "evil) 0 0 (x");
    assert.equal(a.attribute(4242)?.container, ID_A);
    assert.equal(a.attribute(4242)?.container, ID_A);
    // Same pid, new process (different start time) in another container.
    proc.set(4242, 2000, `0::/system.slice/docker-${ID_B}.scope\n`);
    assert.equal(a.attribute(4242)?.container, ID_B);
    // Same pid, same start time: the cache answers even if the file changed (migration is not tracked).
    proc.set(4242, 2000, "0::/init.scope\n");
    assert.equal(a.attribute(4242)?.container, ID_B);
    const s = a.stats();
    assert.equal(s.misses, 2);
    assert.equal(s.hits, 2);
    assert.equal(s.container, 4);
    // forget() makes it re-read.
    a.forget(4242);
    assert.equal(a.attribute(4242)?.container, "host");
    assert.equal(a.stats().host, 1);
  });

  it("returns undefined and counts exited processes", () => {
    const a = new Attributor({ procRoot: proc.root });
    proc.set(500, 7, `0::/docker/${ID_A}\n`);
    assert.equal(a.attribute(500)?.container, ID_A);
    proc.remove(500);
    assert.equal(a.attribute(500), undefined);
    assert.equal(a.attribute(999_999), undefined);
    assert.equal(a.attribute(-1), undefined);
    assert.equal(a.attribute(1.5), undefined);
    const s = a.stats();
    assert.equal(s.exited, 4);
    assert.equal(s.cachedPids, 0);
  });

  it("treats a pid whose stat is garbage as not attributable", () => {
    const a = new Attributor({ procRoot: proc.root });
    proc.set(501, 1, `0::/docker/${ID_A}\n`);
    writeFileSync(join(proc.root, "501", "stat"), "501 (no close paren S 1");
    assert.equal(a.attribute(501), undefined);
    assert.equal(a.stats().exited, 1);
  });

  it("bounds the cache, evicting the least recently used pid", () => {
    const a = new Attributor({ procRoot: proc.root, maxPids: 2 });
    for (const pid of [601, 602, 603]) proc.set(pid, pid, `0::/docker/${ID_A}\n`);
    a.attribute(601);
    a.attribute(602);
    a.attribute(601); // 601 is now the most recent
    a.attribute(603); // evicts 602
    let s = a.stats();
    assert.equal(s.cachedPids, 2);
    assert.equal(s.evictions, 1);
    a.attribute(601);
    s = a.stats();
    assert.equal(s.hits, 2, "601 stayed cached");
    a.attribute(602);
    assert.equal(a.stats().misses, 4, "602 was evicted");
  });

  it("rejects an invalid maxPids with a stable code", () => {
    assert.throws(() => new Attributor({ maxPids: 0 }), { code: "ATTRIBUTOR_CONFIG" });
  });

  it("resolves pods through a PodLookup: by container id, by pod UID, or unknown", () => {
    const uid = randomUid();
    const uid_ = uid.replaceAll("-", "_");
    const meta: ContainerMeta = {
      pod: "web-0",
      namespace: "shop",
      podUid: uid,
      containerName: "nginx",
      imageDigest: `sha256:${"c".repeat(64)}`,
    };
    const pods = new Map<string, PodMeta>([[uid, { pod: "web-0", namespace: "shop", podUid: uid }]]);
    const lookup: PodLookup = {
      byContainerId: (id) => (id === ID_A ? meta : undefined),
      byPodUid: (u) => pods.get(u),
    };
    const a = new Attributor({ procRoot: proc.root, podLookup: lookup });
    const slice = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid_}.slice`;
    proc.set(701, 1, `0::${slice}/cri-containerd-${ID_A}.scope\n`);
    proc.set(702, 1, `0::${slice}/cri-containerd-${ID_B}.scope\n`);
    proc.set(703, 1, `0::/kubepods/besteffort/pod${randomUid()}/${ID_B}\n`);
    proc.set(704, 1, "0::/system.slice/kubelet.service\n");
    assert.deepEqual(a.attribute(701), {
      container: ID_A,
      pod: "web-0",
      namespace: "shop",
      containerName: "nginx",
      imageDigest: `sha256:${"c".repeat(64)}`,
    });
    assert.deepEqual(a.attribute(702), {
      container: ID_B,
      pod: "web-0",
      namespace: "shop",
      containerName: "",
      imageDigest: "",
    });
    assert.deepEqual(a.attribute(703), {
      container: ID_B,
      pod: "",
      namespace: "",
      containerName: "",
      imageDigest: "",
    });
    assert.deepEqual(a.attribute(704), {
      container: "host",
      pod: "",
      namespace: "",
      containerName: "",
      imageDigest: "",
    });
    const s = a.stats();
    assert.equal(s.podResolved, 2);
    assert.equal(s.podUnknown, 1);
    assert.equal(s.host, 1);
    assert.equal(s.container, 3);
  });

  it("standalone: container id only", () => {
    const a = new Attributor({ procRoot: proc.root });
    proc.set(
      801,
      1,
      `0::/kubepods.slice/kubepods-pod${randomUid().replaceAll("-", "_")}.slice/crio-${ID_A}.scope\n`,
    );
    assert.deepEqual(a.attribute(801), {
      container: ID_A,
      pod: "",
      namespace: "",
      containerName: "",
      imageDigest: "",
    });
    assert.equal(a.stats().podUnknown, 0);
  });
});

// Real cgroups: the kernel writes /proc/PID/cgroup, we only choose the directory names.
const v2Skip = cgroupSkipReason(2);
describe("Attributor with real cgroup v2 leaves", { skip: v2Skip }, () => {
  let fx: CgroupFixture;
  const uid = randomUid();
  const containerdId = randomHex(32);
  const dockerId = randomHex(32);
  let containerdPid: number;
  let dockerPid: number;
  let hostPid: number;

  before(async () => {
    fx = new CgroupFixture(findCgroupMount(2)!);
    const uid_ = uid.replaceAll("-", "_");
    const containerdLeaf = fx.mkdirs([
      `kubepods-besteffort-pod${uid_}.slice`,
      `cri-containerd-${containerdId}.scope`,
    ]);
    const dockerLeaf = fx.mkdirs(["system.slice", `docker-${dockerId}.scope`]);
    const hostLeaf = fx.mkdirs(["system.slice", "ssh.service"]);
    containerdPid = await fx.spawnInto(containerdLeaf);
    dockerPid = await fx.spawnInto(dockerLeaf);
    hostPid = await fx.spawnInto(hostLeaf);
  });

  after(async () => {
    await fx?.cleanup();
  });

  it("the kernel reports the leaves in /proc/PID/cgroup", () => {
    const text = readFileSync(`/proc/${containerdPid}/cgroup`, "utf8");
    assert.match(text, new RegExp(`^0::/.*cri-containerd-${containerdId}\\.scope$`, "m"));
  });

  it("attributes a containerd-shaped leaf (systemd driver, besteffort) to its container", () => {
    const a = new Attributor();
    assert.equal(a.attribute(containerdPid)?.container, containerdId);
    assert.equal(a.attribute(containerdPid)?.container, containerdId);
    assert.deepEqual(a.stats().hits, 1);
  });

  it("attributes a docker-<id>.scope leaf", () => {
    assert.equal(new Attributor().attribute(dockerPid)?.container, dockerId);
  });

  it("attributes a system service and the test process to the host", (t) => {
    const a = new Attributor();
    assert.equal(a.attribute(hostPid)?.container, "host");
    const self = containerFromCgroupInfo(parseCgroupFile(readFileSync("/proc/self/cgroup", "utf8")));
    if (self !== undefined) {
      t.diagnostic(
        `the test process itself runs in container ${self.containerId}; host check skipped for it`,
      );
      return;
    }
    assert.equal(a.attribute(process.pid)?.container, "host");
  });

  it("counts a process that exits as exited", async () => {
    const a = new Attributor();
    const pid = await fx.spawnInto(fx.mkdirs(["system.slice", `docker-${randomHex(32)}.scope`]));
    assert.notEqual(a.attribute(pid), undefined);
    await fx.kill(pid);
    assert.equal(a.attribute(pid), undefined);
    assert.equal(a.stats().exited, 1);
  });
});

// On a hybrid host, runtimes using the v1 hierarchies leave the v2 line at "/" or a systemd unit.
const v1Skip = cgroupSkipReason(1);
describe("Attributor with a real cgroup v1 leaf (cgroupfs driver)", { skip: v1Skip }, () => {
  let fx: CgroupFixture;
  const uid = randomUid();
  const id = randomHex(32);
  let pid: number;

  before(async () => {
    fx = new CgroupFixture(findCgroupMount(1)!);
    pid = await fx.spawnInto(fx.mkdirs(["kubepods", "besteffort", `pod${uid}`, id]));
  });

  after(async () => {
    await fx?.cleanup();
  });

  it("attributes through the v1 line", () => {
    assert.match(readFileSync(`/proc/${pid}/cgroup`, "utf8"), new RegExp(`:pids:/.*/pod${uid}/${id}$`, "m"));
    const a = new Attributor({
      podLookup: {
        byContainerId: () => undefined,
        byPodUid: (u) => (u === uid ? { pod: "p", namespace: "ns", podUid: u } : undefined),
      },
    });
    assert.deepEqual(a.attribute(pid), {
      container: id,
      pod: "p",
      namespace: "ns",
      containerName: "",
      imageDigest: "",
    });
  });
});

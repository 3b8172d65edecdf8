import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  containerFromCgroupInfo,
  containerFromCgroupPath,
  parseCgroupFile,
  type CgroupContainer,
} from "./cgroup.ts";

// Ids and UIDs of the shapes kubelet and the runtimes produce.
const ID = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const ID2 = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const UID = "74c13223-5a00-11e9-b385-42010a80018d";
const UID_ = UID.replaceAll("-", "_");
const STATIC_UID = "6d1b3c0fa6c85bcbcf3a1c1d6a4f3a4e"; // kubelet's config hash for static pods

/** A cgroup v1 file as a v1-only host writes it: every controller hierarchy, the same path. */
function v1File(path: string): string {
  return [
    `12:pids:${path}`,
    `11:hugetlb:${path}`,
    `10:net_cls,net_prio:${path}`,
    `9:perf_event:${path}`,
    `8:cpu,cpuacct:${path}`,
    `7:memory:${path}`,
    `6:devices:${path}`,
    `5:freezer:${path}`,
    `4:blkio:${path}`,
    `3:cpuset:${path}`,
    `2:rdma:/`,
    `1:name=systemd:${path}`,
    "",
  ].join("\n");
}

function attribute(text: string): CgroupContainer | undefined {
  return containerFromCgroupInfo(parseCgroupFile(text));
}

interface Case {
  name: string;
  path: string;
  want: CgroupContainer | undefined;
}

const CONTAINER_CASES: Case[] = [
  {
    name: "containerd, systemd, burstable",
    path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "containerd, systemd, besteffort",
    path: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "containerd, systemd, guaranteed (no QoS slice)",
    path: `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "cgroupfs, burstable",
    path: `/kubepods/burstable/pod${UID}/${ID}`,
    want: { runtime: "unknown-64hex", containerId: ID, podUid: UID },
  },
  {
    name: "cgroupfs, besteffort",
    path: `/kubepods/besteffort/pod${UID}/${ID}`,
    want: { runtime: "unknown-64hex", containerId: ID, podUid: UID },
  },
  {
    name: "cgroupfs, guaranteed (no QoS segment)",
    path: `/kubepods/pod${UID}/${ID}`,
    want: { runtime: "unknown-64hex", containerId: ID, podUid: UID },
  },
  {
    name: "CRI-O, systemd",
    path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope`,
    want: { runtime: "cri-o", containerId: ID, podUid: UID },
  },
  {
    name: "CRI-O, cgroupfs",
    path: `/kubepods/besteffort/pod${UID}/crio-${ID}`,
    want: { runtime: "cri-o", containerId: ID, podUid: UID },
  },
  {
    name: "dockershim/cri-dockerd, systemd",
    path: `/kubepods.slice/kubepods-pod${UID_}.slice/docker-${ID}.scope`,
    want: { runtime: "docker", containerId: ID, podUid: UID },
  },
  { name: "Docker, cgroupfs", path: `/docker/${ID}`, want: { runtime: "docker", containerId: ID } },
  {
    name: "Docker, systemd",
    path: `/system.slice/docker-${ID}.scope`,
    want: { runtime: "docker", containerId: ID },
  },
  {
    name: "static pod (32-hex UID)",
    path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC_UID}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: STATIC_UID },
  },
  {
    name: "kind node (kubelet.slice root)",
    path: `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "nested: innermost id wins",
    path: `/docker/${ID2}/kubepods/besteffort/pod${UID}/${ID}`,
    want: { runtime: "unknown-64hex", containerId: ID, podUid: UID },
  },
  {
    name: "systemd inside the container",
    path: `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope/init.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "seen from a private cgroupns (.. segments)",
    path: `/../../kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    want: { runtime: "containerd", containerId: ID, podUid: UID },
  },
  {
    name: "upper-case hex is normalised",
    path: `/docker/${ID.toUpperCase()}`,
    want: { runtime: "docker", containerId: ID },
  },
  {
    name: "containerd outside Kubernetes (ctr, namespace 'default')",
    path: `/default/${ID}`,
    want: { runtime: "unknown-64hex", containerId: ID },
  },
];

const NOT_CONTAINER_CASES: Case[] = [
  {
    name: "CRI-O conmon, systemd",
    path: `/kubepods.slice/kubepods-pod${UID_}.slice/crio-conmon-${ID}.scope`,
    want: undefined,
  },
  {
    name: "CRI-O conmon, cgroupfs",
    path: `/kubepods/besteffort/pod${UID}/crio-conmon-${ID}`,
    want: undefined,
  },
  { name: "init.scope", path: "/init.scope", want: undefined },
  { name: "user session", path: "/user.slice/user-1000.slice/session-3.scope", want: undefined },
  {
    name: "user manager",
    path: "/user.slice/user-0.slice/user@0.service/app.slice/dbus.service",
    want: undefined,
  },
  { name: "system service", path: "/system.slice/ssh.service", want: undefined },
  { name: "containerd itself", path: "/system.slice/containerd.service", want: undefined },
  { name: "pod slice without container", path: `/kubepods.slice/kubepods-pod${UID_}.slice`, want: undefined },
  { name: "cgroupns root", path: "/", want: undefined },
  { name: "relative", path: `kubepods/pod${UID}/${ID}`, want: undefined },
  { name: "63 hex digits", path: `/docker/${ID.slice(1)}`, want: undefined },
  { name: "65 hex digits", path: `/docker/${ID}0`, want: undefined },
  { name: "non-hex", path: `/docker/${ID.slice(1)}g`, want: undefined },
  { name: "id as a prefix only", path: `/system.slice/docker-${ID}.scope.bak`, want: undefined },
];

describe("containerFromCgroupPath", () => {
  for (const c of [...CONTAINER_CASES, ...NOT_CONTAINER_CASES]) {
    it(c.name, () => {
      assert.deepEqual(containerFromCgroupPath(c.path), c.want);
    });
  }
});

describe("parseCgroupFile + containerFromCgroupInfo", () => {
  for (const c of CONTAINER_CASES.slice(0, 11)) {
    it(`cgroup v2 single line: ${c.name}`, () => {
      assert.deepEqual(attribute(`0::${c.path}\n`), c.want);
    });
    it(`cgroup v1 multi-line: ${c.name}`, () => {
      assert.deepEqual(attribute(v1File(c.path)), c.want);
    });
  }

  it("parses v1 controllers and the v2 line", () => {
    const info = parseCgroupFile("2:cpu,cpuacct:/a\n1:name=systemd:/b:c\n0::/d\n");
    assert.equal(info.v2Path, "/d");
    assert.deepEqual(info.v1, [
      { hierarchyId: 2, controllers: ["cpu", "cpuacct"], path: "/a" },
      { hierarchyId: 1, controllers: ["name=systemd"], path: "/b:c" },
    ]);
  });

  it("prefers the v2 line on a hybrid host", () => {
    const text = `${v1File(`/docker/${ID2}`)}0::/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope\n`;
    assert.deepEqual(attribute(text), { runtime: "containerd", containerId: ID, podUid: UID });
  });

  it("falls back to the v1 lines when the hybrid v2 line names no container", () => {
    const text = `${v1File(`/kubepods/besteffort/pod${UID}/${ID}`)}0::/\n`;
    assert.deepEqual(attribute(text), { runtime: "unknown-64hex", containerId: ID, podUid: UID });
  });

  it("host processes on v2", () => {
    for (const p of [
      "/init.scope",
      "/user.slice/user-1000.slice/session-1.scope",
      "/system.slice/ssh.service",
    ]) {
      assert.equal(attribute(`0::${p}\n`), undefined, p);
    }
  });

  it("host processes on v1", () => {
    assert.equal(attribute(v1File("/user.slice/user-1000.slice/session-1.scope")), undefined);
    assert.equal(attribute(v1File("/")), undefined);
  });

  it("conmon is not the container on v1 or v2", () => {
    const p = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`;
    assert.equal(attribute(`0::${p}\n`), undefined);
    assert.equal(attribute(v1File(p)), undefined);
  });

  it("skips malformed lines and never throws", () => {
    const garbage = [
      "",
      "garbage",
      ":::",
      "x::/docker/" + ID2,
      "-1::/docker/" + ID2,
      "0:/docker/" + ID2,
      "3::relative/path",
      "5::/no-controllers-on-v1",
      "0::",
      "\u0000\u0001\u0002",
      `7:memory:/${"a".repeat(10_000)}`,
      `0::/kubepods/pod${UID}/${ID}\r`,
    ].join("\n");
    const info = parseCgroupFile(garbage);
    assert.equal(info.v2Path, `/kubepods/pod${UID}/${ID}`);
    assert.deepEqual(info.v1, []);
    assert.deepEqual(containerFromCgroupInfo(info), {
      runtime: "unknown-64hex",
      containerId: ID,
      podUid: UID,
    });
    assert.deepEqual(parseCgroupFile(""), { v2Path: undefined, v1: [] });
    for (let i = 0; i < 2000; i++) {
      const s = Array.from({ length: 40 }, () => ":/0-\n_a".charAt(Math.floor(Math.random() * 8))).join("");
      parseCgroupFile(s);
      containerFromCgroupPath(s);
    }
  });
});

// A real Kubernetes control plane for e2e tests: etcd + kube-apiserver as local processes (like controller-runtime's
// envtest), with RBAC on and ServiceAccount tokens from the TokenRequest API. See e2e/README.md.
//
//   const cp = await startControlPlane();
//   try { const core = cp.kubeConfig().makeApiClient(CoreV1Api); ... } finally { await cp.stop(); }
//
// No process is left behind: etcd and kube-apiserver run in their own process groups; stop() SIGTERMs them (SIGKILL
// after 10 s); `exit`, SIGINT/SIGTERM/SIGHUP and fatal exceptions SIGKILL them synchronously; and a watchdog
// (reaper.sh, reading a pipe only this process holds) kills them if this process is SIGKILLed. A cluster dir whose
// owner died anyway is cleaned up by the next start (sweepStaleControlPlanes) or by `node e2e/cluster.ts down`.
//
// With STELLA_E2E_KUBECONFIG set, startControlPlane() uses that existing cluster (e.g. kind) instead.
import { spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  AuthenticationV1TokenRequest,
  CoreV1Api,
  KubeConfig,
  V1TokenRequestSpec,
} from "@kubernetes/client-node";
import { stringify } from "yaml";
import { makePki, pkiPaths, type Pki } from "./pki.ts";
import { isAlive, isOurs, signalGroup, signalProcess, startTime, stopGroup } from "./processes.ts";
import { toolPath } from "./tools.ts";

export type ProcessName = "etcd" | "kube-apiserver";

export interface ServiceAccountTokenOptions {
  /** Token lifetime; the API server's minimum is 600. Default 3600. */
  expirationSeconds?: number;
  /** Default: the API server's own audience (what in-cluster clients use). */
  audiences?: string[];
}

export interface StartTimings {
  certsMs: number;
  etcdMs: number;
  apiserverMs: number;
  totalMs: number;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Admin kubeconfig (system:masters client certificate) with embedded certificates. */
  readonly kubeconfigPath: string;
  /** The CA that signed the serving certificate (PEM). */
  readonly caPem: string;
  /** The cluster dir: pki/, etcd-data/, logs, kubeconfig, control-plane.json. Removed by stop() unless keepDir. */
  readonly dir: string;
  /** True when STELLA_E2E_KUBECONFIG pointed us at an existing cluster (no processes, stop() leaves it running). */
  readonly external: boolean;
  readonly processes: readonly { readonly name: ProcessName; readonly pid: number }[];
  readonly ports:
    { readonly etcd: number; readonly etcdPeer: number; readonly apiserver: number } | undefined;
  readonly timings: StartTimings;
  /** A fresh client-node KubeConfig for the admin user. */
  kubeConfig(): KubeConfig;
  /**
   * Mints a token for an existing ServiceAccount with the TokenRequest API (as admin) and returns a KubeConfig that
   * authenticates with it: the way to run the operator under the chart's own RBAC.
   */
  serviceAccountKubeConfig(
    namespace: string,
    name: string,
    opts?: ServiceAccountTokenOptions,
  ): Promise<KubeConfig>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Cluster dir; created if absent, must be empty or a previous control-plane dir. Default: a new temp dir. */
  dir?: string;
  /** Keep the dir (logs, certificates, etcd data) after stop(). */
  keepDir?: boolean;
  /** Progress lines (default: stderr if STELLA_E2E_VERBOSE is set, else nothing). */
  log?: (line: string) => void;
  /** Deadline for etcd + kube-apiserver to become ready. Default 60 s. */
  timeoutMs?: number;
  /**
   * The processes outlive this Node process (`node e2e/cluster.ts up`): no watchdog, no cleanup on exit once started;
   * stop them with stopClusterDir(dir).
   */
  persist?: boolean;
  /** Use this existing cluster instead of starting one; null forces a local one. Default: $STELLA_E2E_KUBECONFIG. */
  existingKubeconfig?: string | null;
  /** Override the binaries (default: e2e/.cache/bin, then PATH). */
  binaries?: { etcd?: string; kubeApiserver?: string };
}

/** control-plane.json in the cluster dir. */
export interface ClusterState {
  version: 1;
  dir: string;
  phase: "starting" | "running" | "stopped";
  ownerPid: number;
  ownerStartTime?: string;
  persist: boolean;
  keepDir: boolean;
  startedAt: string;
  server?: string;
  kubeconfigPath?: string;
  ports?: { etcd: number; etcdPeer: number; apiserver: number };
  processes: { name: ProcessName; pid: number }[];
  reaperPid?: number;
}

export const STATE_FILE = "control-plane.json";
export const PID_FILE = "control-plane.pids";
export const TEMP_PREFIX = "stella-e2e-";
const STOP_GRACE_MS = 10_000;
const REAPER = join(import.meta.dirname, "reaper.sh");

// ---- registry of live control planes and process-wide cleanup ---------------------------------------------------------

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Proc {
  name: ProcessName;
  pid: number;
  child: ChildProcess;
  exited: Promise<ExitInfo>;
  exit?: ExitInfo;
}

interface Entry {
  dir: string;
  marker: string;
  keepDir: boolean;
  persist: boolean;
  state: ClusterState;
  procs: Proc[];
  reaper?: ChildProcess;
}

const live = new Set<Entry>();
let handlersInstalled = false;

/** Synchronous last-resort cleanup: SIGKILL every process group we started, remove temp dirs. */
function killAllSync(): void {
  for (const e of live) {
    if (e.reaper?.pid !== undefined && e.reaper.exitCode === null) signalProcess(e.reaper.pid, "SIGKILL");
    for (const p of e.procs) if (!p.exit) signalGroup(p.pid, "SIGKILL");
    try {
      if (!e.keepDir) rmSync(e.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
      else writeState(e, "stopped");
    } catch {
      // best effort: the next start sweeps it
    }
  }
  live.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killAllSync();
      process.off(sig, onSignal);
      // Re-raise so the process ends the way it would have without us (128 + signal number), unless someone else
      // handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
  // A monitor does not change crash behaviour. Only clean up if the exception is really fatal (node:test, for
  // example, installs an uncaughtException handler and keeps going).
  process.on("uncaughtExceptionMonitor", () => {
    if (process.listenerCount("uncaughtException") === 0) killAllSync();
  });
}

// ---- state file -----------------------------------------------------------------------------------------------------

function writeJsonAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

function writeState(e: Entry, phase?: ClusterState["phase"]): void {
  if (phase) e.state.phase = phase;
  e.state.processes = e.procs.map((p) => ({ name: p.name, pid: p.pid }));
  e.state.reaperPid = e.reaper?.pid;
  writeJsonAtomic(join(e.dir, STATE_FILE), JSON.stringify(e.state, null, 2) + "\n");
  writeJsonAtomic(join(e.dir, PID_FILE), e.procs.map((p) => `${p.pid}\n`).join(""));
}

export function readClusterState(dir: string): ClusterState | undefined {
  try {
    const s = JSON.parse(readFileSync(join(dir, STATE_FILE), "utf8")) as ClusterState;
    return s.version === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

function ownerAlive(s: ClusterState): boolean {
  if (!isAlive(s.ownerPid)) return false;
  return s.ownerStartTime === undefined || startTime(s.ownerPid) === s.ownerStartTime;
}

/** The processes of a cluster dir that are still running (checked against the dir in their command lines). */
export function runningProcesses(s: ClusterState): { name: ProcessName; pid: number }[] {
  return s.processes.filter((p) => isOurs(p.pid, `${s.dir}/`));
}

/**
 * Stops the processes recorded in DIR/control-plane.json (e.g. a cluster from `node e2e/cluster.ts up`, or one whose
 * test process died): SIGTERM per process group, SIGKILL after the grace period. Removes the dir if `remove`.
 * Returns false if DIR holds no control-plane state.
 */
export async function stopClusterDir(
  dir: string,
  opts: { remove?: boolean; graceMs?: number; log?: (line: string) => void } = {},
): Promise<boolean> {
  const abs = resolve(dir);
  const s = readClusterState(abs);
  if (!s) return false;
  const marker = `${abs}/`;
  // The watchdog's command line is `/bin/sh .../reaper.sh DIR rm|keep`.
  if (s.reaperPid !== undefined && isOurs(s.reaperPid, ` ${abs} `)) signalProcess(s.reaperPid, "SIGKILL");
  for (const p of [...s.processes].reverse()) {
    if (isOurs(p.pid, marker)) opts.log?.(`stopping ${p.name} (pid ${p.pid})`);
    await stopGroup(p, marker, opts.graceMs ?? STOP_GRACE_MS);
  }
  if (opts.remove) await rm(abs, { recursive: true, force: true, maxRetries: 5 });
  else {
    s.phase = "stopped";
    writeJsonAtomic(join(abs, STATE_FILE), JSON.stringify(s, null, 2) + "\n");
  }
  return true;
}

/**
 * Cleans up after harness processes that died without cleaning up (e.g. SIGKILLed with the watchdog disabled or
 * killed itself): every $TMPDIR/stella-e2e-* dir whose control-plane.json names a dead owner and is not `persist`.
 * Runs at every startControlPlane(). Returns the dirs it cleaned.
 */
export async function sweepStaleControlPlanes(log: (line: string) => void = () => {}): Promise<string[]> {
  const swept: string[] = [];
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return swept;
  }
  for (const n of names) {
    const dir = join(tmpdir(), n);
    const s = readClusterState(dir);
    if (!s || s.persist || s.phase === "stopped" || ownerAlive(s) || resolve(s.dir) !== dir) continue;
    log(`sweeping stale control plane in ${dir} (owner pid ${s.ownerPid} is gone)`);
    await stopClusterDir(dir, { remove: !s.keepDir, graceMs: 3000, log });
    swept.push(dir);
  }
  return swept;
}

// ---- helpers ----------------------------------------------------------------------------------------------------------

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((res, rej) => {
          const s = createServer();
          s.once("error", rej);
          s.listen(0, "127.0.0.1", () => {
            res(s);
          });
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((res) => {
          s.close(() => {
            res();
          });
        }),
    ),
  );
  return ports;
}

interface Response {
  status: number;
  body: string;
}

function get(url: string, options: https.RequestOptions, timeoutMs: number): Promise<Response> {
  const mod = url.startsWith("https:") ? https : http;
  return new Promise((res, rej) => {
    const req = mod.get(url, { ...options, agent: false, timeout: timeoutMs }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (c: string) => (body += c));
      r.on("end", () => {
        res({ status: r.statusCode ?? 0, body });
      });
      r.on("error", rej);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", rej);
  });
}

function adminTls(pki: Pki): https.RequestOptions {
  return { ca: readFileSync(pki.caCrt), cert: readFileSync(pki.adminCrt), key: readFileSync(pki.adminKey) };
}

/** GET server/readyz with the admin certificate of the cluster dir. */
export async function probeReadyz(dir: string, server: string, timeoutMs = 3000): Promise<Response> {
  return get(`${server}/readyz`, adminTls(pkiPaths(join(dir, "pki"))), timeoutMs);
}

function tail(path: string, lines: number): string {
  try {
    const all = readFileSync(path, "utf8").trimEnd().split("\n");
    return all.slice(-lines).join("\n");
  } catch {
    return "";
  }
}

function logTails(dir: string): string {
  return ["kube-apiserver.log", "etcd.log"]
    .map((f) => {
      const t = tail(join(dir, f), 30);
      return t ? `\n----- last lines of ${join(dir, f)} -----\n${t}` : "";
    })
    .join("");
}

function describeExit(p: Proc): string {
  return p.exit?.signal ? `signal ${p.exit.signal}` : `exit code ${p.exit?.code ?? "?"}`;
}

class AddressInUse extends Error {}

function prepareDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  const s = readClusterState(dir);
  if (!s)
    throw new Error(`${dir} is not empty and holds no ${STATE_FILE}; refusing to use it as a cluster dir`);
  const running = runningProcesses(s);
  if (running.length > 0 && (s.persist || ownerAlive(s))) {
    throw new Error(
      `a control plane is already running in ${dir} (pids ${running.map((p) => p.pid).join(", ")}); ` +
        `stop it first (node e2e/cluster.ts down --dir ${dir})`,
    );
  }
  // A previous run that died: kill what is left, start afresh.
  for (const p of running) signalGroup(p.pid, "SIGKILL");
  for (const f of entries) rmSync(join(dir, f), { recursive: true, force: true, maxRetries: 5 });
}

function startReaper(e: Entry): void {
  if (e.persist || process.env.STELLA_E2E_NO_REAPER === "1") return;
  const fd = openSync(join(e.dir, "reaper.log"), "a");
  let r: ChildProcess;
  try {
    r = spawn("/bin/sh", [REAPER, e.dir, e.keepDir ? "keep" : "rm"], {
      detached: true,
      stdio: ["pipe", "ignore", fd],
    });
  } finally {
    closeSync(fd);
  }
  r.on("error", () => {});
  r.stdin?.on("error", () => {});
  r.unref();
  (r.stdin as unknown as Socket | null)?.unref();
  e.reaper = r;
}

function spawnProc(e: Entry, name: ProcessName, bin: string, args: string[]): Proc {
  const fd = openSync(join(e.dir, `${name}.log`), "w");
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { cwd: e.dir, detached: true, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  child.on("error", () => {}); // reported through the missing pid below
  if (child.pid === undefined) throw new Error(`cannot start ${bin}`);
  child.unref();
  const exited = new Promise<ExitInfo>((res) => {
    child.once("exit", (code, signal) => {
      res({ code, signal });
    });
  });
  const p: Proc = { name, pid: child.pid, child, exited };
  void exited.then((x) => (p.exit = x));
  e.procs.push(p);
  e.reaper?.stdin?.write(`+${child.pid}\n`);
  writeState(e);
  return p;
}

async function stopProc(e: Entry, p: Proc, graceMs: number): Promise<void> {
  p.child.ref(); // children are unref'd so a forgotten stop() can't hang the test process; keep it alive while we wait
  await stopGroup({ name: p.name, pid: p.pid, exited: p.exited }, e.marker, graceMs);
  e.procs = e.procs.filter((x) => x !== p);
  writeState(e);
}

async function teardown(e: Entry, graceMs: number): Promise<void> {
  for (const p of [...e.procs].reverse()) await stopProc(e, p, graceMs);
  if (e.reaper?.pid !== undefined && e.reaper.exitCode === null) {
    e.reaper.ref();
    const gone = new Promise((res) => e.reaper?.once("exit", res));
    signalProcess(e.reaper.pid, "SIGKILL");
    await gone;
  }
  e.reaper = undefined;
  live.delete(e);
  if (!e.keepDir) await rm(e.dir, { recursive: true, force: true, maxRetries: 5 });
  else writeState(e, "stopped");
}

async function waitFor(
  e: Entry,
  what: string,
  deadline: number,
  probe: () => Promise<string | true>,
): Promise<void> {
  let last: string;
  while (true) {
    for (const p of e.procs) {
      if (p.exit) {
        const msg = `${p.name} exited during start-up (${describeExit(p)}) while waiting for ${what}`;
        if (/address already in use/i.test(tail(join(e.dir, `${p.name}.log`), 50)))
          throw new AddressInUse(msg);
        throw new Error(msg);
      }
    }
    try {
      const r = await probe();
      if (r === true) return;
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline)
      throw new Error(`timed out waiting for ${what} (last: ${last.slice(0, 2000)})`);
    await sleep(50);
  }
}

// ---- start ------------------------------------------------------------------------------------------------------------

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const log =
    opts.log ??
    (process.env.STELLA_E2E_VERBOSE
      ? (l: string): void => {
          process.stderr.write(`[control-plane] ${l}\n`);
        }
      : (): void => {});
  const existing =
    opts.existingKubeconfig === undefined ? process.env.STELLA_E2E_KUBECONFIG : opts.existingKubeconfig;
  if (existing) return existingControlPlane(existing, log);

  const t0 = performance.now();
  const etcdBin = opts.binaries?.etcd ?? toolPath("etcd");
  const apiserverBin = opts.binaries?.kubeApiserver ?? toolPath("kube-apiserver");
  installHandlers();
  await sweepStaleControlPlanes(log);

  let dir: string;
  if (opts.dir !== undefined) {
    dir = resolve(opts.dir);
    prepareDir(dir);
  } else {
    dir = await mkdtemp(join(tmpdir(), TEMP_PREFIX));
  }
  const persist = opts.persist ?? false;
  const e: Entry = {
    dir,
    marker: `${dir}/`,
    keepDir: opts.keepDir ?? persist,
    persist,
    procs: [],
    state: {
      version: 1,
      dir,
      phase: "starting",
      ownerPid: process.pid,
      ownerStartTime: startTime(process.pid),
      persist,
      keepDir: opts.keepDir ?? persist,
      startedAt: new Date().toISOString(),
      processes: [],
    },
  };
  live.add(e);
  writeState(e);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);

  try {
    startReaper(e);
    writeState(e);
    const pki = await makePki(join(dir, "pki"));
    const tCerts = performance.now();
    const tls = adminTls(pki);

    // etcd: free ports from the kernel; if another process grabs one before etcd binds it, try again.
    let etcdPort = 0;
    let etcdPeerPort = 0;
    for (let attempt = 1; ; attempt++) {
      [etcdPort = 0, etcdPeerPort = 0] = await freePorts(2);
      const peer = `http://127.0.0.1:${etcdPeerPort}`;
      const client = `http://127.0.0.1:${etcdPort}`;
      const p = spawnProc(e, "etcd", etcdBin, [
        "--name=stella-e2e",
        `--data-dir=${join(dir, "etcd-data")}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=stella-e2e=${peer}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ]);
      try {
        await waitFor(e, "etcd /health", deadline, async () => {
          const r = await get(`${client}/health`, {}, 1000);
          return r.status === 200 && r.body.includes('"health":"true"') ? true : `${r.status} ${r.body}`;
        });
        break;
      } catch (err) {
        if (!(err instanceof AddressInUse) || attempt >= 3) throw err;
        log(`etcd: ${err.message}; retrying with other ports`);
        await stopProc(e, p, 1000);
        rmSync(join(dir, "etcd-data"), { recursive: true, force: true });
      }
    }
    const tEtcd = performance.now();
    log(`etcd ready on 127.0.0.1:${etcdPort} in ${Math.round(tEtcd - tCerts)} ms`);

    let apiPort = 0;
    for (let attempt = 1; ; attempt++) {
      [apiPort = 0] = await freePorts(1);
      const server = `https://127.0.0.1:${apiPort}`;
      // The flags of e2e/tools/smoke.sh (and envtest). RBAC, not the default AlwaysAllow, so the chart's RBAC is real.
      const p = spawnProc(e, "kube-apiserver", apiserverBin, [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${pki.apiserverCrt}`,
        `--tls-private-key-file=${pki.apiserverKey}`,
        `--client-ca-file=${pki.caCrt}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        "--service-cluster-ip-range=10.0.0.0/24",
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
      ]);
      try {
        await waitFor(e, `kube-apiserver ${server}/readyz`, deadline, async () => {
          const r = await get(`${server}/readyz`, tls, 2000);
          return r.status === 200 ? true : `${r.status} ${r.body.trim().split("\n").slice(-5).join(" | ")}`;
        });
        // The bootstrap controller creates the system namespaces right after start; tests may rely on them.
        for (const ns of ["default", "kube-system"]) {
          await waitFor(e, `namespace ${ns}`, deadline, async () => {
            const r = await get(`${server}/api/v1/namespaces/${ns}`, tls, 2000);
            return r.status === 200 ? true : `${r.status}`;
          });
        }
        break;
      } catch (err) {
        if (!(err instanceof AddressInUse) || attempt >= 3) throw err;
        log(`kube-apiserver: ${err.message}; retrying with another port`);
        await stopProc(e, p, 1000);
      }
    }
    const tApi = performance.now();
    const server = `https://127.0.0.1:${apiPort}`;
    log(`kube-apiserver ready on ${server} in ${Math.round(tApi - tEtcd)} ms`);

    const caPem = await readFile(pki.caCrt, "utf8");
    const b64 = async (f: string): Promise<string> => (await readFile(f)).toString("base64");
    const kubeconfigYaml = stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        { name: "stella-e2e", cluster: { server, "certificate-authority-data": await b64(pki.caCrt) } },
      ],
      users: [
        {
          name: "stella-e2e-admin",
          user: {
            "client-certificate-data": await b64(pki.adminCrt),
            "client-key-data": await b64(pki.adminKey),
          },
        },
      ],
      contexts: [{ name: "stella-e2e", context: { cluster: "stella-e2e", user: "stella-e2e-admin" } }],
      "current-context": "stella-e2e",
    });
    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, kubeconfigYaml, { mode: 0o600 });

    e.state.server = server;
    e.state.kubeconfigPath = kubeconfigPath;
    e.state.ports = { etcd: etcdPort, etcdPeer: etcdPeerPort, apiserver: apiPort };
    writeState(e, "running");
    if (persist) live.delete(e); // from now on the processes belong to nobody but the dir's state file

    const timings: StartTimings = {
      certsMs: Math.round(tCerts - t0),
      etcdMs: Math.round(tEtcd - tCerts),
      apiserverMs: Math.round(tApi - tEtcd),
      totalMs: Math.round(performance.now() - t0),
    };
    const kubeConfig = (): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml);
      return kc;
    };
    let stopping: Promise<void> | undefined;
    return {
      server,
      kubeconfigPath,
      caPem,
      dir,
      external: false,
      processes: e.procs.map((p) => ({ name: p.name, pid: p.pid })),
      ports: { etcd: etcdPort, etcdPeer: etcdPeerPort, apiserver: apiPort },
      timings,
      kubeConfig,
      serviceAccountKubeConfig: (namespace, name, o) =>
        mintServiceAccountKubeConfig(kubeConfig(), namespace, name, o),
      stop: () =>
        (stopping ??= persist
          ? stopClusterDir(dir, { remove: !e.keepDir }).then(() => {})
          : teardown(e, STOP_GRACE_MS)),
    };
  } catch (err) {
    const detail = logTails(dir);
    await teardown(e, 2000).catch(() => {});
    const msg = `control plane failed to start in ${dir}: ${(err as Error).message}`;
    throw new Error(msg + detail, { cause: err });
  }
}

async function mintServiceAccountKubeConfig(
  admin: KubeConfig,
  namespace: string,
  name: string,
  opts: ServiceAccountTokenOptions = {},
): Promise<KubeConfig> {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("admin kubeconfig has no current cluster");
  let token: string | undefined;
  try {
    const spec = new V1TokenRequestSpec();
    spec.audiences = opts.audiences ?? [];
    spec.expirationSeconds = opts.expirationSeconds ?? 3600;
    const body = new AuthenticationV1TokenRequest();
    body.apiVersion = "authentication.k8s.io/v1";
    body.kind = "TokenRequest";
    body.spec = spec;
    const tr = await admin
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccountToken({ namespace, name, body });
    token = tr.status?.token;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) {
      throw new Error(
        `ServiceAccount ${namespace}/${name} not found: create it (e.g. install the chart) first`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const user = `system:serviceaccount:${namespace}:${name}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: cluster.name, user, namespace }],
    currentContext: user,
  });
  return kc;
}

async function existingControlPlane(path: string, log: (line: string) => void): Promise<ControlPlane> {
  const kubeconfigPath = resolve(path);
  const kubeConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };
  const cluster = kubeConfig().getCurrentCluster();
  if (!cluster) throw new Error(`${kubeconfigPath} (STELLA_E2E_KUBECONFIG) has no current cluster`);
  const caPem = cluster.caData
    ? Buffer.from(cluster.caData, "base64").toString("utf8")
    : cluster.caFile
      ? readFileSync(cluster.caFile, "utf8")
      : "";
  const dir = await mkdtemp(join(tmpdir(), `${TEMP_PREFIX}scratch-`));
  log(`using the existing cluster ${cluster.server} from ${kubeconfigPath}`);
  return {
    server: cluster.server,
    kubeconfigPath,
    caPem,
    dir,
    external: true,
    processes: [],
    ports: undefined,
    timings: { certsMs: 0, etcdMs: 0, apiserverMs: 0, totalMs: 0 },
    kubeConfig,
    serviceAccountKubeConfig: (namespace, name, o) =>
      mintServiceAccountKubeConfig(kubeConfig(), namespace, name, o),
    stop: () => rm(dir, { recursive: true, force: true }),
  };
}

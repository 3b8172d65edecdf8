// The webhook's serving certificate in self-signed mode (the chart's webhook.certManager.enabled=false): the
// operator keeps a private CA and a serving certificate in one Secret, renews them before expiry and patches the
// CA into the ValidatingWebhookConfiguration's caBundle, so the API server can verify the webhook without
// cert-manager. The cert-manager mode does not use this file (WebhookServer watches the mounted files).
//
// Pure part: generateCa, issueServingCert, needsRenewal (ECDSA P-256 with SHA-256, RFC 5280 profiles). Node has
// no X.509 writer, so certificates are built with @peculiar/x509 over WebCrypto; parsing and key checks use
// node:crypto's X509Certificate (OpenSSL).
//
// Cluster part: WebhookTls, one per replica. Every replica reads the same Secret, so they all serve the same
// pair; writes use optimistic concurrency (create → 409 AlreadyExists, replace with resourceVersion → 409
// Conflict), and the loser re-reads and adopts the winner's pair instead of writing its own.
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-misused-spread --
   client-node's model classes are plain data: its ObjectSerializer reads their fields and never their
   prototype, and its own examples pass object literals (as in runtime/lease-client.ts). */
import "reflect-metadata"; // @peculiar/x509 resolves its ASN.1 serializers with tsyringe, which needs Reflect metadata
import {
  createPrivateKey,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from "node:crypto";
import { isIP } from "node:net";

import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  type Extension,
  type JsonGeneralName,
} from "@peculiar/x509";
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  PatchStrategy,
  type KubeConfig,
  type V1Secret,
  type V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import type { Logger } from "pino";

import { StellaError } from "../../core/errors.ts";
import { isConflict, isNotFound } from "../runtime/errors.ts";
import { requestOptions } from "../runtime/request-options.ts";

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;
/** The WebCrypto implementation @peculiar/x509 signs and hashes with (its default is globalThis.crypto anyway). */
const crypto = webcrypto;

const DAY_MS = 86_400_000;
/**
 * notBefore is set this far in the past so that a replica or API server whose clock runs behind still accepts a
 * fresh certificate (client-go `cert.GenerateSelfSignedCertKey` backdates by one hour too).
 */
export const CLOCK_SKEW_BACKDATE_MS = 60 * 60 * 1000;
/** Renew when less than this fraction of the lifetime remains (cert-manager's default renewBefore is 1/3). */
export const DEFAULT_RENEW_BEFORE_FRACTION = 1 / 3;
export const DEFAULT_VALIDITY_DAYS = 365;
export const DEFAULT_CA_VALIDITY_DAYS = 3650;

export type WebhookTlsErrorCode = "WEBHOOK_TLS_INPUT" | "WEBHOOK_TLS_SECRET" | "WEBHOOK_TLS_NOT_STARTED";

export class WebhookTlsError extends StellaError<WebhookTlsErrorCode> {}

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface CertKeyPem {
  cert: string;
  key: string;
}

export interface GenerateCaOptions {
  /** Subject CN. Default `stella-webhook-ca@<unix seconds>` (unique per CA, as client-go names its own). */
  commonName?: string;
  /** Default: now minus CLOCK_SKEW_BACKDATE_MS. */
  notBefore?: Date;
  /** Lifetime from notBefore. Default 3650. */
  validityDays?: number;
}

/**
 * A self-signed CA (RFC 5280 §4.2.1.9 basicConstraints CA:TRUE, pathlen 0, critical; §4.2.1.3 keyUsage
 * keyCertSign+cRLSign, critical; a subjectKeyIdentifier) with a fresh P-256 key.
 */
export async function generateCa(opts: GenerateCaOptions = {}): Promise<CertKeyPem> {
  const notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_BACKDATE_MS);
  const notAfter = addDays(notBefore, opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS);
  const keys = await newKeyPair();
  const cn = opts.commonName ?? `stella-webhook-ca@${Math.floor(notBefore.getTime() / 1000)}`;
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [cn] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { cert: cert.toString("pem") + "\n", key: await privateKeyPem(keys.privateKey) };
}

export interface ServingCertOptions {
  /** DNS subjectAltNames; the API server verifies the Service name against them. */
  dnsNames: readonly string[];
  /** IP subjectAltNames (IPv4 or IPv6 text). */
  ips?: readonly string[];
  /** Default: now minus CLOCK_SKEW_BACKDATE_MS. */
  notBefore?: Date;
  /** Lifetime from notBefore, cut at the CA's notAfter (a leaf never outlives its issuer). Default 365. */
  validityDays?: number;
}

/**
 * A serving certificate signed by `ca`, with a fresh P-256 key: subjectAltName only (an empty subject, so the SAN
 * extension is critical per RFC 5280 §4.2.1.6; clients match SANs, never the CN, RFC 6125 §6.4.4), extendedKeyUsage
 * serverAuth, keyUsage digitalSignature (critical), basicConstraints CA:FALSE (critical), a random 126-bit serial.
 * Throws WEBHOOK_TLS_INPUT when there is no name, a name is not an IP where one is expected, or the CA key does
 * not belong to the CA certificate.
 */
export async function issueServingCert(ca: CertKeyPem, opts: ServingCertOptions): Promise<CertKeyPem> {
  const ips = opts.ips ?? [];
  if (opts.dnsNames.length === 0 && ips.length === 0) {
    throw new WebhookTlsError("WEBHOOK_TLS_INPUT", "serving certificate: no DNS name and no IP address");
  }
  for (const ip of ips) {
    if (isIP(ip) === 0)
      throw new WebhookTlsError("WEBHOOK_TLS_INPUT", `serving certificate: ${ip} is not an IP`);
  }
  const caCert = new X509Certificate(firstPem(ca.cert));
  const caNode = new NodeX509Certificate(firstPem(ca.cert));
  const caKeyObject = createPrivateKey(ca.key);
  if (!caNode.checkPrivateKey(caKeyObject)) {
    throw new WebhookTlsError("WEBHOOK_TLS_INPUT", "CA key does not belong to the CA certificate");
  }
  const signingKey = await crypto.subtle.importKey(
    "pkcs8",
    caKeyObject.export({ format: "der", type: "pkcs8" }),
    KEY_ALGORITHM,
    false,
    ["sign"],
  );
  const notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_BACKDATE_MS);
  const wanted = addDays(notBefore, opts.validityDays ?? DEFAULT_VALIDITY_DAYS);
  const notAfter = wanted > caCert.notAfter ? caCert.notAfter : wanted;
  const keys = await newKeyPair();
  const names: JsonGeneralName[] = [
    ...opts.dnsNames.map((value): JsonGeneralName => ({ type: "dns", value })),
    ...ips.map((value): JsonGeneralName => ({ type: "ip", value })),
  ];
  const extensions: Extension[] = [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
    new SubjectAlternativeNameExtension(names, true),
    await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
  ];
  const caSki = caCert.getExtension(SubjectKeyIdentifierExtension);
  if (caSki) extensions.push(new AuthorityKeyIdentifierExtension(caSki.keyId, false));
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [],
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
    },
    crypto,
  );
  return { cert: cert.toString("pem") + "\n", key: await privateKeyPem(keys.privateKey) };
}

/** Why a certificate must be replaced; undefined when it is fine. */
export type RenewalReason =
  "unparseable" | "not-yet-valid" | "expired" | "expiring" | "ca-expires-first" | "sans-differ";

export interface RenewalCheck {
  /** Renew when less than this fraction of the lifetime remains. Default 1/3. */
  renewBeforeFraction?: number;
  /** The issuing CA (first certificate of the PEM): renew when it expires before the certificate does. */
  caPem?: string;
  /** The wanted SANs: renew when the certificate's differ (compared as sets; DNS case-insensitively). */
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

/**
 * Whether `certPem` (the first certificate in it) must be renewed at `now`, and why. SANs are only compared when
 * `dnsNames` or `ips` is given.
 */
export function needsRenewal(
  certPem: string,
  now: Date,
  check: RenewalCheck = {},
): RenewalReason | undefined {
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(firstPem(certPem));
  } catch {
    return "unparseable";
  }
  const from = cert.validFromDate.getTime();
  const to = cert.validToDate.getTime();
  const t = now.getTime();
  if (t < from) return "not-yet-valid";
  if (t >= to) return "expired";
  const fraction = check.renewBeforeFraction ?? DEFAULT_RENEW_BEFORE_FRACTION;
  if (to - t < fraction * (to - from)) return "expiring";
  if (check.caPem !== undefined) {
    let caTo: number;
    try {
      caTo = new NodeX509Certificate(firstPem(check.caPem)).validToDate.getTime();
    } catch {
      return "unparseable";
    }
    if (caTo < to) return "ca-expires-first";
  }
  if (check.dnsNames !== undefined || check.ips !== undefined) {
    const have = subjectAltNames(certPem);
    if (have === undefined) return "unparseable";
    const want = { dnsNames: check.dnsNames ?? [], ips: check.ips ?? [] };
    if (!sameNames(have, want)) return "sans-differ";
  }
  return undefined;
}

/** The DNS and IP subjectAltNames of the first certificate in `certPem`, or undefined when it does not parse. */
export function subjectAltNames(certPem: string): { dnsNames: string[]; ips: string[] } | undefined {
  try {
    const san = new X509Certificate(firstPem(certPem)).getExtension(SubjectAlternativeNameExtension);
    const names = san?.names.toJSON() ?? [];
    return {
      dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
      ips: names.filter((n) => n.type === "ip").map((n) => n.value),
    };
  } catch {
    return undefined;
  }
}

/**
 * The names the serving certificate needs: the Service's DNS names as the API server addresses it
 * (`<service>.<namespace>.svc`, and with the cluster domain), plus `extraSans` (comma-separated DNS names or IP
 * addresses, e.g. 127.0.0.1 when the webhook is called by URL).
 */
export function servingNames(o: {
  serviceName: string;
  namespace: string;
  clusterDomain: string;
  extraSans?: string | readonly string[];
}): { dnsNames: string[]; ips: string[] } {
  const svc = `${o.serviceName}.${o.namespace}.svc`;
  const dnsNames = [svc, `${svc}.${o.clusterDomain}`];
  const ips: string[] = [];
  const extra = typeof o.extraSans === "string" ? o.extraSans.split(",") : (o.extraSans ?? []);
  for (const raw of extra) {
    const s = raw.trim();
    if (s === "") continue;
    const list = isIP(s) === 0 ? dnsNames : ips;
    if (!list.includes(s)) list.push(s);
  }
  return { dnsNames, ips };
}

function sameNames(
  a: { dnsNames: readonly string[]; ips: readonly string[] },
  b: { dnsNames: readonly string[]; ips: readonly string[] },
): boolean {
  const set = (xs: readonly string[], norm: (s: string) => string): string =>
    [...new Set(xs.map(norm))].sort().join(",");
  const dns = (s: string): string => s.toLowerCase();
  return set(a.dnsNames, dns) === set(b.dnsNames, dns) && set(a.ips, canonicalIp) === set(b.ips, canonicalIp);
}

/** One text form per address (IPv6 "0:0:0:0:0:0:0:1" and "::1" are the same SAN), via the WHATWG URL parser. */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip;
  }
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey("pkcs8", key));
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({
    format: "pem",
    type: "pkcs8",
  }) as string;
}

/**
 * A positive serial of 16 random bytes (RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/Browser Forum BR
 * §7.1: at least 64 bits of entropy). The top bit is cleared (positive) and the next set (no leading zero octet to
 * strip), leaving 126 random bits.
 */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x40;
  return b.toString("hex");
}

function addDays(d: Date, days: number): Date {
  return new Date(d.getTime() + days * DAY_MS);
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificates in `pem`, in order. */
export function pemCertificates(pem: string): string[] {
  return [...pem.matchAll(PEM_CERT_RE)].map((m) => m[0] + "\n");
}

function firstPem(pem: string): string {
  const first = pemCertificates(pem)[0];
  if (first === undefined) throw new WebhookTlsError("WEBHOOK_TLS_INPUT", "no PEM certificate");
  return first;
}

// ---------------------------------------------------------------------------------------------------------------
// The Secret and the caBundle.

/** Secret keys: kubernetes.io/tls's tls.crt/tls.key, the CA bundle as ca.crt (what cert-manager writes too), and
 * the CA's private key so that any replica can issue the next certificate. */
export const SECRET_KEYS = { cert: "tls.crt", key: "tls.key", ca: "ca.crt", caKey: "ca.key" } as const;

/** Previous CAs kept in the bundle after a CA rotation, so replicas still serving a certificate of the old CA are
 * trusted until they pick up the new one. */
const MAX_PREVIOUS_CAS = 1;
const MAX_WRITE_ATTEMPTS = 5;
const MAX_PATCH_ATTEMPTS = 3;
const FIELD_MANAGER = "stella-operator";

/** What the webhook serves: certificate and key (PEM), and the CA bundle the API server must trust. */
export interface WebhookTlsPair {
  cert: string;
  key: string;
  ca: string;
}

interface Material extends WebhookTlsPair {
  caKey: string;
}

export interface WebhookTlsOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the Secret (the operator's own). */
  namespace: string;
  secretName: string;
  /** The webhook Service: its DNS names go into the certificate. */
  serviceName: string;
  /** The ValidatingWebhookConfiguration whose caBundles are kept equal to the CA. */
  configurationName: string;
  clusterDomain: string;
  /** More SANs: comma-separated (the config field) or a list; IP addresses become IP SANs. */
  extraSans?: string | readonly string[];
  logger: Logger;
  /** Time seam for tests. Default `() => new Date()`. */
  now?: () => Date;
  /** Serving certificate lifetime. Default 365. */
  validityDays?: number;
  /** CA lifetime. Default 3650. */
  caValidityDays?: number;
  /** Renew when less than this fraction of a lifetime remains. Default 1/3. */
  renewBeforeFraction?: number;
  /** How often the Secret and caBundle are checked again. Default 60,000. */
  checkIntervalMs?: number;
  /** Deadline of each API call. Default 10,000. */
  requestTimeoutMs?: number;
}

export interface WebhookTlsStats {
  checks: number;
  /** Secrets created or replaced by this replica. */
  secretWrites: number;
  /** Writes lost to another replica (409), after which the Secret was read again. */
  conflicts: number;
  caBundlePatches: number;
  /** Periodic checks that failed (retried at the next interval). */
  failures: number;
}

type Assessment =
  | { kind: "ok"; material: Material }
  | { kind: "renew"; reason: string; ca: CertKeyPem; bundle: string[] }
  | { kind: "new-ca"; reason: string; previous: string[] };

/**
 * Self-signed mode's certificate manager, one per replica (not leader-only: every replica serves the webhook).
 * `start()` makes sure the Secret holds a valid pair for the wanted names, patches the caBundle, and checks again
 * every `checkIntervalMs`: another replica may have rotated the Secret, renewal may be due, or a `helm upgrade`
 * may have reset the caBundle. `onChange` listeners get each new pair (hand it to WebhookServer.setCertificate).
 */
export class WebhookTls {
  readonly stats: WebhookTlsStats = {
    checks: 0,
    secretWrites: 0,
    conflicts: 0,
    caBundlePatches: 0,
    failures: 0,
  };
  readonly #o: WebhookTlsOptions;
  readonly #core: CoreV1Api;
  readonly #admission: AdmissionregistrationV1Api;
  readonly #log: Logger;
  readonly #names: { dnsNames: string[]; ips: string[] };
  readonly #listeners: ((pair: WebhookTlsPair) => void)[] = [];
  readonly #abort = new AbortController();
  #current: Material | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;

  constructor(opts: WebhookTlsOptions) {
    this.#o = opts;
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#admission = opts.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.#log = opts.logger.child({
      component: "webhook-tls",
      secret: `${opts.namespace}/${opts.secretName}`,
      webhookConfiguration: opts.configurationName,
    });
    this.#names = servingNames(opts);
  }

  /**
   * Ensures the Secret holds a valid pair (throws when it cannot be read or written) and patches the caBundle (a
   * failure there is logged and retried at the next check), then starts the periodic check.
   */
  async start(): Promise<void> {
    await this.#round();
    const interval = this.#o.checkIntervalMs ?? 60_000;
    this.#timer = setInterval(() => {
      void this.check();
    }, interval);
    this.#timer.unref();
  }

  /** The pair in use. Throws WEBHOOK_TLS_NOT_STARTED before start() has resolved. */
  current(): WebhookTlsPair {
    const c = this.#current;
    if (c === undefined) throw new WebhookTlsError("WEBHOOK_TLS_NOT_STARTED", "webhook TLS: start() first");
    return { cert: c.cert, key: c.key, ca: c.ca };
  }

  /** Called with the new pair whenever the pair in use changes (also the first time, inside start()). */
  onChange(listener: (pair: WebhookTlsPair) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * One check now (the periodic one, also callable directly): re-read the Secret, renew when due, re-patch the
   * caBundle. Never throws: a failure is logged, counted and retried at the next check. Concurrent calls share one
   * round.
   */
  check(): Promise<void> {
    this.#inflight ??= this.#round()
      .catch((err: unknown) => {
        if (this.#abort.signal.aborted) return; // cancelled by shutdown()
        this.stats.failures++;
        this.#log.warn({ err }, "webhook certificate check failed; retrying at the next check");
      })
      .finally(() => {
        this.#inflight = undefined;
      });
    return this.#inflight;
  }

  /** Stops the periodic check and cancels the API calls in flight. */
  async shutdown(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(new WebhookTlsError("WEBHOOK_TLS_SECRET", "webhook TLS shut down"));
    await this.#inflight;
  }

  async #round(): Promise<void> {
    this.stats.checks++;
    const material = await this.#ensureSecret();
    // caBundle first, then the served certificate: after a CA rotation the API server should trust the new CA before
    // this replica serves a certificate of it (the bundle keeps the previous CA for the other replicas).
    try {
      await this.#patchCaBundle(material.ca);
    } catch (err: unknown) {
      if (this.#abort.signal.aborted) throw err;
      this.#log.error({ err }, "caBundle not patched; retrying at the next check");
    }
    this.#adopt(material);
  }

  /** Reads the Secret; writes a new pair when it is missing or due; on a lost race, adopts the winner's. */
  async #ensureSecret(): Promise<Material> {
    const { namespace, secretName: name } = this.#o;
    for (let attempt = 1; ; attempt++) {
      const secret = await this.#readSecret();
      const now = this.#now();
      const a = this.#assess(secret?.data, now);
      if (a.kind === "ok") return a.material;
      const material = await this.#issue(a, now);
      this.#log.info(
        { reason: a.reason, newCa: a.kind === "new-ca", created: secret === undefined },
        secret === undefined ? "creating the webhook TLS Secret" : "renewing the webhook certificate",
      );
      try {
        if (secret === undefined) {
          await this.#core.createNamespacedSecret(
            { namespace, body: this.#secretBody(undefined, material), fieldManager: FIELD_MANAGER },
            this.#requestOptions(),
          );
        } else {
          // The body carries metadata.resourceVersion: a replica that wrote in between makes this a 409 Conflict.
          await this.#core.replaceNamespacedSecret(
            { name, namespace, body: this.#secretBody(secret, material), fieldManager: FIELD_MANAGER },
            this.#requestOptions(),
          );
        }
        this.stats.secretWrites++;
        return material;
      } catch (err: unknown) {
        // 409 on create is AlreadyExists, on replace a stale resourceVersion: another replica won, read its pair.
        if (!isConflict(err) || attempt >= MAX_WRITE_ATTEMPTS) {
          throw new WebhookTlsError("WEBHOOK_TLS_SECRET", `Secret ${namespace}/${name}: write failed`, {
            cause: err,
          });
        }
        this.stats.conflicts++;
        this.#log.info({ attempt }, "another replica wrote the webhook TLS Secret first; reading it again");
      }
    }
  }

  async #readSecret(): Promise<V1Secret | undefined> {
    const { namespace, secretName: name } = this.#o;
    try {
      return await this.#core.readNamespacedSecret({ name, namespace }, this.#requestOptions());
    } catch (err: unknown) {
      if (isNotFound(err)) return undefined;
      throw new WebhookTlsError("WEBHOOK_TLS_SECRET", `Secret ${namespace}/${name}: read failed`, {
        cause: err,
      });
    }
  }

  /**
   * Judges the Secret's content. It is parsed defensively: anyone allowed to write the Secret controls it, so every
   * piece is checked (parses, keys match, the certificate is issued by the CA, lifetimes, names) before it is served.
   */
  #assess(data: Record<string, string> | undefined, now: Date): Assessment {
    const text = (k: string): string | undefined => {
      const v = data?.[k];
      return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
    };
    const fraction = this.#o.renewBeforeFraction ?? DEFAULT_RENEW_BEFORE_FRACTION;
    const bundle = pemCertificates(text(SECRET_KEYS.ca) ?? "").filter((c) => {
      const r = needsRenewal(c, now, { renewBeforeFraction: 0 });
      return r === undefined; // drops expired and unparseable CAs
    });
    const caCert = bundle[0];
    const caKey = text(SECRET_KEYS.caKey);
    const previous = bundle.slice(0, MAX_PREVIOUS_CAS);
    if (caCert === undefined || caKey === undefined) {
      return { kind: "new-ca", reason: data === undefined ? "no Secret" : "no valid CA", previous };
    }
    const caProblem = caProblemOf(caCert, caKey, now, fraction);
    if (caProblem !== undefined) return { kind: "new-ca", reason: caProblem, previous };
    const ca = { cert: caCert, key: caKey };
    const validityMs = (this.#o.validityDays ?? DEFAULT_VALIDITY_DAYS) * DAY_MS;
    const renew = (reason: string): Assessment =>
      // A CA that would cut the next certificate short is replaced along with it.
      new NodeX509Certificate(caCert).validToDate.getTime() < now.getTime() + validityMs
        ? { kind: "new-ca", reason: `${reason}; the CA expires before a new certificate would`, previous }
        : { kind: "renew", reason, ca, bundle };
    const cert = text(SECRET_KEYS.cert);
    const key = text(SECRET_KEYS.key);
    if (cert === undefined || key === undefined) return renew("no certificate");
    if (!keyMatches(cert, key)) return renew("key does not match the certificate");
    if (!issuedBy(cert, caCert)) return renew("certificate not issued by the CA");
    const reason = needsRenewal(cert, now, { renewBeforeFraction: fraction, caPem: caCert, ...this.#names });
    if (reason !== undefined) return renew(reason);
    return { kind: "ok", material: { cert, key, ca: bundle.join(""), caKey } };
  }

  async #issue(a: Exclude<Assessment, { kind: "ok" }>, now: Date): Promise<Material> {
    const notBefore = new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS);
    let ca: CertKeyPem;
    let bundle: string[];
    if (a.kind === "new-ca") {
      ca = await generateCa({ notBefore, validityDays: this.#o.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS });
      bundle = [ca.cert, ...a.previous];
    } else {
      ca = a.ca;
      bundle = a.bundle;
    }
    const leaf = await issueServingCert(ca, {
      ...this.#names,
      notBefore,
      validityDays: this.#o.validityDays ?? DEFAULT_VALIDITY_DAYS,
    });
    return { cert: leaf.cert, key: leaf.key, ca: bundle.join(""), caKey: ca.key };
  }

  #secretBody(existing: V1Secret | undefined, m: Material): V1Secret {
    const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
    const data = {
      [SECRET_KEYS.cert]: b64(m.cert),
      [SECRET_KEYS.key]: b64(m.key),
      [SECRET_KEYS.ca]: b64(m.ca),
      [SECRET_KEYS.caKey]: b64(m.caKey),
    };
    // Replace keeps what others put on the Secret (labels, annotations, owner references, its type: immutable).
    if (existing !== undefined) return { ...existing, data };
    return {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: this.#o.secretName,
        namespace: this.#o.namespace,
        labels: { "app.kubernetes.io/managed-by": FIELD_MANAGER, "app.kubernetes.io/component": "webhook" },
      },
      type: "kubernetes.io/tls",
      data,
    };
  }

  /** Sets caBundle (base64 of the CA bundle PEM) on every webhook of the configuration where it differs. */
  async #patchCaBundle(caPem: string): Promise<void> {
    const name = this.#o.configurationName;
    const want = Buffer.from(caPem, "utf8").toString("base64");
    for (let attempt = 1; ; attempt++) {
      let cfg: V1ValidatingWebhookConfiguration;
      try {
        cfg = await this.#admission.readValidatingWebhookConfiguration({ name }, this.#requestOptions());
      } catch (err: unknown) {
        if (!isNotFound(err)) throw err;
        this.#log.warn("ValidatingWebhookConfiguration not found; patching its caBundle at the next check");
        return;
      }
      const stale = (cfg.webhooks ?? []).filter((w) => w.clientConfig.caBundle !== want);
      if (stale.length === 0) return;
      // Strategic merge patch: webhooks merge by name (k8s.io/api admissionregistration/v1 patchMergeKey), so only
      // caBundle changes. The resourceVersion precondition turns a concurrent edit into a 409 and a fresh read.
      const body = {
        metadata: { resourceVersion: cfg.metadata?.resourceVersion },
        webhooks: stale.map((w) => ({ name: w.name, clientConfig: { caBundle: want } })),
      };
      try {
        await this.#admission.patchValidatingWebhookConfiguration(
          { name, body, fieldManager: FIELD_MANAGER },
          this.#requestOptions(PatchStrategy.StrategicMergePatch),
        );
        this.stats.caBundlePatches++;
        this.#log.info({ webhooks: stale.map((w) => w.name) }, "caBundle patched");
        return;
      } catch (err: unknown) {
        if (isNotFound(err)) {
          this.#log.warn("ValidatingWebhookConfiguration not found; patching its caBundle at the next check");
          return;
        }
        if (!isConflict(err) || attempt >= MAX_PATCH_ATTEMPTS) throw err;
      }
    }
  }

  #adopt(m: Material): void {
    const c = this.#current;
    if (c !== undefined && c.cert === m.cert && c.key === m.key && c.ca === m.ca) return;
    this.#current = m;
    const serial = new NodeX509Certificate(m.cert).serialNumber;
    this.#log.info(
      { serial, notAfter: new NodeX509Certificate(m.cert).validTo },
      "webhook certificate in use",
    );
    const pair = this.current();
    for (const l of this.#listeners) {
      try {
        l(pair);
      } catch (err: unknown) {
        this.#log.error({ err }, "webhook certificate listener failed");
      }
    }
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }

  #requestOptions(contentType?: PatchStrategy): ReturnType<typeof requestOptions> {
    const timeout = AbortSignal.timeout(this.#o.requestTimeoutMs ?? 10_000);
    return requestOptions({ signal: AbortSignal.any([this.#abort.signal, timeout]), contentType });
  }
}

/** Why the CA cannot sign the next certificate, or undefined. */
function caProblemOf(caCert: string, caKey: string, now: Date, fraction: number): string | undefined {
  let ca: NodeX509Certificate;
  try {
    ca = new NodeX509Certificate(caCert);
  } catch {
    return "CA certificate does not parse";
  }
  if (!ca.ca) return "CA certificate is not a CA (basicConstraints)";
  if (!keyMatches(caCert, caKey)) return "CA key does not match the CA certificate";
  const r = needsRenewal(caCert, now, { renewBeforeFraction: fraction });
  return r === undefined ? undefined : `CA ${r}`;
}

function keyMatches(certPem: string, keyPem: string): boolean {
  try {
    return new NodeX509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new NodeX509Certificate(certPem);
    const ca = new NodeX509Certificate(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

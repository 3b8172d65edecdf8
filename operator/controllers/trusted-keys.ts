import { CoreV1Api, type KubeConfig, type V1Secret, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";

import { loadPublicKey, type PublicKey } from "../../core/dsse/keys.ts";
import { StellaError } from "../../core/errors.ts";
import { ResourceInformer } from "../runtime/informer.ts";

/**
 * The public keys attestations are verified against: every data entry of one Secret in the
 * operator's namespace is a PEM public key (its name is just a label). Watched with a
 * `metadata.name` field selector: the chart's RBAC grants list/watch on this one name only.
 */
export class TrustedKeys {
  readonly informer: ResourceInformer<V1Secret>;
  readonly secretName: string;
  readonly namespace: string;
  #keys: PublicKey[] = [];
  #problems: string[] = [];
  readonly #listeners: (() => void)[] = [];
  readonly #log: Logger;

  constructor(kc: KubeConfig, namespace: string, secretName: string, logger: Logger) {
    this.namespace = namespace;
    this.secretName = secretName;
    this.#log = logger.child({ component: "trusted-keys", secret: `${namespace}/${secretName}` });
    const api = kc.makeApiClient(CoreV1Api);
    const fieldSelector = `metadata.name=${secretName}`;
    this.informer = new ResourceInformer<V1Secret>({
      name: "trusted-keys-secret",
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
      list: () => api.listNamespacedSecret({ namespace, fieldSelector }),
      watch: new Watch(kc),
      fieldSelector,
      logger,
    });
    this.informer.onChange(() => {
      this.#reload();
    });
  }

  /** The keys now; empty when the Secret is missing or holds no usable key. */
  keys(): readonly PublicKey[] {
    return this.#keys;
  }

  /** Entries that are not usable keys, with why (for conditions and logs). */
  problems(): readonly string[] {
    return this.#problems;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  #reload(): void {
    const secret = this.informer.get(`${this.namespace}/${this.secretName}`);
    const { keys, problems } = keysFromSecretData(
      secret?.data ?? {},
      `Secret ${this.namespace}/${this.secretName}`,
    );
    this.#keys = keys;
    this.#problems = problems;
    this.#log.info({ keyids: keys.map((k) => k.keyid), problems }, "trusted keys loaded");
    for (const l of this.#listeners) l();
  }
}

/** Parses a Secret's `data` (base64 PEM values); a bad entry is reported, never fatal. */
export function keysFromSecretData(
  data: Record<string, string>,
  where: string,
): { keys: PublicKey[]; problems: string[] } {
  const keys: PublicKey[] = [];
  const problems: string[] = [];
  for (const name of Object.keys(data).sort()) {
    try {
      keys.push(loadPublicKey(Buffer.from(data[name] ?? "", "base64"), `${where} key ${name}`));
    } catch (err) {
      if (!(err instanceof StellaError)) throw err;
      problems.push(err.message);
    }
  }
  return { keys, problems };
}

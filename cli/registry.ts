// Registry plumbing shared by the image commands: reference parsing, plain-HTTP choice, credentials.
import type { Command } from "commander";

import { RegistryClient, type RegistryAuth } from "../core/oci/client.ts";
import { formatReference, manifestRef, parseReference, type ImageReference } from "../core/oci/reference.ts";
import { VERSION } from "./version.ts";

export interface RegistryFlags {
  plainHttp?: boolean;
}

export interface RegistryTarget {
  client: RegistryClient;
  ref: ImageReference;
  /** Tag or digest to resolve. */
  manifestRef: string;
  /** `registry/repo[:tag][@digest]`, for messages. */
  display: string;
}

export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk plain HTTP to the registry (default only for localhost and 127.0.0.0/8)")
    .addHelpText(
      "after",
      "\nRegistry credentials: STELLA_REGISTRY_USERNAME + STELLA_REGISTRY_PASSWORD (basic, or exchanged for a\n" +
        "bearer token when the registry asks), or STELLA_REGISTRY_TOKEN (a bearer token).",
    );
}

/** Loopback registries speak plain HTTP by default, as docker, oras and skopeo treat them. */
function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function authFromEnv(): RegistryAuth | undefined {
  const token = process.env.STELLA_REGISTRY_TOKEN;
  if (token !== undefined && token !== "") return { token };
  const username = process.env.STELLA_REGISTRY_USERNAME;
  const password = process.env.STELLA_REGISTRY_PASSWORD;
  if (username !== undefined && username !== "" && password !== undefined) return { username, password };
  return undefined;
}

export function registryTarget(reference: string, flags: RegistryFlags): RegistryTarget {
  const ref = parseReference(reference);
  const auth = authFromEnv();
  const client = new RegistryClient({
    registry: ref.registry,
    insecure: flags.plainHttp === true || isLoopback(ref.registry),
    userAgent: `stella/${VERSION}`,
    ...(auth === undefined ? {} : { auth }),
  });
  return { client, ref, manifestRef: manifestRef(ref), display: formatReference(ref) };
}

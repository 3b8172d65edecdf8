// admission.k8s.io/v1 AdmissionReview: the request the API server posts to the webhook, read defensively (the
// body comes over the network; a malformed one is a 400 naming the field), and the response it expects.
import { StellaError } from "../../core/errors.ts";

export type ReviewErrorCode = "REVIEW_MALFORMED";
export class ReviewError extends StellaError<ReviewErrorCode> {}

export const REVIEW_API_VERSION = "admission.k8s.io/v1";
export type Operation = "CREATE" | "UPDATE" | "DELETE" | "CONNECT";

export interface ReviewRequest {
  uid: string;
  /** The object's kind (group, version, kind): "apps"/"v1"/"Deployment", "batch"/"v1"/"CronJob"… */
  kind: { group: string; version: string; kind: string };
  operation: Operation;
  namespace: string;
  name: string;
  object: unknown;
  /** The object before an UPDATE (absent on CREATE). */
  oldObject: unknown;
  dryRun: boolean;
}

export interface ReviewDecision {
  allowed: boolean;
  /** Shown to the user on denial (kubectl prints it), and recorded with the decision. */
  message?: string;
  /** Shown by kubectl as "Warning: …" (audit mode, a missing attestation that only warns). */
  warnings?: string[];
}

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ReviewError("REVIEW_MALFORMED", `AdmissionReview: ${where}: expected an object`);
  }
  return v as Json;
}

function str(o: Json, key: string, where: string, required = true): string {
  const v = o[key];
  if (v === undefined && !required) return "";
  if (typeof v !== "string")
    throw new ReviewError("REVIEW_MALFORMED", `AdmissionReview: ${where}.${key}: expected a string`);
  return v;
}

const OPERATIONS: readonly string[] = ["CREATE", "UPDATE", "DELETE", "CONNECT"];

/** Reads an AdmissionReview body; throws ReviewError naming the first field that is wrong. */
export function parseReview(body: unknown): ReviewRequest {
  const review = obj(body, "body");
  const apiVersion = str(review, "apiVersion", "");
  if (apiVersion !== REVIEW_API_VERSION) {
    throw new ReviewError(
      "REVIEW_MALFORMED",
      `AdmissionReview: apiVersion: ${apiVersion}, expected ${REVIEW_API_VERSION}`,
    );
  }
  if (str(review, "kind", "") !== "AdmissionReview") {
    throw new ReviewError("REVIEW_MALFORMED", "AdmissionReview: kind: expected AdmissionReview");
  }
  const req = obj(review.request, "request");
  const kind = obj(req.kind, "request.kind");
  const operation = str(req, "operation", "request");
  if (!OPERATIONS.includes(operation)) {
    throw new ReviewError(
      "REVIEW_MALFORMED",
      `AdmissionReview: request.operation: ${operation}, expected one of ${OPERATIONS.join(", ")}`,
    );
  }
  const uid = str(req, "uid", "request");
  if (uid === "") throw new ReviewError("REVIEW_MALFORMED", "AdmissionReview: request.uid: empty");
  return {
    uid,
    kind: {
      group: str(kind, "group", "request.kind", false),
      version: str(kind, "version", "request.kind"),
      kind: str(kind, "kind", "request.kind"),
    },
    operation: operation as Operation,
    namespace: str(req, "namespace", "request", false),
    name: str(req, "name", "request", false),
    object: req.object ?? undefined,
    oldObject: req.oldObject ?? undefined,
    dryRun: req.dryRun === true,
  };
}

/** The AdmissionReview answering request `uid`. A denial carries 403 Forbidden and the message. */
export function reviewResponse(uid: string, d: ReviewDecision): Json {
  const response: Json = { uid, allowed: d.allowed };
  if (!d.allowed) response.status = { code: 403, reason: "Forbidden", message: d.message ?? "denied" };
  else if (d.message !== undefined) response.status = { code: 200, message: d.message };
  if (d.warnings && d.warnings.length > 0) response.warnings = d.warnings;
  return { apiVersion: REVIEW_API_VERSION, kind: "AdmissionReview", response };
}

/**
 * Errors of the admin API. Every error response is JSON `{error, message}`: `error` a
 * stable snake_case code for scripts, `message` a sentence for people. Routes throw
 * `AdminError` for expected failures; the app's one `onError` renders it.
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** An expected failure of an admin request: rendered as `{error: code, message}`. */
export class AdminError extends Error {
  override name = "AdminError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: string;
  message: string;
}

const CODE_BY_STATUS: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  500: "internal",
  503: "unavailable",
};

export function errorCodeForStatus(status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? "internal" : "bad_request");
}

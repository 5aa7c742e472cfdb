/**
 * The command line's side of the HTTP admin API: one JSON request through undici, and
 * what its failures become. A refused request (any 4xx/5xx) throws `AdminRequestError`
 * carrying the server's `{error, message}`; the command then exits 1 printing the
 * message. An admin API that cannot be reached is a failure too (exit 1), with the URL
 * in the message. Loaded only when an admin command runs (undici is not small).
 */
import { request } from "undici";

export const ADMIN_TIMEOUT_MS = 30_000;
/** Answers of the admin API are small; a bigger one is not from Brook. */
const RESPONSE_BYTES_MAX = 16 * 1024 * 1024;

/** The server refused the request; `message` is the server's. */
export class AdminRequestError extends Error {
  override name = "AdminRequestError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class AdminClient {
  constructor(readonly baseUrl: string) {}

  get<T>(path: string): Promise<T> {
    return this.#call<T>("GET", path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.#call<T>("POST", path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.#call<T>("DELETE", path);
  }

  async #call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    let response;
    try {
      response = await request(url, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? null : JSON.stringify(body),
        headersTimeout: ADMIN_TIMEOUT_MS,
        bodyTimeout: ADMIN_TIMEOUT_MS,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot reach the admin API at ${this.baseUrl}: ${reason}`, { cause: error });
    }
    const length = Number(response.headers["content-length"] ?? 0);
    if (length > RESPONSE_BYTES_MAX) {
      await response.body.dump();
      throw new Error(`Admin API answer is too large: ${length} bytes`);
    }
    const text = await response.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(
        `Admin API at ${this.baseUrl} answered ${method} ${path} with ${response.statusCode} and no JSON`,
      );
    }
    if (response.statusCode >= 400) {
      const fields = (parsed ?? {}) as { error?: unknown; message?: unknown };
      const code = typeof fields.error === "string" ? fields.error : "unknown";
      const message =
        typeof fields.message === "string" ? fields.message : `HTTP ${response.statusCode}`;
      throw new AdminRequestError(response.statusCode, code, message);
    }
    return parsed as T;
  }
}

/**
 * What a Kafka API handler is: its tables, the versions Brook supports, and a function
 * from a decoded request to a response value (or a promise of one, for long polls). The
 * server owns framing, ordering and encoding; handlers never touch sockets.
 */
import type { Encodable, MessageSchema, VersionRange } from "../protocol/schema.ts";

/** Returned by a handler that must not answer (Produce with acks=0). */
export const NO_RESPONSE: unique symbol = Symbol("noResponse");

export interface RequestContext {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly clientId: string | null;
  /** Unique per connection in this process; for logs and fetch sessions. */
  readonly connectionId: number;
  /** Where the client connected from, as host:port. */
  readonly remote: string;
}

export type HandlerResult<Res> = Encodable<Res> | typeof NO_RESPONSE;

export interface ApiHandler<Req = any, Res = any> {
  readonly request: MessageSchema<Req>;
  readonly response: MessageSchema<Res>;
  /** Versions Brook answers; within the table's valid versions. */
  readonly versions: VersionRange;
  /**
   * Lowest version named in ApiVersions when it differs from `versions[0]`: clients
   * that read the advertised range for other purposes need it (see Produce).
   */
  readonly advertisedMinVersion?: number;
  handle(request: Req, context: RequestContext): HandlerResult<Res> | Promise<HandlerResult<Res>>;
}

/** Helper so handler modules get their request/response types checked. */
export function defineHandler<Req, Res>(handler: ApiHandler<Req, Res>): ApiHandler<Req, Res> {
  return handler;
}

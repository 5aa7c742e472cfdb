/**
 * Request and response headers. Which header version a message uses follows from the
 * API's flexible versions: request header v2 and response header v1 for flexible
 * versions, v1 and v0 otherwise; the ApiVersions response header is always v0 so that a
 * client that sent a version the broker does not know can still read the answer.
 */
import { decode, encode } from "./codec.ts";
import { RequestHeader, type RequestHeaderData } from "./generated/request-header.ts";
import { ResponseHeader } from "./generated/response-header.ts";
import { Reader } from "./reader.ts";
import { inRange, type MessageSchema } from "./schema.ts";
import type { OutChunk } from "./deferred-bytes.ts";
import type { Encodable } from "./schema.ts";
import { Writer } from "./writer.ts";

export const API_VERSIONS_KEY = 18;
/** Api key, api version, correlation id: what every request header starts with. */
export const REQUEST_HEADER_BYTES_MIN = 8;

export function requestHeaderVersion(
  request: MessageSchema | undefined,
  apiVersion: number,
): number {
  if (request === undefined) return 1;
  return inRange(apiVersion, request.flexibleVersions) ? 2 : 1;
}

export function responseHeaderVersion(
  apiKey: number,
  response: MessageSchema,
  apiVersion: number,
): number {
  if (apiKey === API_VERSIONS_KEY) return 0;
  return inRange(apiVersion, response.flexibleVersions) ? 1 : 0;
}

/** Reads the fixed part only, before the API's table is known. */
export function peekRequestHeader(frame: Uint8Array): {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
} {
  const reader = new Reader(frame);
  return { apiKey: reader.int16(), apiVersion: reader.int16(), correlationId: reader.int32() };
}

export function decodeRequestHeader(reader: Reader, headerVersion: number): RequestHeaderData {
  return decode(RequestHeader, headerVersion, reader);
}

export function encodeResponseHeader(
  writer: Writer,
  correlationId: number,
  headerVersion: number,
): void {
  encode(ResponseHeader, headerVersion, { correlationId }, writer);
}

/** The frame length in front of every Kafka request and response. */
const LENGTH_PREFIX_BYTES = 4;

/**
 * A whole response frame: the 4-byte length, the header and the body, as chunks (large
 * byte fields by reference, deferred record batches still deferred).
 */
export function encodeResponseFrame<T>(
  apiKey: number,
  apiVersion: number,
  correlationId: number,
  response: MessageSchema<T>,
  value: Encodable<T>,
): OutChunk[] {
  const writer = new Writer();
  writer.int32(0); // Frame length, patched below.
  encodeResponseHeader(writer, correlationId, responseHeaderVersion(apiKey, response, apiVersion));
  encode(response, apiVersion, value, writer);
  const total = writer.length;
  const chunks = writer.chunks();
  // The first chunk is the writer's scratch buffer, which holds at least the length.
  const head = chunks[0] as Uint8Array;
  new DataView(head.buffer, head.byteOffset, head.byteLength).setInt32(
    0,
    total - LENGTH_PREFIX_BYTES,
  );
  return chunks;
}

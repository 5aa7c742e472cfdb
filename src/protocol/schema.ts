/**
 * The shape of the generated protocol tables. One table describes a message for every
 * version: each field says in which versions it exists, is nullable, or is tagged. The
 * generic codec in `codec.ts` walks these tables; nothing is hand-written per version.
 */

import type { DeferredBytes } from "./deferred-bytes.ts";

/** Inclusive version range. `VERSION_MAX` stands for Kafka's open-ended "N+". */
export type VersionRange = readonly [number, number];
export const VERSION_MAX = 0x7fff;

export type PrimitiveType =
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint16"
  | "float64"
  | "bool"
  | "uuid"
  | "string"
  | "bytes"
  | "records";

export interface FieldSchema {
  /** camelCase of the Kafka field name. */
  readonly name: string;
  readonly type: PrimitiveType | "struct" | "array";
  /** Element type of an array. */
  readonly items?: PrimitiveType | "struct";
  /** Fields of a struct, or of the struct elements of an array. */
  readonly fields?: readonly FieldSchema[];
  readonly versions: VersionRange | null;
  readonly nullableVersions?: VersionRange;
  readonly taggedVersions?: VersionRange;
  readonly tag?: number;
  /** Field-level override of the message's flexible versions (`null`: never compact). */
  readonly flexibleVersions?: VersionRange | null;
  /** Value when absent from a version or omitted by the caller; computed by the generator. */
  readonly default: unknown;
}

export interface MessageSchema<T = unknown> {
  readonly name: string;
  readonly apiKey: number;
  readonly kind: "request" | "response" | "header";
  readonly validVersions: VersionRange;
  readonly flexibleVersions: VersionRange | null;
  /** The newest version is still being designed upstream; Brook does not advertise it. */
  readonly latestVersionUnstable: boolean;
  readonly fields: readonly FieldSchema[];
  /** Phantom: ties the table to its decoded data type. Never set. */
  readonly __data?: T;
}

export type DataOf<S> = S extends MessageSchema<infer T> ? T : never;

/**
 * What an encoder accepts: any field may be left out and then takes its default; a
 * bytes field may be deferred (read by the connection as it sends, deferred-bytes.ts).
 */
export type Encodable<T> = T extends Uint8Array
  ? T | DeferredBytes
  : T extends readonly (infer E)[]
    ? readonly Encodable<E>[]
    : T extends object
      ? { readonly [K in keyof T]?: Encodable<T[K]> }
      : T;

export function inRange(version: number, range: VersionRange | null | undefined): boolean {
  return range != null && version >= range[0] && version <= range[1];
}

/**
 * The one generic encoder/decoder for every Kafka message and version. It walks a
 * generated table (`schema.ts`), so adding an API or a version needs no code here.
 *
 * Encoding rules (Kafka protocol guide): in flexible versions strings, bytes, records
 * and arrays carry unsigned-varint lengths plus one, 0 meaning null, and every struct
 * ends with a tagged-field section; otherwise lengths are int16 (strings) or int32
 * (bytes, arrays), -1 meaning null. Nullable structs carry an int8 presence marker.
 */
import { Buffer } from "node:buffer";
import { Reader } from "./reader.ts";
import { Writer } from "./writer.ts";
import type { DeferredBytes } from "./deferred-bytes.ts";
import type { Encodable, FieldSchema, MessageSchema, PrimitiveType } from "./schema.ts";
import { inRange } from "./schema.ts";

export class EncodeError extends Error {
  override name = "EncodeError";
}

type Value = unknown;
type Struct = Record<string, Value>;

/** Per-message context: the version and whether it is flexible. */
interface Mode {
  readonly version: number;
  readonly flexible: boolean;
}

function isFlexibleField(field: FieldSchema, mode: Mode): boolean {
  if (field.flexibleVersions === undefined) return mode.flexible;
  return inRange(mode.version, field.flexibleVersions);
}

function cloneDefault(value: Value): Value {
  if (Array.isArray(value)) return [];
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    const copy: Struct = {};
    for (const [key, inner] of Object.entries(value)) copy[key] = cloneDefault(inner);
    return copy;
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Decoding

export function decode<T>(schema: MessageSchema<T>, version: number, reader: Reader): T {
  const mode: Mode = { version, flexible: inRange(version, schema.flexibleVersions) };
  return decodeStruct(schema.fields, mode, reader) as T;
}

function decodeStruct(fields: readonly FieldSchema[], mode: Mode, reader: Reader): Struct {
  const out: Struct = {};
  for (const field of fields) {
    if (!inRange(mode.version, field.versions) || inRange(mode.version, field.taggedVersions)) {
      out[field.name] = cloneDefault(field.default);
      continue;
    }
    out[field.name] = decodeField(field, mode, reader);
  }
  if (mode.flexible) decodeTaggedFields(fields, mode, reader, out);
  return out;
}

function decodeTaggedFields(
  fields: readonly FieldSchema[],
  mode: Mode,
  reader: Reader,
  out: Struct,
): void {
  const count = reader.uvarint();
  let previousTag = -1;
  for (let i = 0; i < count && !reader.failed; i++) {
    const tag = reader.uvarint();
    const size = reader.uvarint();
    if (tag <= previousTag) return reader.fail("Tagged fields out of order");
    previousTag = tag;
    const field = fields.find((f) => f.tag === tag && inRange(mode.version, f.taggedVersions));
    if (field === undefined) {
      reader.view(size); // Unknown tags are skipped: that is what tags are for.
      continue;
    }
    const end = reader.offset + size;
    if (end > reader.end) return reader.fail("Tagged field longer than its frame");
    const inner = new Reader(reader.buffer, reader.offset, end);
    out[field.name] = decodeField(field, mode, inner);
    if (!inner.complete())
      return reader.fail(
        `Tagged field ${field.name} malformed: ${inner.failure || "bytes left over"}`,
      );
    reader.offset = end;
  }
}

function decodeField(field: FieldSchema, mode: Mode, reader: Reader): Value {
  const nullable = inRange(mode.version, field.nullableVersions);
  const flexible = isFlexibleField(field, mode);
  if (field.type === "array") {
    const count = flexible ? reader.uvarint() - 1 : reader.int32();
    if (count < 0) {
      if (nullable && count === -1) return null;
      reader.fail(`Field ${field.name}: null or negative array length`);
      return [];
    }
    // Each element takes at least one byte: a count above the bytes left is a lie.
    if (count > reader.remaining) {
      reader.fail(`Field ${field.name}: array of ${count} longer than the frame`);
      return [];
    }
    const items: Value[] = new Array(count);
    for (let i = 0; i < count; i++) {
      items[i] =
        field.items === "struct"
          ? decodeStruct(field.fields!, mode, reader)
          : decodePrimitive(field.items!, false, flexible, reader, field.name);
      if (reader.failed) return [];
    }
    return items;
  }
  if (field.type === "struct") {
    if (nullable && reader.int8() < 0) return null;
    return decodeStruct(field.fields!, mode, reader);
  }
  return decodePrimitive(field.type, nullable, flexible, reader, field.name);
}

function decodePrimitive(
  type: PrimitiveType,
  nullable: boolean,
  flexible: boolean,
  reader: Reader,
  name: string,
): Value {
  switch (type) {
    case "int8":
      return reader.int8();
    case "int16":
      return reader.int16();
    case "uint16":
      return reader.uint16();
    case "int32":
      return reader.int32();
    case "int64":
      return reader.int64();
    case "float64":
      return reader.float64();
    case "bool":
      return reader.bool();
    case "uuid":
      return reader.uuid();
    case "string": {
      const size = flexible ? reader.uvarint() - 1 : reader.int16();
      if (size < 0) {
        if (nullable && size === -1) return null;
        reader.fail(`Field ${name}: null or negative string length`);
        return "";
      }
      return reader.utf8(size);
    }
    case "bytes":
    case "records": {
      const size = flexible ? reader.uvarint() - 1 : reader.int32();
      if (size < 0) {
        if (size === -1 && (nullable || type === "records")) return null;
        reader.fail(`Field ${name}: null or negative bytes length`);
        return new Uint8Array(0);
      }
      return reader.view(size);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Encoding

export function encode<T>(
  schema: MessageSchema<T>,
  version: number,
  value: Encodable<T>,
  writer: Writer = new Writer(),
): Writer {
  const mode: Mode = { version, flexible: inRange(version, schema.flexibleVersions) };
  encodeStruct(schema.fields, mode, value as Struct, writer);
  return writer;
}

export function encodeToBuffer<T>(
  schema: MessageSchema<T>,
  version: number,
  value: Encodable<T>,
): Buffer {
  return encode(schema, version, value).toBuffer();
}

function encodeStruct(
  fields: readonly FieldSchema[],
  mode: Mode,
  value: Struct,
  writer: Writer,
): void {
  let tagged: FieldSchema[] | null = null;
  for (const field of fields) {
    if (!inRange(mode.version, field.versions)) continue;
    if (inRange(mode.version, field.taggedVersions)) {
      const fieldValue = value[field.name];
      if (fieldValue !== undefined && !isDefault(fieldValue, field.default))
        (tagged ??= []).push(field);
      continue;
    }
    const fieldValue = value[field.name];
    encodeField(field, mode, fieldValue === undefined ? field.default : fieldValue, writer);
  }
  if (!mode.flexible) return;
  if (tagged === null) {
    writer.uvarint(0);
    return;
  }
  tagged.sort((a, b) => a.tag! - b.tag!);
  writer.uvarint(tagged.length);
  for (const field of tagged) {
    const inner = new Writer(64);
    encodeField(field, mode, value[field.name], inner);
    const bytes = inner.toBuffer();
    writer.uvarint(field.tag!);
    writer.uvarint(bytes.byteLength);
    writer.bytes(bytes);
  }
}

/** Tagged fields equal to their default are left out, as Kafka's encoders do. */
function isDefault(value: Value, fallback: Value): boolean {
  if (value === fallback) return true;
  if (Array.isArray(value)) return value.length === 0 && Array.isArray(fallback);
  if (value instanceof Uint8Array || fallback instanceof Uint8Array) {
    return (
      value instanceof Uint8Array &&
      fallback instanceof Uint8Array &&
      value.byteLength === 0 &&
      fallback.byteLength === 0
    );
  }
  if (
    value === null ||
    fallback === null ||
    typeof value !== "object" ||
    typeof fallback !== "object"
  )
    return false;
  const expected = fallback as Struct;
  return Object.entries(value as Struct).every(
    ([key, inner]) => inner === undefined || isDefault(inner, expected[key]),
  );
}

function encodeField(field: FieldSchema, mode: Mode, value: Value, writer: Writer): void {
  const nullable = inRange(mode.version, field.nullableVersions);
  const flexible = isFlexibleField(field, mode);
  if (field.type === "array") {
    if (value === null || value === undefined) {
      if (!nullable)
        throw new EncodeError(`Field ${field.name} is not nullable in v${mode.version}`);
      if (flexible) writer.uvarint(0);
      else writer.int32(-1);
      return;
    }
    const items = value as Value[];
    if (flexible) writer.uvarint(items.length + 1);
    else writer.int32(items.length);
    for (const item of items) {
      if (field.items === "struct")
        encodeStruct(field.fields!, mode, (item ?? {}) as Struct, writer);
      else encodePrimitive(field.items!, false, flexible, item, writer, field.name);
    }
    return;
  }
  if (field.type === "struct") {
    if (nullable) {
      if (value === null) {
        writer.int8(-1);
        return;
      }
      writer.int8(1);
    }
    encodeStruct(field.fields!, mode, (value ?? {}) as Struct, writer);
    return;
  }
  encodePrimitive(field.type, nullable, flexible, value, writer, field.name);
}

function encodePrimitive(
  type: PrimitiveType,
  nullable: boolean,
  flexible: boolean,
  value: Value,
  writer: Writer,
  name: string,
): void {
  switch (type) {
    case "int8":
      return writer.int8(value as number);
    case "int16":
      return writer.int16(value as number);
    case "uint16":
      return writer.uint16(value as number);
    case "int32":
      return writer.int32(value as number);
    case "int64":
      return writer.int64(value as number);
    case "float64":
      return writer.float64(value as number);
    case "bool":
      return writer.bool(value as boolean);
    case "uuid":
      return writer.uuid(value as string);
    case "string": {
      if (value === null) {
        if (!nullable) throw new EncodeError(`Field ${name} is not nullable`);
        if (flexible) writer.uvarint(0);
        else writer.int16(-1);
        return;
      }
      const text = value as string;
      const size = Buffer.byteLength(text, "utf8");
      if (flexible) writer.uvarint(size + 1);
      else writer.int16(size);
      writer.utf8(text, size);
      return;
    }
    case "bytes":
    case "records": {
      if (value === null) {
        if (!nullable && type !== "records") throw new EncodeError(`Field ${name} is not nullable`);
        if (flexible) writer.uvarint(0);
        else writer.int32(-1);
        return;
      }
      // Record batches may be deferred (a file range the connection reads as it sends).
      const data = value as Uint8Array | DeferredBytes;
      if (flexible) writer.uvarint(data.byteLength + 1);
      else writer.int32(data.byteLength);
      writer.bytes(data);
      return;
    }
  }
}

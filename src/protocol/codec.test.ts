import { describe, expect, test } from "bun:test";
import { decode, encode } from "./codec.ts";
import { API_TABLES } from "./generated/index.ts";
import { Reader } from "./reader.ts";
import { type FieldSchema, inRange, type MessageSchema, type PrimitiveType } from "./schema.ts";
import { SeededRandom, type Random } from "../util/random.ts";

function randomPrimitive(type: PrimitiveType, random: Random): unknown {
  switch (type) {
    case "int8":
      return random.int(-128, 127);
    case "int16":
      return random.int(-32768, 32767);
    case "uint16":
      return random.int(0, 65535);
    case "int32":
      return random.int(-(2 ** 31), 2 ** 31 - 1);
    case "int64":
      return random.int(-(2 ** 52), 2 ** 52);
    case "float64":
      return random.next() * 1e6 - 5e5;
    case "bool":
      return random.next() < 0.5;
    case "uuid": {
      const hex = Array.from({ length: 32 }, () => random.int(0, 15).toString(16)).join("");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    case "string": {
      const alphabet = "abcXYZ09-_.é€😀";
      const chars = Array.from(alphabet);
      return Array.from(
        { length: random.int(0, 12) },
        () => chars[random.int(0, chars.length - 1)],
      ).join("");
    }
    case "bytes":
    case "records":
      return Uint8Array.from({ length: random.int(0, random.next() < 0.1 ? 3000 : 20) }, () =>
        random.int(0, 255),
      );
  }
}

function cloneDefault(value: unknown): unknown {
  return structuredClone(value);
}

/** A value for every field present in `version`, defaults for the others. */
function randomStruct(
  fields: readonly FieldSchema[],
  version: number,
  random: Random,
  depth: number,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (!inRange(version, field.versions)) {
      out[field.name] = cloneDefault(field.default);
      continue;
    }
    if (inRange(version, field.nullableVersions) && random.next() < 0.2) {
      out[field.name] = null;
      continue;
    }
    if (field.type === "array") {
      const count = depth > 3 ? 0 : random.int(0, 3);
      out[field.name] = Array.from({ length: count }, () =>
        field.items === "struct"
          ? randomStruct(field.fields!, version, random, depth + 1)
          : randomPrimitive(field.items!, random),
      );
    } else if (field.type === "struct") {
      out[field.name] = randomStruct(field.fields!, version, random, depth + 1);
    } else {
      out[field.name] = randomPrimitive(field.type, random);
    }
  }
  return out;
}

/** Byte arrays compare by content whatever their class (decode returns Buffer views). */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: Array.from(value) };
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}

const messages: MessageSchema[] = [...API_TABLES.values()].flatMap((api) => [
  api.request,
  api.response,
]);

describe("protocol: codec: round trip of every API and version", () => {
  for (const schema of messages) {
    test(`${schema.name} v${schema.validVersions[0]}-v${schema.validVersions[1]}`, () => {
      const random = new SeededRandom(schema.apiKey * 7919 + (schema.kind === "request" ? 1 : 2));
      for (let version = schema.validVersions[0]; version <= schema.validVersions[1]; version++) {
        for (let round = 0; round < 4; round++) {
          const value = randomStruct(schema.fields, version, random, 0);
          const bytes = encode(schema, version, value).toBuffer();
          const reader = new Reader(bytes);
          const decoded = decode(schema, version, reader);
          if (!reader.complete())
            throw new Error(`v${version}: ${reader.failure} at ${reader.offset}/${bytes.length}`);
          expect(normalize(decoded)).toEqual(normalize(value));
          expect(encode(schema, version, decoded as Record<string, unknown>).toBuffer()).toEqual(
            bytes,
          );
        }
      }
    });
  }
});

describe("protocol: codec: bad input", () => {
  test("truncated frames of every request fail cleanly, never throw", () => {
    const random = new SeededRandom(42);
    for (const { request } of API_TABLES.values()) {
      const version = request.validVersions[1];
      const bytes = encode(
        request,
        version,
        randomStruct(request.fields, version, random, 0),
      ).toBuffer();
      for (let cut = 0; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 17))) {
        const reader = new Reader(bytes.subarray(0, cut));
        decode(request, version, reader);
        expect(reader.complete()).toBe(false);
      }
    }
  });

  test("random bytes never throw and never allocate beyond the frame", () => {
    const random = new SeededRandom(7);
    for (let round = 0; round < 3000; round++) {
      const api = [...API_TABLES.values()][random.int(0, API_TABLES.size - 1)]!;
      const version = random.int(api.request.validVersions[0], api.request.validVersions[1]);
      const bytes = Uint8Array.from({ length: random.int(0, 64) }, () => random.int(0, 255));
      const reader = new Reader(bytes);
      decode(api.request, version, reader);
      expect(reader.offset).toBeLessThanOrEqual(bytes.length);
    }
  });

  test("a huge array count in a tiny frame is refused", () => {
    const metadata = API_TABLES.get(3)!.request;
    const bytes = Uint8Array.from([0x7f, 0xff, 0xff, 0xff, 0, 0]);
    const reader = new Reader(bytes);
    decode(metadata, 1, reader);
    expect(reader.failed).toBe(true);
  });
});

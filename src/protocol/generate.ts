/**
 * `npm run gen`: reads Kafka's JSON message definitions and writes one typed table per
 * message into `src/protocol/generated/`. Only structure is taken (names, types,
 * versions, tags, defaults); no descriptive text. The output is committed so a clone
 * without the schemas builds; `generate.test.ts` checks it is fresh where they exist.
 *
 * Usage: bun src/protocol/generate.ts [--schemas DIR] [--check]
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { VERSION_MAX, type VersionRange } from "./schema.ts";

export const GENERATED_DIR = resolve(import.meta.dir, "generated");
export const DEFAULT_SCHEMAS_DIR = resolve(
  import.meta.dir,
  "../../../shared/kafka-message-schemas",
);

interface JsonField {
  name: string;
  type: string;
  versions: string;
  nullableVersions?: string;
  taggedVersions?: string;
  tag?: number;
  flexibleVersions?: string;
  default?: string | number | boolean;
  fields?: JsonField[];
}

interface JsonMessage {
  apiKey?: number;
  type: string;
  name: string;
  validVersions: string;
  flexibleVersions: string;
  latestVersionUnstable?: boolean;
  fields: JsonField[];
  commonStructs?: Array<{ name: string; versions: string; fields: JsonField[] }>;
}

const PRIMITIVES = new Set([
  "int8",
  "int16",
  "int32",
  "int64",
  "uint16",
  "float64",
  "bool",
  "uuid",
  "string",
  "bytes",
  "records",
]);

/** Kafka's JSON allows `//` line comments. */
function parseJsonWithComments(text: string): unknown {
  return JSON.parse(text.replace(/^\s*\/\/.*$/gm, ""));
}

export function parseVersions(text: string): VersionRange | null {
  if (text === "none") return null;
  const plus = /^(\d+)\+$/.exec(text);
  if (plus) return [Number(plus[1]), VERSION_MAX];
  const range = /^(\d+)-(\d+)$/.exec(text);
  if (range) return [Number(range[1]), Number(range[2])];
  const single = /^(\d+)$/.exec(text);
  if (single) return [Number(single[1]), Number(single[1])];
  throw new Error(`Unparseable version range: ${text}`);
}

function camel(name: string): string {
  // "ISRVersion" style acronyms are rare; lowering the first letter matches Kafka's getters.
  return name.charAt(0).toLowerCase() + name.slice(1);
}

export function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

function range(text: VersionRange | null): string {
  return text === null
    ? "null"
    : `[${text[0]}, ${text[1] === VERSION_MAX ? "VERSION_MAX" : text[1]}]`;
}

class MessageGenerator {
  readonly #message: JsonMessage;
  readonly #interfaces = new Map<string, string>();
  readonly #common = new Map<string, JsonField[]>();

  constructor(message: JsonMessage) {
    this.#message = message;
    for (const struct of message.commonStructs ?? []) this.#common.set(struct.name, struct.fields);
  }

  #structFields(field: JsonField, typeName: string): JsonField[] {
    const fields = field.fields ?? this.#common.get(typeName);
    if (fields === undefined)
      throw new Error(`${this.#message.name}: unknown struct type ${typeName}`);
    return fields;
  }

  /** Default value as a JS expression, following Kafka's generator rules. */
  #defaultOf(field: JsonField, isArray: boolean, elementType: string, nullable: boolean): string {
    const given = field.default;
    if (isArray) return given === "null" && nullable ? "null" : "[]";
    switch (elementType) {
      case "bool":
        return String(given === true || given === "true");
      case "int8":
      case "int16":
      case "int32":
      case "int64":
      case "uint16":
      case "float64":
        return given === undefined || given === "" ? "0" : String(Number(given));
      case "string":
        if (given === "null" && nullable) return "null";
        return JSON.stringify(given === undefined ? "" : String(given));
      case "uuid":
        return JSON.stringify("00000000-0000-0000-0000-000000000000");
      case "bytes":
        return given === "null" && nullable ? "null" : "new Uint8Array(0)";
      case "records":
        return "null";
      default: {
        if (given === "null" && nullable) return "null";
        return this.#structDefault(this.#structFields(field, elementType));
      }
    }
  }

  #structDefault(fields: JsonField[]): string {
    const parts = fields.map((inner) => {
      const { isArray, elementType, nullable } = this.#shape(inner);
      return `${camel(inner.name)}: ${this.#defaultOf(inner, isArray, elementType, nullable)}`;
    });
    return `{ ${parts.join(", ")} }`;
  }

  #shape(field: JsonField): { isArray: boolean; elementType: string; nullable: boolean } {
    const isArray = field.type.startsWith("[]");
    const elementType = isArray ? field.type.slice(2) : field.type;
    return { isArray, elementType, nullable: field.nullableVersions !== undefined };
  }

  #tsType(field: JsonField): string {
    const { isArray, elementType, nullable } = this.#shape(field);
    let base: string;
    switch (elementType) {
      case "int8":
      case "int16":
      case "int32":
      case "int64":
      case "uint16":
      case "float64":
        base = "number";
        break;
      case "bool":
        base = "boolean";
        break;
      case "string":
      case "uuid":
        base = "string";
        break;
      case "bytes":
        base = "Uint8Array";
        break;
      case "records":
        base = "Uint8Array";
        break;
      default: {
        base = `${this.#message.name}${elementType}`;
        this.#declareInterface(base, this.#structFields(field, elementType));
      }
    }
    const type = isArray ? `${base}[]` : base;
    return nullable || elementType === "records" ? `${type} | null` : type;
  }

  #declareInterface(name: string, fields: JsonField[]): void {
    if (this.#interfaces.has(name)) return;
    this.#interfaces.set(name, ""); // Reserve first: structs may nest.
    const lines = fields.map((field) => `  ${camel(field.name)}: ${this.#tsType(field)};`);
    this.#interfaces.set(name, `export interface ${name} {\n${lines.join("\n")}\n}\n`);
  }

  #fieldTable(field: JsonField, indent: string): string {
    const { isArray, elementType, nullable } = this.#shape(field);
    const parts = [`name: ${JSON.stringify(camel(field.name))}`];
    const primitive = PRIMITIVES.has(elementType);
    if (isArray)
      parts.push(`type: "array"`, `items: ${JSON.stringify(primitive ? elementType : "struct")}`);
    else parts.push(`type: ${JSON.stringify(primitive ? elementType : "struct")}`);
    parts.push(`versions: ${range(parseVersions(field.versions))}`);
    if (field.nullableVersions !== undefined)
      parts.push(`nullableVersions: ${range(parseVersions(field.nullableVersions))}`);
    if (field.taggedVersions !== undefined) {
      parts.push(
        `taggedVersions: ${range(parseVersions(field.taggedVersions))}`,
        `tag: ${field.tag}`,
      );
    }
    if (field.flexibleVersions !== undefined)
      parts.push(`flexibleVersions: ${range(parseVersions(field.flexibleVersions))}`);
    parts.push(`default: ${this.#defaultOf(field, isArray, elementType, nullable)}`);
    if (!primitive) {
      const inner = this.#structFields(field, elementType).map((f) =>
        this.#fieldTable(f, `${indent}  `),
      );
      parts.push(`fields: [\n${inner.join(",\n")},\n${indent}]`);
    }
    return `${indent}{ ${parts.join(", ")} }`;
  }

  render(sourceFile: string): string {
    const message = this.#message;
    const dataName = `${message.name}Data`;
    this.#declareInterface(dataName, message.fields);
    const fields = message.fields.map((field) => this.#fieldTable(field, "    "));
    const usesVersionMax =
      fields.some((f) => f.includes("VERSION_MAX")) ||
      message.validVersions.endsWith("+") ||
      message.flexibleVersions.endsWith("+");
    const imports = usesVersionMax
      ? `import { type MessageSchema, VERSION_MAX } from "../schema.ts";`
      : `import type { MessageSchema } from "../schema.ts";`;
    return [
      `// Generated by src/protocol/generate.ts from ${sourceFile}. Do not edit.`,
      imports,
      "",
      [...this.#interfaces.values()].join("\n"),
      `export const ${message.name}: MessageSchema<${dataName}> = {`,
      `  name: ${JSON.stringify(message.name)},`,
      `  apiKey: ${message.apiKey ?? -1},`,
      `  kind: ${JSON.stringify(message.type)},`,
      `  validVersions: ${range(parseVersions(message.validVersions))},`,
      `  flexibleVersions: ${range(parseVersions(message.flexibleVersions))},`,
      `  latestVersionUnstable: ${message.latestVersionUnstable === true},`,
      `  fields: [`,
      fields.length > 0 ? `${fields.join(",\n")},` : "",
      `  ],`,
      `};`,
      "",
    ]
      .filter((line, i, all) => !(line === "" && all[i - 1] === ""))
      .join("\n");
  }
}

/** Generated files by name, in a stable order. */
export function generateAll(schemasDir: string): Map<string, string> {
  const files = new Map<string, string>();
  const messages: JsonMessage[] = [];
  for (const file of readdirSync(schemasDir)
    .filter((f) => f.endsWith(".json"))
    .sort()) {
    const message = parseJsonWithComments(
      readFileSync(join(schemasDir, file), "utf8"),
    ) as JsonMessage;
    if (!["request", "response", "header"].includes(message.type)) continue;
    messages.push(message);
    files.set(`${kebab(message.name)}.ts`, new MessageGenerator(message).render(file));
  }
  const requests = messages
    .filter((m) => m.type === "request")
    .sort((a, b) => a.apiKey! - b.apiKey!);
  const index = [
    "// Generated by src/protocol/generate.ts. Do not edit.",
    `import type { MessageSchema } from "../schema.ts";`,
    ...messages.map((m) => `import { ${m.name} } from "./${kebab(m.name)}.ts";`),
    "",
    ...messages.map((m) => `export * from "./${kebab(m.name)}.ts";`),
    "",
    "/** Request and response tables of every API, by api key. */",
    "export const API_TABLES: ReadonlyMap<number, { request: MessageSchema; response: MessageSchema }> = new Map([",
    ...requests.map((m) => {
      const response = m.name.replace(/Request$/, "Response");
      return `  [${m.apiKey}, { request: ${m.name} as MessageSchema, response: ${response} as MessageSchema }],`;
    }),
    "]);",
    "",
  ];
  files.set("index.ts", index.join("\n"));
  return files;
}

function main(argv: string[]): void {
  const schemasAt = argv.indexOf("--schemas");
  const schemasDir = schemasAt >= 0 ? resolve(argv[schemasAt + 1] ?? "") : DEFAULT_SCHEMAS_DIR;
  if (!existsSync(schemasDir)) {
    process.stderr.write(`gen: schemas not found at ${schemasDir}\n`);
    process.exit(2);
  }
  const files = generateAll(schemasDir);
  if (argv.includes("--check")) {
    const stale = [...files].filter(([name, text]) => {
      const path = join(GENERATED_DIR, name);
      return !existsSync(path) || readFileSync(path, "utf8") !== text;
    });
    if (stale.length > 0) {
      process.stderr.write(`gen: ${stale.length} generated files are stale, run npm run gen\n`);
      process.exit(1);
    }
    return;
  }
  rmSync(GENERATED_DIR, { recursive: true, force: true });
  mkdirSync(GENERATED_DIR, { recursive: true });
  for (const [name, text] of files) writeFileSync(join(GENERATED_DIR, name), text);
  process.stdout.write(`gen: wrote ${files.size} files to ${GENERATED_DIR}\n`);
}

if (import.meta.main) main(process.argv.slice(2));

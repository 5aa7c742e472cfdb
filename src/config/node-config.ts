/**
 * Node configuration: the flags of `brook start`, the same keys in a config file (JSON or
 * TOML, read with smol-toml) and `BROOK_<FLAG>` environment variables, merged into one
 * validated `NodeConfig`.
 *
 * Precedence, lowest first: built-in defaults, config file, environment, flags. A layer
 * replaces a value, it never merges with it (a `--join` flag replaces the file's list).
 *
 * One table, `NODE_OPTIONS`, names every setting once; the yargs options of `brook start`
 * (and so its `--help`), the environment names and the config-file keys all come from it.
 *
 * Everything here is pure apart from reading the config file, which goes through an
 * injectable `readFile`. Every failure is a `ConfigError` whose message is one line; the
 * CLI prints it as `brook: <message>` and exits 2.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parse as parseToml, TomlError } from "smol-toml";
import yargs, { type Argv, type Options } from "yargs";
import type { LogLevel } from "../util/log.ts";

/** Bad flags, environment values or config files: operating errors, one line each. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(message: string) {
    super(oneLine(message));
  }
}

export interface HostPort {
  host: string; // Without brackets: "::1", not "[::1]".
  port: number; // 0 for a listener means "any free port".
}

export interface NodeConfig {
  /** From --node-id; null means "derive one and persist it in the data dir". */
  nodeId: number | null;
  dataDir: string;
  kafka: HostPort;
  /**
   * What Metadata tells clients. When --advertise is not set this is --kafka with a
   * wildcard host (0.0.0.0 or ::) replaced by 127.0.0.1, and the same port, so a --kafka
   * port of 0 gives an advertised port of 0: use the port actually bound then.
   */
  advertise: HostPort;
  admin: HostPort;
  gossip: HostPort;
  join: HostPort[];
  /** How many nodes vote in the metadata quorum: 1, 3 (default) or 5. */
  voters: number;
  autoCreateTopics: boolean;
  numPartitions: number;
  logLevel: LogLevel;
  socketRequestMaxBytes: number;
}

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

const INT32_MAX = 2_147_483_647;

/** Reads a config file as text; throws (any error) when it cannot. */
export type ReadFile = (path: string) => string;

const readFileUtf8: ReadFile = (path) => readFileSync(path, "utf8");

// ---------------------------------------------------------------------------------------
// The settings table.

type OptionKind =
  | { type: "integer"; min: number; max: number }
  | { type: "string" } // Non-empty.
  | { type: "listen" } // host:port to bind: any host, port 0..65535.
  | { type: "reach" } // host:port to connect to: no wildcard host, port 1..65535.
  | { type: "reachList" }
  | { type: "boolean" }
  | { type: "logLevel" };

type SettingName =
  | "nodeId"
  | "dataDir"
  | "kafka"
  | "advertise"
  | "admin"
  | "gossip"
  | "join"
  | "voters"
  | "autoCreateTopics"
  | "numPartitions"
  | "logLevel"
  | "socketRequestMaxBytes";

export interface NodeOptionSpec {
  /** Key in NodeConfig; "config" is the config file path, not a setting. */
  readonly name: SettingName | "config";
  /** Flag without dashes; also the config-file key and, upper-cased, the env suffix. */
  readonly flag: string;
  /** Kafka's name for the setting, accepted as a config-file key too. */
  readonly kafkaName?: string;
  readonly kind: OptionKind;
  readonly description: string;
  /** Default as shown by --help. */
  readonly defaultText: string;
  readonly group: "Node" | "Cluster" | "Broker settings";
}

export const NODE_OPTIONS: readonly NodeOptionSpec[] = [
  {
    name: "nodeId",
    flag: "node-id",
    kafkaName: "node.id",
    kind: { type: "integer", min: 0, max: INT32_MAX },
    description: "Node id, unique in the cluster",
    defaultText: "derived on first start, persisted in the data dir",
    group: "Node",
  },
  {
    name: "dataDir",
    flag: "data-dir",
    kind: { type: "string" },
    description: "Directory of the logs and node metadata",
    defaultText: "./data",
    group: "Node",
  },
  {
    name: "kafka",
    flag: "kafka",
    kind: { type: "listen" },
    description: "Kafka protocol listener, host:port",
    defaultText: "0.0.0.0:9092",
    group: "Node",
  },
  {
    name: "advertise",
    flag: "advertise",
    kind: { type: "reach" },
    description: "Address given to clients in Metadata, host:port",
    defaultText: "--kafka, with 0.0.0.0 → 127.0.0.1",
    group: "Node",
  },
  {
    name: "admin",
    flag: "admin",
    kind: { type: "listen" },
    description: "HTTP admin API listener, host:port",
    defaultText: "127.0.0.1:9644",
    group: "Node",
  },
  {
    name: "config",
    flag: "config",
    kind: { type: "string" },
    description: "Config file, JSON or TOML, with the flags' names as keys",
    defaultText: "none",
    group: "Node",
  },
  {
    name: "gossip",
    flag: "gossip",
    kind: { type: "listen" },
    description: "SWIM UDP and cluster RPC listener, host:port",
    defaultText: "0.0.0.0:7946",
    group: "Cluster",
  },
  {
    name: "join",
    flag: "join",
    kind: { type: "reachList" },
    description: "Gossip address of any live member, host:port; repeatable",
    defaultText: "none (a new cluster)",
    group: "Cluster",
  },
  {
    name: "voters",
    flag: "voters",
    kind: { type: "integer", min: 1, max: 5 },
    description: "Voters of the Raft metadata quorum: the first 1, 3 or 5 nodes to join",
    defaultText: "3",
    group: "Cluster",
  },
  {
    name: "autoCreateTopics",
    flag: "auto-create-topics",
    kafkaName: "auto.create.topics.enable",
    kind: { type: "boolean" },
    description: "Create a topic when a client first asks for it (auto.create.topics.enable)",
    defaultText: "true",
    group: "Broker settings",
  },
  {
    name: "numPartitions",
    flag: "num-partitions",
    kafkaName: "num.partitions",
    kind: { type: "integer", min: 1, max: INT32_MAX },
    description: "Partitions of an auto-created topic (num.partitions)",
    defaultText: "1",
    group: "Broker settings",
  },
  {
    name: "logLevel",
    flag: "log-level",
    kind: { type: "logLevel" },
    description: "Least severe log level printed: debug, info, warn or error",
    defaultText: "info",
    group: "Broker settings",
  },
  {
    name: "socketRequestMaxBytes",
    flag: "socket-request-max-bytes",
    kafkaName: "socket.request.max.bytes",
    kind: { type: "integer", min: 1, max: INT32_MAX },
    description: "Largest Kafka request accepted, in bytes (socket.request.max.bytes)",
    defaultText: "104857600",
    group: "Broker settings",
  },
];

/** `BROOK_DATA_DIR` for `data-dir`. */
export function envName(spec: NodeOptionSpec): string {
  return `BROOK_${spec.flag.toUpperCase().replaceAll("-", "_")}`;
}

export const NODE_DEFAULTS = {
  dataDir: "./data",
  kafka: { host: "0.0.0.0", port: 9092 },
  admin: { host: "127.0.0.1", port: 9644 },
  gossip: { host: "0.0.0.0", port: 7946 },
  voters: 3,
  autoCreateTopics: true,
  numPartitions: 1,
  logLevel: "info",
  socketRequestMaxBytes: 104_857_600,
} as const satisfies Partial<NodeConfig>;

export const NODE_OPTIONS_EPILOGUE =
  "Every flag can also be set in the environment as BROOK_<FLAG> (BROOK_DATA_DIR, " +
  "BROOK_JOIN as a comma-separated list) or as a key of the --config file. " +
  "Flags override the environment, which overrides the file.";

/** Adds the node flags to a yargs instance, grouped, with their defaults for --help. */
export function addNodeOptions<T>(argv: Argv<T>): Argv<T> {
  let result = argv;
  for (const spec of NODE_OPTIONS) {
    const options: Options = {
      describe: spec.description,
      defaultDescription: spec.defaultText,
      group: `${spec.group}:`,
    };
    if (spec.kind.type === "boolean") {
      options.type = "boolean";
    } else {
      // Integers get no yargs type, so --help does not call them strings; with
      // parse-numbers off below they arrive as text and are validated here.
      if (spec.kind.type !== "integer") options.type = "string";
      options.requiresArg = true;
    }
    result = result.option(spec.flag, options);
  }
  return result.parserConfiguration({
    "camel-case-expansion": false, // One spelling per flag: no --nodeId next to --node-id.
    "parse-numbers": false, // "1e3" or "0x10" must not become a node id.
  });
}

// ---------------------------------------------------------------------------------------
// Parsing.

/**
 * Parses the arguments of `brook start` (after the executable; a leading or trailing
 * `start` command word is accepted) and the environment into a validated NodeConfig,
 * reading the config file named by --config or BROOK_CONFIG. Throws ConfigError.
 */
export function parseNodeConfig(
  argv: string[],
  env: Record<string, string | undefined>,
  readFile: ReadFile = readFileUtf8,
): NodeConfig {
  checkBooleanFlagValues(argv);
  const parser = addNodeOptions(yargs())
    .strictOptions() // Positionals are checked below: only the word "start" may appear.
    .help(false)
    .version(false)
    .exitProcess(false)
    .fail((message: string | undefined, error: Error | undefined) => {
      throw new ConfigError(message ?? error?.message ?? "Bad arguments");
    });
  const parsed = parser.parseSync(argv) as Record<string, unknown>;
  const positionals = (parsed._ as unknown[]).map(String).filter((word) => word !== "start");
  if (positionals.length > 0) throw new ConfigError(`Unknown argument: ${positionals[0]}`);
  const start = (parsed._ as unknown[]).filter((word) => word === "start");
  if (start.length > 1) throw new ConfigError("Unknown argument: start");
  return resolveNodeConfig(parsed, env, readFile);
}

/**
 * yargs reads `--flag=<anything but true>` of a boolean flag as false, so a typo such as
 * `--auto-create-topics=yes` would silently disable the setting: reject it here.
 */
function checkBooleanFlagValues(argv: string[]): void {
  for (const arg of argv) {
    if (arg === "--") return; // Positionals follow.
    for (const spec of NODE_OPTIONS) {
      if (spec.kind.type !== "boolean") continue;
      const prefix = `--${spec.flag}=`;
      if (!arg.startsWith(prefix)) continue;
      const value = arg.slice(prefix.length);
      if (value !== "true" && value !== "false") {
        throw new ConfigError(invalid(`--${spec.flag}`, "true or false", JSON.stringify(value)));
      }
    }
  }
}

/** One value as given, and where it came from (for error messages). */
interface Given {
  readonly value: unknown;
  readonly where: string; // "--kafka", "BROOK_KAFKA", "kafka in brook.toml"
  readonly typed: boolean; // From a config file: JSON/TOML types, not text to parse.
}

function resolveNodeConfig(
  flags: Record<string, unknown>,
  env: Record<string, string | undefined>,
  readFile: ReadFile,
): NodeConfig {
  const fromFlags = new Map<string, Given>();
  const fromEnv = new Map<string, Given>();
  for (const spec of NODE_OPTIONS) {
    const flagValue = flags[spec.flag];
    if (flagValue !== undefined) {
      const repeatable = spec.kind.type === "reachList" || spec.kind.type === "boolean";
      if (Array.isArray(flagValue) && !repeatable) {
        throw new ConfigError(`Flag --${spec.flag} is given more than once`);
      }
      fromFlags.set(spec.flag, { value: flagValue, where: `--${spec.flag}`, typed: false });
    }
    const envValue = env[envName(spec)];
    if (envValue !== undefined && envValue !== "") {
      fromEnv.set(spec.flag, { value: envValue, where: envName(spec), typed: false });
    }
  }

  const configGiven = fromFlags.get("config") ?? fromEnv.get("config");
  const fromFile = new Map<string, Given>();
  if (configGiven !== undefined) {
    const path = textValue(configGiven);
    for (const [flag, given] of readConfigFile(path, readFile)) fromFile.set(flag, given);
  }

  const pick = (flag: string): Given | undefined =>
    fromFlags.get(flag) ?? fromEnv.get(flag) ?? fromFile.get(flag);
  const specOf = (flag: string): NodeOptionSpec => {
    const spec = NODE_OPTIONS.find((candidate) => candidate.flag === flag);
    if (spec === undefined) throw new Error(`No option spec for ${flag}`);
    return spec;
  };
  const integer = (flag: string, fallback: number): number => {
    const given = pick(flag);
    return given === undefined ? fallback : integerValue(specOf(flag), given);
  };
  const listen = (flag: string, fallback: HostPort): HostPort => {
    const given = pick(flag);
    return given === undefined ? { ...fallback } : hostPortValue(given, "listen");
  };

  const nodeIdGiven = pick("node-id");
  const kafka = listen("kafka", NODE_DEFAULTS.kafka);
  const advertiseGiven = pick("advertise");
  const joinGiven = pick("join");
  const dataDirGiven = pick("data-dir");
  const autoCreateGiven = pick("auto-create-topics");
  const logLevelGiven = pick("log-level");

  return {
    nodeId: nodeIdGiven === undefined ? null : integerValue(specOf("node-id"), nodeIdGiven),
    dataDir: dataDirGiven === undefined ? NODE_DEFAULTS.dataDir : textValue(dataDirGiven),
    kafka,
    advertise:
      advertiseGiven === undefined
        ? { host: isWildcard(kafka.host) ? "127.0.0.1" : kafka.host, port: kafka.port }
        : hostPortValue(advertiseGiven, "reach"),
    admin: listen("admin", NODE_DEFAULTS.admin),
    gossip: listen("gossip", NODE_DEFAULTS.gossip),
    join: joinGiven === undefined ? [] : hostPortListValue(joinGiven),
    voters: oddVoters(integer("voters", NODE_DEFAULTS.voters)),
    autoCreateTopics:
      autoCreateGiven === undefined
        ? NODE_DEFAULTS.autoCreateTopics
        : booleanValue(autoCreateGiven),
    numPartitions: integer("num-partitions", NODE_DEFAULTS.numPartitions),
    logLevel: logLevelGiven === undefined ? NODE_DEFAULTS.logLevel : logLevelValue(logLevelGiven),
    socketRequestMaxBytes: integer("socket-request-max-bytes", NODE_DEFAULTS.socketRequestMaxBytes),
  };
}

// ---------------------------------------------------------------------------------------
// Values. Flags and environment give text (yargs gives arrays for repeats and booleans for
// boolean flags); config files give JSON/TOML values whose types must already be right.

function invalid(where: string, expected: string, got: string): string {
  return `Invalid ${where}: expected ${expected}, got ${got}`;
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

function reject(given: Given, expected: string): never {
  throw new ConfigError(invalid(given.where, expected, describeValue(given.value)));
}

function textValue(given: Given): string {
  const { value } = given;
  if (typeof value !== "string") return reject(given, "a string");
  if (value === "") return reject(given, "a non-empty string");
  return value;
}

function integerValue(spec: NodeOptionSpec, given: Given): number {
  const { kind } = spec;
  if (kind.type !== "integer") throw new Error(`${spec.flag} is not an integer option`);
  const expected = `an integer from ${kind.min} to ${kind.max}`;
  let value: number;
  if (given.typed) {
    if (typeof given.value !== "number") return reject(given, expected);
    value = given.value;
  } else {
    if (typeof given.value !== "string") return reject(given, expected);
    if (!/^[+-]?\d{1,16}$/.test(given.value)) return reject(given, expected);
    value = Number(given.value) + 0; // + 0 turns "-0" into 0.
  }
  if (!Number.isInteger(value)) return reject(given, expected);
  if (value < kind.min || value > kind.max) return reject(given, expected);
  return value;
}

function booleanValue(given: Given): boolean {
  const { value } = given;
  if (typeof value === "boolean") return value;
  // A repeated boolean flag: the last one wins, as for `--x --no-x`.
  if (Array.isArray(value)) {
    const last: unknown = value[value.length - 1];
    if (typeof last === "boolean") return last;
  }
  if (!given.typed && typeof value === "string") {
    const lower = value.toLowerCase();
    if (lower === "true") return true;
    if (lower === "false") return false;
  }
  return reject(given, "true or false");
}

function logLevelValue(given: Given): LogLevel {
  const { value } = given;
  const expected = `one of ${LOG_LEVELS.join(", ")}`;
  if (typeof value !== "string") return reject(given, expected);
  const level = LOG_LEVELS.find((candidate) => candidate === value.toLowerCase());
  if (level === undefined) return reject(given, expected);
  return level;
}

function hostPortValue(given: Given, use: "listen" | "reach"): HostPort {
  const { value } = given;
  const expected = use === "listen" ? "host:port" : "host:port of a reachable address";
  if (typeof value !== "string") return reject(given, expected);
  const parsed = parseHostPort(value);
  if (parsed === null) return reject(given, expected);
  if (use === "reach") {
    // Clients and peers cannot connect to port 0 or to a wildcard address.
    if (parsed.port === 0) return reject(given, expected);
    if (isWildcard(parsed.host)) return reject(given, expected);
  }
  return parsed;
}

function hostPortListValue(given: Given): HostPort[] {
  const { value, where } = given;
  let items: unknown[];
  if (given.typed) {
    if (!Array.isArray(value)) return reject(given, "an array of host:port strings");
    items = value;
  } else if (Array.isArray(value)) {
    items = value; // A repeated flag.
  } else if (typeof value === "string") {
    // One flag, or BROOK_JOIN as a comma-separated list.
    items = value
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  } else {
    return reject(given, "host:port");
  }
  return items.map((item) => hostPortValue({ value: item, where, typed: given.typed }, "reach"));
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** Hostname labels (underscores allowed, as container names use them); not all-numeric. */
const LABEL = "[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(\\.${LABEL})*$`);

/**
 * Parses `host:port`, `1.2.3.4:port` or `[ipv6]:port`; null when malformed. The port is
 * 0..65535 in decimal; a bare IPv6 address must be bracketed.
 */
export function parseHostPort(text: string): HostPort | null {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return null;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return null;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return null;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (isIP(host) !== 4) {
      if (!HOSTNAME.test(host)) return null;
      const labels = host.split(".");
      // "999.1.1.1" and "10.1" are bad IPv4 addresses, not hostnames.
      if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return null;
    }
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  return { host, port };
}

/** The inverse of parseHostPort: brackets an IPv6 host. */
export function formatHostPort(address: HostPort): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}

// ---------------------------------------------------------------------------------------
// Config files.

function readConfigFile(path: string, readFile: ReadFile): Map<string, Given> {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${path}: ${errorMessage(error)}`);
  }
  const lower = path.toLowerCase();
  const sniffed = text.trimStart().startsWith("{");
  const json = lower.endsWith(".json") || (!lower.endsWith(".toml") && sniffed);
  let entries: Array<[string, unknown]>;
  if (json) {
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`Cannot parse config file ${path}: ${errorMessage(error)}`);
    }
    if (typeof document !== "object" || document === null || Array.isArray(document)) {
      throw new ConfigError(`Cannot parse config file ${path}: expected a JSON object`);
    }
    entries = Object.entries(document);
  } else {
    let document: Record<string, unknown>;
    try {
      document = parseToml(text);
    } catch (error) {
      if (!(error instanceof TomlError)) throw error;
      throw new ConfigError(`Cannot parse config file ${path}: ${tomlReason(error)}`);
    }
    entries = flattenTables(document);
  }

  const result = new Map<string, Given>();
  const keyOf = new Map<string, string>(); // flag → key it was given as
  for (const [key, value] of entries) {
    const spec = NODE_OPTIONS.find((option) => option.flag === key || option.kafkaName === key);
    if (spec === undefined || spec.name === "config") {
      throw new ConfigError(`Unknown key in config file ${path}: ${JSON.stringify(key)}`);
    }
    const earlier = keyOf.get(spec.flag);
    if (earlier !== undefined) {
      throw new ConfigError(
        `Config file ${path} sets ${spec.flag} twice: as ${earlier} and as ${key}`,
      );
    }
    keyOf.set(spec.flag, key);
    result.set(spec.flag, { value, where: `${key} in ${path}`, typed: true });
  }
  return result;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/**
 * A parsed TOML document as flat `key → value` entries. Brook's keys are flat names,
 * often dotted as Kafka spells them (`num.partitions`); TOML reads an unquoted dotted
 * key as nested tables, so tables are joined back into dotted names. A table of the
 * file's own (`[broker]`) becomes `broker.<key>`, which no option has.
 */
function flattenTables(table: Record<string, unknown>, prefix = ""): Array<[string, unknown]> {
  const entries: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(table)) {
    // smol-toml's tables have no prototype; arrays and dates (TomlDate) are values.
    const isTable =
      typeof value === "object" &&
      value !== null &&
      !Array.isArray(value) &&
      !(value instanceof Date);
    if (isTable)
      entries.push(...flattenTables(value as Record<string, unknown>, `${prefix}${key}.`));
    else entries.push([`${prefix}${key}`, value]);
  }
  return entries;
}

/** smol-toml's reason, on one line and without its code frame. */
function tomlReason(error: TomlError): string {
  const first = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
  return `line ${error.line}: ${first}`;
}

/** A quorum of an even size tolerates no more failures than one voter fewer. */
function oddVoters(count: number): number {
  if (count % 2 === 0) throw new ConfigError(`Invalid --voters: expected 1, 3 or 5, got ${count}`);
  return count;
}

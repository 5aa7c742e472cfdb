import { describe, expect, test } from "bun:test";
import {
  ConfigError,
  NODE_OPTIONS,
  envName,
  formatHostPort,
  parseHostPort,
  parseNodeConfig,
  type NodeConfig,
} from "./node-config.ts";

const noFiles = (path: string): string => {
  throw new Error(`ENOENT: no such file or directory, open '${path}'`);
};

function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = contents[path];
    if (text === undefined) return noFiles(path);
    return text;
  };
}

function parse(argv: string[], env: Record<string, string> = {}, read = noFiles): NodeConfig {
  return parseNodeConfig(argv, env, read);
}

/** The ConfigError message that parsing throws; fails the test if it does not throw. */
function errorOf(argv: string[], env: Record<string, string> = {}, read = noFiles): string {
  try {
    parseNodeConfig(argv, env, read);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error(`Expected a ConfigError for ${JSON.stringify(argv)}`);
}

describe("config: defaults", () => {
  test("config: no flags give the documented defaults", () => {
    expect(parse([])).toEqual({
      nodeId: null,
      dataDir: "./data",
      kafka: { host: "0.0.0.0", port: 9092 },
      advertise: { host: "127.0.0.1", port: 9092 },
      admin: { host: "127.0.0.1", port: 9644 },
      gossip: { host: "0.0.0.0", port: 7946 },
      join: [],
      voters: 3,
      autoCreateTopics: true,
      numPartitions: 1,
      logLevel: "info",
      socketRequestMaxBytes: 104857600,
    });
  });

  test("config: --voters takes 1, 3 or 5", () => {
    expect(parse(["--voters", "1"]).voters).toBe(1);
    expect(errorOf(["--voters", "4"])).toBe("Invalid --voters: expected 1, 3 or 5, got 4");
    expect(errorOf(["--voters", "7"])).toMatch(/voters/);
  });

  test("config: the start command word is accepted", () => {
    expect(parse(["start", "--node-id", "4"]).nodeId).toBe(4);
    expect(parse(["--node-id", "4", "start"]).nodeId).toBe(4);
    expect(errorOf(["stop"])).toBe("Unknown argument: stop");
    expect(errorOf(["start", "start"])).toBe("Unknown argument: start");
  });
});

describe("config: flags", () => {
  test("config: every flag", () => {
    const config = parse([
      "--node-id",
      "7",
      "--data-dir",
      "/var/lib/brook",
      "--kafka",
      "10.0.0.1:19092",
      "--advertise",
      "broker-1.example.com:9092",
      "--admin=[::1]:9645",
      "--gossip",
      "0.0.0.0:17946",
      "--join",
      "10.0.0.2:7946",
      "--join",
      "[fe80::1]:7946",
      "--voters",
      "5",
      "--no-auto-create-topics",
      "--num-partitions",
      "6",
      "--log-level",
      "debug",
      "--socket-request-max-bytes",
      "1048576",
    ]);
    expect(config).toEqual({
      nodeId: 7,
      dataDir: "/var/lib/brook",
      kafka: { host: "10.0.0.1", port: 19092 },
      advertise: { host: "broker-1.example.com", port: 9092 },
      admin: { host: "::1", port: 9645 },
      gossip: { host: "0.0.0.0", port: 17946 },
      join: [
        { host: "10.0.0.2", port: 7946 },
        { host: "fe80::1", port: 7946 },
      ],
      voters: 5,
      autoCreateTopics: false,
      numPartitions: 6,
      logLevel: "debug",
      socketRequestMaxBytes: 1048576,
    });
  });

  test("config: advertise follows --kafka, a wildcard host becoming loopback", () => {
    expect(parse(["--kafka", "192.168.1.5:9093"]).advertise).toEqual({
      host: "192.168.1.5",
      port: 9093,
    });
    expect(parse(["--kafka", "0.0.0.0:9093"]).advertise).toEqual({ host: "127.0.0.1", port: 9093 });
    expect(parse(["--kafka", "[::]:9093"]).advertise).toEqual({ host: "127.0.0.1", port: 9093 });
    expect(parse(["--kafka", "127.0.0.1:0"]).advertise).toEqual({ host: "127.0.0.1", port: 0 });
  });

  test("config: boolean flag spellings", () => {
    expect(parse(["--auto-create-topics"]).autoCreateTopics).toBe(true);
    expect(parse(["--auto-create-topics", "false"]).autoCreateTopics).toBe(false);
    expect(parse(["--auto-create-topics=false"]).autoCreateTopics).toBe(false);
    expect(parse(["--auto-create-topics=true"]).autoCreateTopics).toBe(true);
    expect(parse(["--no-auto-create-topics"]).autoCreateTopics).toBe(false);
    expect(errorOf(["--auto-create-topics=yes"])).toBe(
      'Invalid --auto-create-topics: expected true or false, got "yes"',
    );
  });

  test("config: bad flag values", () => {
    expect(errorOf(["--kafka", "nonsense"])).toBe(
      'Invalid --kafka: expected host:port, got "nonsense"',
    );
    expect(errorOf(["--node-id", "-3"])).toBe(
      'Invalid --node-id: expected an integer from 0 to 2147483647, got "-3"',
    );
    expect(errorOf(["--node-id", "1.5"])).toContain("Invalid --node-id");
    expect(errorOf(["--node-id", "2147483648"])).toContain("Invalid --node-id");
    expect(errorOf(["--num-partitions", "0"])).toContain("Invalid --num-partitions");
    expect(errorOf(["--socket-request-max-bytes", "1MB"])).toContain(
      "Invalid --socket-request-max-bytes",
    );
    expect(errorOf(["--log-level", "verbose"])).toBe(
      'Invalid --log-level: expected one of debug, info, warn, error, got "verbose"',
    );
    expect(errorOf(["--data-dir="])).toBe(
      'Invalid --data-dir: expected a non-empty string, got ""',
    );
    expect(errorOf(["--advertise", "0.0.0.0:9092"])).toContain("Invalid --advertise");
    expect(errorOf(["--join", "10.0.0.2:0"])).toContain("Invalid --join");
    expect(errorOf(["--no-kafka"])).toBe("Invalid --kafka: expected host:port, got boolean false");
  });

  test("config: yargs errors become ConfigErrors", () => {
    expect(errorOf(["--bogus"])).toBe("Unknown argument: bogus");
    expect(errorOf(["--nodeId", "3"])).toBe("Unknown argument: nodeId");
    expect(errorOf(["--kafka"])).toBe("Not enough arguments following: kafka");
    expect(errorOf(["--kafka", "--node-id", "1"])).toBe("Not enough arguments following: kafka");
    expect(errorOf(["--kafka", "a:1", "--kafka", "b:2"])).toBe(
      "Flag --kafka is given more than once",
    );
  });
});

describe("config: host:port", () => {
  const good: Array<[string, string, number]> = [
    ["0.0.0.0:9092", "0.0.0.0", 9092],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["localhost:65535", "localhost", 65535],
    ["broker-1.example.com:9092", "broker-1.example.com", 9092],
    ["my_service:80", "my_service", 80],
    ["[::1]:9092", "::1", 9092],
    ["[::]:1", "::", 1],
    ["[2001:db8::7]:7946", "2001:db8::7", 7946],
  ];
  for (const [text, host, port] of good) {
    test(`config: host:port: ${text}`, () => {
      expect(parseHostPort(text)).toEqual({ host, port });
      expect(formatHostPort({ host, port })).toBe(text);
    });
  }

  const bad = [
    "nonsense",
    "",
    ":9092",
    "host:",
    "host:65536",
    "host:-1",
    "host:9092x",
    "host:0x10",
    "::1:9092",
    "[::1]",
    "[::1]9092",
    "[nonsense]:1",
    "999.1.1.1:9092",
    "10.1:9092",
    "-host:9092",
    "host-:9092",
    "ho st:9092",
    "a..b:9092",
    "host:123456",
  ];
  for (const text of bad) {
    test(`config: host:port: rejects ${JSON.stringify(text)}`, () => {
      expect(parseHostPort(text)).toBeNull();
    });
  }
});

describe("config: environment", () => {
  test("config: every option has a BROOK_ name", () => {
    expect(NODE_OPTIONS.map(envName)).toEqual([
      "BROOK_NODE_ID",
      "BROOK_DATA_DIR",
      "BROOK_KAFKA",
      "BROOK_ADVERTISE",
      "BROOK_ADMIN",
      "BROOK_CONFIG",
      "BROOK_GOSSIP",
      "BROOK_JOIN",
      "BROOK_VOTERS",
      "BROOK_AUTO_CREATE_TOPICS",
      "BROOK_NUM_PARTITIONS",
      "BROOK_LOG_LEVEL",
      "BROOK_SOCKET_REQUEST_MAX_BYTES",
    ]);
  });

  test("config: environment sets values, flags override it", () => {
    const env = {
      BROOK_DATA_DIR: "/env/data",
      BROOK_KAFKA: "127.0.0.1:29092",
      BROOK_NODE_ID: "3",
      BROOK_JOIN: "10.0.0.1:7946, 10.0.0.2:7946",
      BROOK_AUTO_CREATE_TOPICS: "FALSE",
      BROOK_LOG_LEVEL: "WARN",
      UNRELATED: "x",
    };
    const fromEnv = parse([], env);
    expect(fromEnv.dataDir).toBe("/env/data");
    expect(fromEnv.kafka).toEqual({ host: "127.0.0.1", port: 29092 });
    expect(fromEnv.advertise).toEqual({ host: "127.0.0.1", port: 29092 });
    expect(fromEnv.nodeId).toBe(3);
    expect(fromEnv.join).toEqual([
      { host: "10.0.0.1", port: 7946 },
      { host: "10.0.0.2", port: 7946 },
    ]);
    expect(fromEnv.autoCreateTopics).toBe(false);
    expect(fromEnv.logLevel).toBe("warn");

    const fromFlags = parse(["--data-dir", "/flag/data", "--join", "10.0.0.9:7946"], env);
    expect(fromFlags.dataDir).toBe("/flag/data");
    expect(fromFlags.join).toEqual([{ host: "10.0.0.9", port: 7946 }]);
    expect(fromFlags.kafka).toEqual({ host: "127.0.0.1", port: 29092 });
  });

  test("config: an empty environment variable counts as unset", () => {
    expect(parse([], { BROOK_DATA_DIR: "", BROOK_KAFKA: "" }).dataDir).toBe("./data");
  });

  test("config: bad environment values name the variable", () => {
    expect(errorOf([], { BROOK_KAFKA: "nonsense" })).toBe(
      'Invalid BROOK_KAFKA: expected host:port, got "nonsense"',
    );
    expect(errorOf([], { BROOK_AUTO_CREATE_TOPICS: "yes" })).toBe(
      'Invalid BROOK_AUTO_CREATE_TOPICS: expected true or false, got "yes"',
    );
    expect(errorOf([], { BROOK_JOIN: "a:1,nonsense" })).toBe(
      'Invalid BROOK_JOIN: expected host:port of a reachable address, got "nonsense"',
    );
  });
});

describe("config: config file", () => {
  const toml = [
    "# Brook node 1",
    "node-id = 1",
    "data-dir = '/srv/brook'   # literal string",
    'kafka = "0.0.0.0:9092"',
    "join = [",
    '  "10.0.0.2:7946", # first',
    '  "10.0.0.3:7946",',
    "]",
    "auto.create.topics.enable = false",
    '"num.partitions" = 3',
    "socket-request-max-bytes = 1_048_576",
    'log-level = "warn"',
    "",
  ].join("\n");

  test("config: TOML file", () => {
    const config = parse(["--config", "brook.toml"], {}, files({ "brook.toml": toml }));
    expect(config.nodeId).toBe(1);
    expect(config.dataDir).toBe("/srv/brook");
    expect(config.join).toEqual([
      { host: "10.0.0.2", port: 7946 },
      { host: "10.0.0.3", port: 7946 },
    ]);
    expect(config.autoCreateTopics).toBe(false);
    expect(config.numPartitions).toBe(3);
    expect(config.socketRequestMaxBytes).toBe(1048576);
    expect(config.logLevel).toBe("warn");
  });

  test("config: JSON file, named by BROOK_CONFIG", () => {
    const json = JSON.stringify({
      "node-id": 2,
      admin: "127.0.0.1:19644",
      "auto-create-topics": false,
    });
    const read = files({ "/etc/brook.json": json });
    const config = parse([], { BROOK_CONFIG: "/etc/brook.json" }, read);
    expect(config.nodeId).toBe(2);
    expect(config.admin).toEqual({ host: "127.0.0.1", port: 19644 });
    expect(config.autoCreateTopics).toBe(false);
  });

  test("config: a file without a known extension is sniffed", () => {
    const read = files({ a: '{"num-partitions": 4}', b: "num-partitions = 5" });
    expect(parse(["--config", "a"], {}, read).numPartitions).toBe(4);
    expect(parse(["--config", "b"], {}, read).numPartitions).toBe(5);
  });

  test("config: precedence is file, then environment, then flags", () => {
    const read = files({
      "c.toml": 'data-dir = "/file"\nkafka = "1.1.1.1:1"\nadmin = "2.2.2.2:2"',
    });
    const config = parse(
      ["--config", "c.toml", "--data-dir", "/flag"],
      { BROOK_DATA_DIR: "/env", BROOK_KAFKA: "3.3.3.3:3" },
      read,
    );
    expect(config.dataDir).toBe("/flag");
    expect(config.kafka).toEqual({ host: "3.3.3.3", port: 3 });
    expect(config.admin).toEqual({ host: "2.2.2.2", port: 2 });
  });

  test("config: file errors", () => {
    const read = files({
      "unknown.toml": "bogus = 1",
      "unknown.json": '{"kafka": "a:1", "bogus": 1}',
      "nested.json": '{"config": "other.toml"}',
      "type.toml": 'num-partitions = "3"',
      "type.json": '{"node-id": "1"}',
      "float.toml": "num-partitions = 1.5",
      "join.toml": 'join = "10.0.0.1:7946"',
      "bool.json": '{"auto-create-topics": "false"}',
      "twice.toml": "num-partitions = 1\nnum.partitions = 2",
      "broken.json": '{"kafka": ',
      "array.json": "[1]",
      "section.toml": "[broker]\nkafka = 'a:1'",
    });
    const error = (name: string): string => errorOf(["--config", name], {}, read);
    expect(error("unknown.toml")).toBe('Unknown key in config file unknown.toml: "bogus"');
    expect(error("unknown.json")).toBe('Unknown key in config file unknown.json: "bogus"');
    expect(error("nested.json")).toBe('Unknown key in config file nested.json: "config"');
    expect(error("type.toml")).toBe(
      'Invalid num-partitions in type.toml: expected an integer from 1 to 2147483647, got "3"',
    );
    expect(error("type.json")).toContain("Invalid node-id in type.json");
    expect(error("float.toml")).toContain("Invalid num-partitions in float.toml");
    expect(error("join.toml")).toBe(
      'Invalid join in join.toml: expected an array of host:port strings, got "10.0.0.1:7946"',
    );
    expect(error("bool.json")).toBe(
      'Invalid auto-create-topics in bool.json: expected true or false, got "false"',
    );
    expect(error("twice.toml")).toBe(
      "Config file twice.toml sets num-partitions twice: as num-partitions and as num.partitions",
    );
    expect(error("broken.json")).toStartWith("Cannot parse config file broken.json: ");
    expect(error("array.json")).toBe("Cannot parse config file array.json: expected a JSON object");
    expect(error("section.toml")).toBe('Unknown key in config file section.toml: "broker.kafka"');
    expect(error("missing.toml")).toStartWith("Cannot read config file missing.toml: ENOENT");
  });
});

describe("config: TOML files (smol-toml)", () => {
  const error = (text: string): string =>
    errorOf(["--config", "c.toml"], {}, files({ "c.toml": text }));

  test("config: toml: a syntax error is one line with its line number", () => {
    expect(error("kafka = ")).toBe("Cannot parse config file c.toml: line 1: invalid value");
    expect(error("num-partitions = 1\nnum-partitions = 2")).toStartWith(
      "Cannot parse config file c.toml: line 2: ",
    );
  });

  test("config: toml: tables and dates are refused by what they become", () => {
    expect(error("[broker]\nkafka = 'a:1'")).toBe(
      'Unknown key in config file c.toml: "broker.kafka"',
    );
    expect(error("kafka = { host = 'a' }")).toBe('Unknown key in config file c.toml: "kafka.host"');
    expect(error("data-dir = 1979-05-27")).toStartWith("Invalid data-dir in c.toml: expected ");
  });

  test("config: toml: seeded random bytes only ever give a ConfigError", () => {
    let state = 0x2545f491;
    const next = (): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    const alphabet = "ab=[]{}\"'#,. \n\t0123456789_-x\\u";
    for (let run = 0; run < 2000; run++) {
      let text = "";
      const length = next() % 40;
      for (let i = 0; i < length; i++) text += alphabet[next() % alphabet.length];
      try {
        parseNodeConfig(["--config", "c.toml"], {}, files({ "c.toml": text }));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw new Error(`Seed run ${run}: ${String(error)}`);
        expect((error as ConfigError).message).not.toContain("\n");
      }
    }
  });
});

/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests of
 * `GET /metrics`. It follows the format description (prometheus.io/docs/instrumenting/
 * exposition_formats) and refuses what Prometheus would refuse, and a little more that
 * a well-behaved exporter never does:
 *
 * - lines end with `\n`, the text too; `# HELP name docstring` (escapes `\\` and `\n`
 *   only), `# TYPE name counter|gauge|histogram|summary|untyped`, other `#` lines are
 *   comments; HELP and TYPE at most once per name, TYPE before the family's samples;
 * - a sample is `name[{labels}] value [timestamp]`; metric names match
 *   `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*` (not `__` reserved),
 *   label values are double-quoted with escapes `\\`, `\"`, `\n` only; no label twice;
 * - values are Go floats, `+Inf`, `-Inf` or `NaN`; timestamps are integers;
 * - a family's samples are contiguous and no series (name and label set) repeats;
 * - histogram `h`: only `h_bucket` (with `le`), `h_sum`, `h_count`; per label set the
 *   buckets have increasing `le` ending at `+Inf`, cumulative counts never decrease, and
 *   `h_count` equals the `+Inf` bucket; `_sum` and `_count` are present. Counters are
 *   not negative.
 *
 * Any violation throws `PrometheusParseError` naming the line.
 */

export type FamilyType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestampMs: number | null;
}

export interface Family {
  readonly name: string;
  type: FamilyType;
  help: string | null;
  readonly samples: Sample[];
}

export class PrometheusParseError extends Error {
  override name = "PrometheusParseError";
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$/;
const TYPES = new Set<FamilyType>(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseFloatStrict(text: string, where: string): number {
  if (!FLOAT.test(text))
    throw new PrometheusParseError(`${where}: not a float: ${JSON.stringify(text)}`);
  const bare = text.replace(/^[+-]/, "");
  const sign = text.startsWith("-") ? -1 : 1;
  if (bare === "Inf" || bare === "inf") return sign * Infinity;
  if (bare === "NaN" || bare === "nan") return NaN;
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new PrometheusParseError(`${where}: bad escape in HELP: \\${c}`);
  });
}

/** The family a sample name belongs to, given the TYPEs declared so far. */
function familyOf(
  sampleName: string,
  families: Map<string, Family>,
): { family: string; suffix: string } {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const type = families.get(base)?.type;
    if (type === "histogram" || (type === "summary" && suffix !== "_bucket"))
      return { family: base, suffix };
  }
  return { family: sampleName, suffix: "" };
}

class LineCursor {
  at = 0;
  constructor(
    readonly text: string,
    readonly where: string,
  ) {}
  fail(message: string): never {
    throw new PrometheusParseError(`${this.where}: ${message} at column ${this.at + 1}`);
  }
  rest(): string {
    return this.text.slice(this.at);
  }
  take(pattern: RegExp, what: string): string {
    const match = pattern.exec(this.rest());
    if (match === null) this.fail(`expected ${what}`);
    this.at += match[0].length;
    return match[0];
  }
  skipBlanks(): number {
    const start = this.at;
    while (this.text[this.at] === " " || this.text[this.at] === "\t") this.at++;
    return this.at - start;
  }
  expect(char: string): void {
    if (this.text[this.at] !== char) this.fail(`expected ${JSON.stringify(char)}`);
    this.at++;
  }
  labelValue(): string {
    this.expect('"');
    let value = "";
    for (;;) {
      const c = this.text[this.at];
      if (c === undefined) this.fail("unterminated label value");
      this.at++;
      if (c === '"') return value;
      if (c !== "\\") {
        value += c;
        continue;
      }
      const escaped = this.text[this.at];
      this.at++;
      if (escaped === "\\") value += "\\";
      else if (escaped === '"') value += '"';
      else if (escaped === "n") value += "\n";
      else this.fail(`bad escape in label value: \\${escaped ?? ""}`);
    }
  }
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith("\n"))
    throw new PrometheusParseError("Text does not end with a newline");
  const families = new Map<string, Family>();
  const finished = new Set<string>();
  const series = new Set<string>();
  const typed = new Set<string>();
  let current: string | null = null;
  const lines = text.split("\n");
  lines.pop(); // After the final newline.

  const enter = (name: string, where: string): Family => {
    if (current !== name) {
      if (finished.has(name))
        throw new PrometheusParseError(`${where}: family ${name} is not contiguous`);
      if (current !== null) finished.add(current);
      current = name;
    }
    let family = families.get(name);
    if (family === undefined) {
      family = { name, type: "untyped", help: null, samples: [] };
      families.set(name, family);
    }
    return family;
  };

  lines.forEach((line, index) => {
    const where = `Line ${index + 1}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const match = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (match === null) return; // A comment.
      const [, keyword, name, rest] = match as unknown as [
        string,
        "HELP" | "TYPE",
        string,
        string | undefined,
      ];
      if (!new RegExp(`${METRIC_NAME.source}$`).test(name))
        throw new PrometheusParseError(`${where}: bad metric name ${name}`);
      const family = enter(name, where);
      if (keyword === "HELP") {
        if (family.help !== null)
          throw new PrometheusParseError(`${where}: second HELP for ${name}`);
        family.help = unescapeHelp(rest ?? "", where);
      } else {
        if (family.samples.length > 0)
          throw new PrometheusParseError(`${where}: TYPE of ${name} after its samples`);
        if (typed.has(name)) throw new PrometheusParseError(`${where}: second TYPE for ${name}`);
        const type = (rest ?? "").trim() as FamilyType;
        if (!TYPES.has(type))
          throw new PrometheusParseError(`${where}: unknown type ${JSON.stringify(rest)}`);
        family.type = type;
        typed.add(name);
      }
      return;
    }
    const cursor = new LineCursor(line, where);
    cursor.skipBlanks();
    const name = cursor.take(METRIC_NAME, "a metric name");
    const labels: Record<string, string> = {};
    if (cursor.text[cursor.at] === "{") {
      cursor.at++;
      cursor.skipBlanks();
      while (cursor.text[cursor.at] !== "}") {
        const label = cursor.take(LABEL_NAME, "a label name");
        if (label.startsWith("__")) cursor.fail(`reserved label name ${label}`);
        if (Object.hasOwn(labels, label)) cursor.fail(`label ${label} given twice`);
        cursor.skipBlanks();
        cursor.expect("=");
        cursor.skipBlanks();
        labels[label] = cursor.labelValue();
        cursor.skipBlanks();
        if (cursor.text[cursor.at] === ",") {
          cursor.at++;
          cursor.skipBlanks();
        } else if (cursor.text[cursor.at] !== "}") {
          cursor.fail('expected "," or "}"');
        }
      }
      cursor.at++;
    }
    if (cursor.skipBlanks() === 0) cursor.fail("expected a blank before the value");
    const value = parseFloatStrict(cursor.take(/^\S+/, "a value"), where);
    let timestampMs: number | null = null;
    if (cursor.skipBlanks() > 0 && cursor.at < line.length) {
      const stamp = cursor.take(/^-?\d+/, "a timestamp");
      timestampMs = Number(stamp);
      cursor.skipBlanks();
    }
    if (cursor.at !== line.length) cursor.fail("trailing characters");

    const { family: familyName, suffix } = familyOf(name, families);
    const family = enter(familyName, where);
    if (family.type === "histogram") {
      if (suffix === "")
        throw new PrometheusParseError(`${where}: histogram ${familyName} has a bare sample`);
      if (suffix === "_bucket" && labels.le === undefined)
        throw new PrometheusParseError(`${where}: bucket without le`);
      if (suffix !== "_bucket" && labels.le !== undefined)
        throw new PrometheusParseError(`${where}: le outside a bucket`);
    }
    if (family.type === "counter" && (value < 0 || Number.isNaN(value))) {
      throw new PrometheusParseError(`${where}: counter ${name} is ${value}`);
    }
    const key = `${name}{${Object.keys(labels)
      .sort()
      .map((k) => `${k}=${JSON.stringify(labels[k])}`)
      .join(",")}}`;
    if (series.has(key)) throw new PrometheusParseError(`${where}: series ${key} repeated`);
    series.add(key);
    family.samples.push({ name, labels, value, timestampMs });
  });

  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function checkHistogram(family: Family): void {
  const groups = new Map<
    string,
    { buckets: Array<[number, number]>; sum?: number; count?: number }
  >();
  for (const sample of family.samples) {
    const rest = Object.entries(sample.labels)
      .filter(([k]) => k !== "le")
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const key = JSON.stringify(rest);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { buckets: [] }));
    if (sample.name.endsWith("_bucket"))
      group.buckets.push([parseFloatStrict(sample.labels.le!, `${family.name} le`), sample.value]);
    else if (sample.name.endsWith("_sum")) group.sum = sample.value;
    else group.count = sample.value;
  }
  for (const [key, group] of groups) {
    const where = `Histogram ${family.name}${key}`;
    if (group.buckets.length === 0) throw new PrometheusParseError(`${where}: no buckets`);
    for (let i = 1; i < group.buckets.length; i++) {
      if (!(group.buckets[i]![0] > group.buckets[i - 1]![0]))
        throw new PrometheusParseError(`${where}: le not increasing`);
      if (group.buckets[i]![1] < group.buckets[i - 1]![1])
        throw new PrometheusParseError(`${where}: bucket counts decrease`);
    }
    const last = group.buckets[group.buckets.length - 1]!;
    if (last[0] !== Infinity) throw new PrometheusParseError(`${where}: no +Inf bucket`);
    if (group.sum === undefined) throw new PrometheusParseError(`${where}: no _sum`);
    if (group.count === undefined) throw new PrometheusParseError(`${where}: no _count`);
    if (group.count !== last[1])
      throw new PrometheusParseError(
        `${where}: _count ${group.count} is not the +Inf bucket ${last[1]}`,
      );
  }
}

/** The value of one series; undefined when absent. Labels must match exactly. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const { family } = familyOf(name, families);
  const wanted = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const sample of families.get(family)?.samples ?? []) {
    if (sample.name !== name) continue;
    if (
      JSON.stringify(Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : 1))) === wanted
    )
      return sample.value;
  }
  return undefined;
}

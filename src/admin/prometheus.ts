/**
 * Writes the Prometheus text exposition format, version 0.0.4 (what `GET /metrics`
 * serves with `Content-Type: text/plain; version=0.0.4`).
 *
 * Format rules this writer keeps (prometheus.io, "Exposition formats"):
 * - a family is `# HELP name text` and `# TYPE name type`, then all its samples together;
 *   a family name appears once;
 * - metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`;
 * - label values escape backslash, double quote and newline; HELP text escapes backslash
 *   and newline;
 * - a histogram `h` is cumulative `h_bucket{le="..."}` samples in increasing `le`, ending
 *   with `le="+Inf"`, then `h_sum` and `h_count` (= the +Inf bucket);
 * - the text ends with a newline.
 *
 * Names are checked with assertions: they come from this code, never from users. Label
 * values (topic names, group ids) come from users and are escaped.
 */
import { assert } from "../util/assert.ts";

export type MetricType = "counter" | "gauge" | "histogram";

export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

export const METRIC_NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
export const LABEL_NAME_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A histogram's state: counts per bucket (not cumulative), the last one for +Inf. */
export interface HistogramSnapshot {
  /** Upper bounds, strictly increasing, without +Inf. */
  readonly bounds: readonly number[];
  /** bounds.length + 1 entries: observations in (bounds[i-1], bounds[i]], then above all. */
  readonly counts: ArrayLike<number>;
  readonly sum: number;
}

export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/** Go's strconv.ParseFloat reads every finite JS number string; infinities get a sign. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

export class PrometheusWriter {
  #text = "";
  readonly #families = new Set<string>();
  #current: { name: string; type: MetricType } | null = null;

  /** Starts a family; its samples must follow before the next family starts. */
  family(name: string, type: MetricType, help: string): this {
    assert(METRIC_NAME_PATTERN.test(name), `Bad metric name: ${name}`);
    assert(!this.#families.has(name), `Metric family written twice: ${name}`);
    this.#families.add(name);
    this.#current = { name, type };
    this.#text += `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
    return this;
  }

  /** One sample of the current counter or gauge family. */
  sample(labels: Labels, value: number): this {
    const current = this.#current;
    assert(current !== null, "Sample before any family");
    assert(current.type !== "histogram", "Use histogram() for histogram samples");
    this.#line(current.name, labels, value);
    return this;
  }

  /** The bucket, sum and count samples of one labelled histogram of the current family. */
  histogram(labels: Labels, snapshot: HistogramSnapshot): this {
    const current = this.#current;
    assert(current !== null, "Histogram before any family");
    assert(current.type === "histogram", `Family ${current.name} is not a histogram`);
    const { bounds, counts } = snapshot;
    assert(counts.length === bounds.length + 1, "Histogram counts do not match its bounds");
    let cumulative = 0;
    for (let i = 0; i < bounds.length; i++) {
      assert(i === 0 || bounds[i]! > bounds[i - 1]!, "Histogram bounds not increasing");
      cumulative += counts[i]!;
      this.#line(
        `${current.name}_bucket`,
        [...labels, ["le", formatValue(bounds[i]!)]],
        cumulative,
      );
    }
    cumulative += counts[bounds.length]!;
    this.#line(`${current.name}_bucket`, [...labels, ["le", "+Inf"]], cumulative);
    this.#line(`${current.name}_sum`, labels, snapshot.sum);
    this.#line(`${current.name}_count`, labels, cumulative);
    return this;
  }

  text(): string {
    return this.#text;
  }

  #line(name: string, labels: Labels, value: number): void {
    let line = name;
    if (labels.length > 0) {
      line += "{";
      for (let i = 0; i < labels.length; i++) {
        const [label, labelValue] = labels[i]!;
        assert(LABEL_NAME_PATTERN.test(label), `Bad label name: ${label}`);
        if (i > 0) line += ",";
        line += `${label}="${escapeLabelValue(labelValue)}"`;
      }
      line += "}";
    }
    this.#text += `${line} ${formatValue(value)}\n`;
  }
}

import { describe, expect, test } from "bun:test";
import { parsePrometheusText, sampleValue } from "../../test/helpers/prometheus.ts";
import { escapeHelp, escapeLabelValue, formatValue, PrometheusWriter } from "./prometheus.ts";

describe("admin: prometheus writer", () => {
  test("admin: prometheus: families, samples and a histogram in the text format", () => {
    const writer = new PrometheusWriter()
      .family("brook_things_total", "counter", "Things seen.")
      .sample([["topic", "a"]], 3)
      .sample([["topic", "b"]], 0)
      .family("brook_latency_seconds", "histogram", "Latency.")
      .histogram([["api", "Fetch"]], { bounds: [0.1, 1], counts: [2, 1, 1], sum: 3.5 })
      .family("brook_open", "gauge", "Open things.")
      .sample([], 2);
    expect(writer.text()).toBe(
      [
        "# HELP brook_things_total Things seen.",
        "# TYPE brook_things_total counter",
        'brook_things_total{topic="a"} 3',
        'brook_things_total{topic="b"} 0',
        "# HELP brook_latency_seconds Latency.",
        "# TYPE brook_latency_seconds histogram",
        'brook_latency_seconds_bucket{api="Fetch",le="0.1"} 2',
        'brook_latency_seconds_bucket{api="Fetch",le="1"} 3',
        'brook_latency_seconds_bucket{api="Fetch",le="+Inf"} 4',
        'brook_latency_seconds_sum{api="Fetch"} 3.5',
        'brook_latency_seconds_count{api="Fetch"} 4',
        "# HELP brook_open Open things.",
        "# TYPE brook_open gauge",
        "brook_open 2",
        "",
      ].join("\n"),
    );
    const families = parsePrometheusText(writer.text());
    expect(sampleValue(families, "brook_latency_seconds_count", { api: "Fetch" })).toBe(4);
  });

  test("admin: prometheus: label values and help text are escaped and parse back", () => {
    const nasty = 'a "quoted" \\ back\nslash';
    const text = new PrometheusWriter()
      .family("brook_x", "gauge", "Line one\nline \\two")
      .sample([["group", nasty]], 1)
      .text();
    expect(text).toContain('brook_x{group="a \\"quoted\\" \\\\ back\\nslash"} 1');
    expect(text).toContain("# HELP brook_x Line one\\nline \\\\two");
    const families = parsePrometheusText(text);
    expect(families.get("brook_x")!.help).toBe("Line one\nline \\two");
    expect(families.get("brook_x")!.samples[0]!.labels.group).toBe(nasty);
  });

  test("admin: prometheus: escapes and values", () => {
    expect(escapeLabelValue('x"y\\z\n')).toBe('x\\"y\\\\z\\n');
    expect(escapeHelp('a\\b\nc"')).toBe('a\\\\b\\nc"');
    expect(formatValue(Infinity)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(0.0005)).toBe("0.0005");
    expect(formatValue(1e-7)).toBe("1e-7");
  });

  test("admin: prometheus: a family twice, a bad name or a sample of the wrong kind is a programmer error", () => {
    expect(() => new PrometheusWriter().family("x", "gauge", "").family("x", "gauge", "")).toThrow(
      "written twice",
    );
    expect(() => new PrometheusWriter().family("1x", "gauge", "")).toThrow("Bad metric name");
    expect(() =>
      new PrometheusWriter().family("x", "gauge", "").sample([["le-x", "1"]], 1),
    ).toThrow("Bad label name");
    expect(() => new PrometheusWriter().sample([], 1)).toThrow("Sample before any family");
    expect(() => new PrometheusWriter().family("h", "histogram", "").sample([], 1)).toThrow(
      "Use histogram()",
    );
    expect(() =>
      new PrometheusWriter()
        .family("h", "histogram", "")
        .histogram([], { bounds: [1], counts: [1], sum: 0 }),
    ).toThrow("do not match");
  });
});

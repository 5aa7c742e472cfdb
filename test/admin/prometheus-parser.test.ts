/**
 * The strict Prometheus text parser of test/helpers/prometheus.ts: what it accepts and
 * what it refuses, following the exposition format (prometheus.io, "Exposition
 * formats", text format 0.0.4). The /metrics tests lean on it, so it is tested first.
 */
import { describe, expect, test } from "bun:test";
import { parsePrometheusText, PrometheusParseError, sampleValue } from "../helpers/prometheus.ts";

const lines = (...text: string[]) => `${text.join("\n")}\n`;

describe("test helper: prometheus parser", () => {
  test("prometheus parser: accepts the format's own example shapes", () => {
    const families = parsePrometheusText(
      lines(
        "# A plain comment",
        "# HELP http_requests_total The total number of HTTP requests.",
        "# TYPE http_requests_total counter",
        'http_requests_total{method="post",code="200"} 1027 1395066363000',
        'http_requests_total{method="post",code="400",}    3 1395066363000',
        "",
        "# Escaping in label values:",
        'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
        "metric_without_timestamp_and_labels 12.47",
        "# TYPE something_weird gauge",
        'something_weird{problem="division by zero"} +Inf -3982045',
        "# HELP http_request_duration_seconds A histogram of the request duration.",
        "# TYPE http_request_duration_seconds histogram",
        'http_request_duration_seconds_bucket{le="0.05"} 24054',
        'http_request_duration_seconds_bucket{le="0.1"} 33444',
        'http_request_duration_seconds_bucket{le="+Inf"} 144320',
        "http_request_duration_seconds_sum 53423",
        "http_request_duration_seconds_count 144320",
      ),
    );
    expect(sampleValue(families, "http_requests_total", { method: "post", code: "400" })).toBe(3);
    expect(families.get("http_requests_total")!.samples[0]!.timestampMs).toBe(1395066363000);
    expect(families.get("msdos_file_access_time_seconds")!.samples[0]!.labels).toEqual({
      path: "C:\\DIR\\FILE.TXT",
      error: 'Cannot find file:\n"FILE.TXT"',
    });
    expect(sampleValue(families, "something_weird", { problem: "division by zero" })).toBe(
      Infinity,
    );
    expect(families.get("http_request_duration_seconds")!.type).toBe("histogram");
    expect(sampleValue(families, "http_request_duration_seconds_count")).toBe(144320);
    expect(families.get("metric_without_timestamp_and_labels")!.type).toBe("untyped");
  });

  const refused: Array<[what: string, text: string, message: RegExp]> = [
    ["text without a final newline", "x 1", /does not end with a newline/],
    ["a metric name starting with a digit", lines("1x 1"), /expected a metric name/],
    ["a label name with a dash", lines('x{a-b="1"} 1'), /expected "=" at column 4/],
    ["a reserved label name", lines('x{__name__="y"} 1'), /reserved label name/],
    ["a label given twice", lines('x{a="1",a="2"} 1'), /label a given twice/],
    ["an unknown escape in a label value", lines('x{a="\\t"} 1'), /bad escape in label value/],
    ["an unterminated label value", lines('x{a="1} 1'), /unterminated label value/],
    ["a missing blank before the value", lines('x{a="1"}1'), /expected a blank before the value/],
    ["a value that is not a float", lines("x one"), /not a float/],
    ["trailing characters", lines("x 1 2 3"), /trailing characters/],
    ["an unknown escape in HELP", lines("# HELP x a \\t b", "x 1"), /bad escape in HELP/],
    ["HELP twice", lines("# HELP x a", "# HELP x b", "x 1"), /second HELP/],
    ["TYPE twice", lines("# TYPE x gauge", "# TYPE x gauge", "x 1"), /second TYPE/],
    ["an unknown TYPE", lines("# TYPE x meter", "x 1"), /unknown type/],
    ["TYPE after samples", lines("x 1", "# TYPE x gauge"), /TYPE of x after its samples/],
    ["a family split in two", lines("a 1", "b 1", 'a{l="2"} 1'), /family a is not contiguous/],
    ["a series twice", lines('a{l="1"} 1', 'a{l="1"} 2'), /repeated/],
    ["a negative counter", lines("# TYPE c_total counter", "c_total -1"), /counter c_total is -1/],
    [
      "a histogram without +Inf",
      lines("# TYPE h histogram", 'h_bucket{le="1"} 1', "h_sum 1", "h_count 1"),
      /no \+Inf bucket/,
    ],
    [
      "a histogram whose counts decrease",
      lines(
        "# TYPE h histogram",
        'h_bucket{le="1"} 2',
        'h_bucket{le="+Inf"} 1',
        "h_sum 1",
        "h_count 1",
      ),
      /bucket counts decrease/,
    ],
    [
      "a histogram with le out of order",
      lines(
        "# TYPE h histogram",
        'h_bucket{le="2"} 1',
        'h_bucket{le="1"} 1',
        'h_bucket{le="+Inf"} 1',
        "h_sum 1",
        "h_count 1",
      ),
      /le not increasing/,
    ],
    [
      "a histogram whose count is not the +Inf bucket",
      lines("# TYPE h histogram", 'h_bucket{le="+Inf"} 2', "h_sum 1", "h_count 3"),
      /_count 3 is not the \+Inf bucket 2/,
    ],
    [
      "a histogram without _sum",
      lines("# TYPE h histogram", 'h_bucket{le="+Inf"} 2', "h_count 2"),
      /no _sum/,
    ],
    [
      "a histogram without _count",
      lines("# TYPE h histogram", 'h_bucket{le="+Inf"} 2', "h_sum 2"),
      /no _count/,
    ],
    [
      "a histogram bucket without le",
      lines("# TYPE h histogram", "h_bucket 2"),
      /bucket without le/,
    ],
    ["a bare histogram sample", lines("# TYPE h histogram", "h 2"), /bare sample/],
    [
      "a histogram le that is not a float",
      lines(
        "# TYPE h histogram",
        'h_bucket{le="big"} 1',
        'h_bucket{le="+Inf"} 1',
        "h_sum 1",
        "h_count 1",
      ),
      /not a float/,
    ],
  ];
  for (const [what, text, message] of refused) {
    test(`prometheus parser: refuses ${what}`, () => {
      expect(() => parsePrometheusText(text)).toThrow(PrometheusParseError);
      expect(() => parsePrometheusText(text)).toThrow(message);
    });
  }

  test("prometheus parser: histograms are checked per label set", () => {
    const families = parsePrometheusText(
      lines(
        "# TYPE h histogram",
        'h_bucket{api="a",le="1"} 1',
        'h_bucket{api="a",le="+Inf"} 2',
        'h_sum{api="a"} 3',
        'h_count{api="a"} 2',
        'h_bucket{api="b",le="1"} 0',
        'h_bucket{api="b",le="+Inf"} 0',
        'h_sum{api="b"} 0',
        'h_count{api="b"} 0',
      ),
    );
    expect(sampleValue(families, "h_count", { api: "a" })).toBe(2);
    expect(() =>
      parsePrometheusText(
        lines(
          "# TYPE h histogram",
          'h_bucket{api="a",le="+Inf"} 2',
          'h_sum{api="a"} 3',
          'h_count{api="a"} 2',
          'h_bucket{api="b",le="+Inf"} 1',
          'h_sum{api="b"} 0',
        ),
      ),
    ).toThrow(/no _count/);
  });
});

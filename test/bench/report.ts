/**
 * @module
 * Rows of the result table: one figure each (median and min–max of its counted runs),
 * with the machine limit it is set beside and the fraction of that limit reached. Rows
 * render as one markdown table and serialize as the JSON result file.
 */
import type { Summary } from "./stats.ts";

export type Better = "higher" | "lower";

export interface Row {
  /** Stable key for comparing result files: section.what.unit. */
  id: string;
  section: string;
  label: string;
  unit: string;
  better: Better;
  summary: Summary | null;
  /** Why there is no figure (not installed, not permitted, error) or a remark. */
  note?: string;
  /** Row id of the limit this figure is set beside. */
  limitId?: string;
  /** Short name of that limit for the table ("null", "TCP", "raw pread"). */
  limitName?: string;
  /** CPU cores used (CPU seconds / wall seconds), median over runs, when measured. */
  brokerCores?: number;
  clientCores?: number;
  /** Extra per-run detail kept in the JSON only. */
  detail?: unknown;
  /** In the JSON, not in the table (a limit only shown through the row it limits). */
  hidden?: boolean;
}

/** What a group kept in its own module needs of the harness (`run.ts`). */
export interface GroupHarness {
  /** One warm-up run (run -1), then the counted runs. */
  repeat<T>(once: (run: number) => Promise<T>): Promise<T[]>;
  figure(row: Omit<Row, "summary">, values: number[]): Row;
  /** A row without a figure, and why. */
  missing(row: Omit<Row, "summary" | "note">, note: string): void;
}

/**
 * Fraction of the limit reached, 1 = as fast as the limit: figure/limit for rates
 * (higher is better), limit/figure for times and sizes (lower is better).
 */
export function ratio(row: Row, limit: Row | undefined): number | null {
  if (row.summary === null || limit?.summary == null) return null;
  const ours = row.summary.median;
  const theirs = limit.summary.median;
  if (ours <= 0 || theirs <= 0) return null;
  return row.better === "higher" ? ours / theirs : theirs / ours;
}

export function formatNumber(value: number): string {
  const size = Math.abs(value);
  if (size >= 1e7) return `${(value / 1e6).toFixed(1)} M`;
  if (size >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (size >= 1e5) return `${(value / 1e3).toFixed(0)} k`;
  if (size >= 100) return value.toFixed(0);
  if (size >= 10) return value.toFixed(1);
  if (size >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

export function renderTable(rows: readonly Row[]): string {
  const byId = new Map(rows.map((row) => [row.id, row]));
  const lines = [
    "| section | figure | unit | median | min–max | runs | limit | of limit | CPU broker / client |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    if (row.hidden === true) continue;
    const limit = row.limitId === undefined ? undefined : byId.get(row.limitId);
    const fraction = ratio(row, limit);
    const summary = row.summary;
    const cells = [
      row.section,
      row.label + (row.note !== undefined && summary !== null ? ` (${row.note})` : ""),
      row.unit,
      summary === null ? (row.note ?? "not measured") : formatNumber(summary.median),
      summary === null ? "" : `${formatNumber(summary.min)}–${formatNumber(summary.max)}`,
      summary === null ? "" : String(summary.runs.length),
      limit?.summary == null
        ? ""
        : `${formatNumber(limit.summary.median)} ${row.limitName ?? ""}`.trim(),
      fraction === null ? "" : fraction.toFixed(2),
      row.brokerCores === undefined && row.clientCores === undefined
        ? ""
        : `${row.brokerCores?.toFixed(2) ?? "–"} / ${row.clientCores?.toFixed(2) ?? "–"}`,
    ];
    lines.push(`| ${cells.map((cell) => cell.replaceAll("|", "\\|")).join(" | ")} |`);
  }
  return lines.join("\n");
}

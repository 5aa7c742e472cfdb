/**
 * @module
 * Summaries of repeated runs and of latency samples. Medians of an even count take the
 * mean of the middle two.
 */
import { assert } from "../../src/util/assert.ts";

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(runs: readonly number[]): Summary {
  assert(runs.length > 0, "No runs to summarize");
  const sorted = [...runs].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)!, runs: [...runs] };
}

/** Nearest-rank percentile (p in 0..100) of samples already sorted ascending. */
export function percentile(sorted: Float64Array | readonly number[], p: number): number {
  assert(sorted.length > 0, "No samples");
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** A growable list of float samples without a JS array per sample. */
export class Samples {
  #values = new Float64Array(1024);
  #count = 0;

  push(value: number): void {
    if (this.#count === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#count++] = value;
  }

  get count(): number {
    return this.#count;
  }

  sorted(): Float64Array {
    return this.#values.slice(0, this.#count).sort();
  }
}

/**
 * Where the last batches appended to a segment lie in its file: offsets, position and
 * size only, never their bytes (the page cache stays the only message cache). A reader
 * that keeps up with the log (a follower, a consumer at the tail) asks for one of these
 * offsets in nearly every fetch; finding it here spares the read of batch headers the
 * offset index would otherwise need (one pread of up to index.interval.bytes per fetch,
 * a tenth of a small request's CPU).
 *
 * A fixed ring of the newest `capacity` batches, in offset order, kept by the segment
 * they belong to: a segment that is cut or rewritten is a new object, so the ring never
 * describes bytes that changed.
 */
import { assert } from "../util/assert.ts";
import type { BatchLocation } from "./segment.ts";

export const RECENT_BATCHES_DEFAULT = 256;

export class RecentBatches {
  readonly #base: Float64Array;
  readonly #last: Float64Array;
  readonly #position: Float64Array;
  readonly #size: Float64Array;
  /** Entries held, and where the next one goes. */
  #count = 0;
  #next = 0;

  constructor(capacity = RECENT_BATCHES_DEFAULT) {
    assert(capacity > 0, "A ring of recent batches needs room");
    this.#base = new Float64Array(capacity);
    this.#last = new Float64Array(capacity);
    this.#position = new Float64Array(capacity);
    this.#size = new Float64Array(capacity);
  }

  /** A batch appended after every one recorded so far. */
  add(baseOffset: number, lastOffset: number, position: number, size: number): void {
    if (this.#count > 0) {
      const newest = this.#slot(this.#count - 1);
      assert(baseOffset > this.#last[newest]!, "Recent batches out of order");
    }
    const slot = this.#next;
    this.#base[slot] = baseOffset;
    this.#last[slot] = lastOffset;
    this.#position[slot] = position;
    this.#size[slot] = size;
    this.#next = (slot + 1) % this.#base.length;
    if (this.#count < this.#base.length) this.#count++;
  }

  /**
   * The batch holding `offset` or the first after it, as `Segment.locate` answers; null
   * past the newest batch; undefined when `offset` is older than the ring covers (ask
   * the index).
   */
  locate(offset: number): BatchLocation | null | undefined {
    if (this.#count === 0 || offset < this.#base[this.#slot(0)]!) return undefined;
    // The first entry whose last offset reaches `offset`.
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#last[this.#slot(middle)]! < offset) low = middle + 1;
      else high = middle;
    }
    if (low === this.#count) return null;
    const slot = this.#slot(low);
    return {
      position: this.#position[slot]!,
      size: this.#size[slot]!,
      baseOffset: this.#base[slot]!,
      lastOffset: this.#last[slot]!,
    };
  }

  /** The physical slot of the `index`-th oldest entry. */
  #slot(index: number): number {
    const oldest = (this.#next - this.#count + this.#base.length) % this.#base.length;
    return (oldest + index) % this.#base.length;
  }
}

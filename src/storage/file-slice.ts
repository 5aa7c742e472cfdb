/**
 * @module
 * Whole record batches of a partition log left in their segment files, read a piece at a
 * time as the connection sends them (DeferredBytes). It is what userspace can do in
 * place of sendfile(2): the broker holds about one piece per connection instead of a
 * whole fetch answer, and reading overlaps sending.
 *
 * The slice opens its own descriptor per segment when it is made, in the same
 * synchronous call that planned the ranges, so the bytes it names stay readable
 * whatever happens to the log afterwards: a segment deleted by retention or replaced by
 * compaction is unlinked, but an open descriptor keeps its old inode. Only a truncation
 * in place (a log cut back to a recovery point) can make a read come up short; that
 * throws, and the connection closes because the frame can no longer be completed.
 * Batches never span segments, so each range holds whole batches.
 *
 * A piece whose pages have left the page cache (a consumer far behind) is read on the
 * runtime's file-system threads first (`whenReadable`, storage/page-cache.ts), so the
 * thread that serves every connection never waits for the disk on one consumer's behalf.
 *
 * Descriptors are closed when the last byte is read or on `release`; a slice that is
 * dropped without either is closed when it is garbage collected (a safety net, not the
 * plan: every owner releases).
 */
import { Buffer } from "node:buffer";
import { closeSync, openSync, read } from "node:fs";
import type { DeferredBytes } from "../protocol/deferred-bytes.ts";
import {
  BATCH_HEADER_BYTES,
  LOG_OVERHEAD_BYTES,
  readBatchLength,
  readRecordCount,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import { rangeCached } from "./page-cache.ts";
import { readFully } from "./segment-files.ts";

const log = logger("storage");

/**
 * Mean batch size from which sendfile pays: below it, one header read per batch (to
 * count records for the metrics) costs more than the copy sendfile saves.
 */
const SENDFILE_BATCH_BYTES_MIN = 32 * 1024;

/** A byte range of one segment's .log file, starting at a batch and ending after one. */
export interface SliceRange {
  readonly path: string;
  readonly position: number;
  readonly length: number;
}

interface OpenRange extends SliceRange {
  readonly fd: number;
}

/** The descriptors, kept apart from the slice so the safety net can close them. */
interface Descriptors {
  fds: number[];
}

function closeAll(descriptors: Descriptors): void {
  for (const fd of descriptors.fds) {
    try {
      closeSync(fd);
    } catch (error) {
      log.error("Closing a slice's segment file failed", { error: String(error) });
    }
  }
  descriptors.fds = [];
}

const unreleased = new FinalizationRegistry<Descriptors>((descriptors) => {
  if (descriptors.fds.length > 0) {
    log.warn("A file slice was dropped without being released", { files: descriptors.fds.length });
    closeAll(descriptors);
  }
});

export class FileSlice implements DeferredBytes {
  readonly byteLength: number;
  /** Told once, with the number of records in the batches (0 when not counting), when the last byte is read. */
  onFinished: (records: number) => void = () => {};
  readonly #ranges: OpenRange[];
  readonly #descriptors: Descriptors;
  /** Progress: the range being read and how far into it. */
  #range = 0;
  #inRange = 0;
  /** Where, within the current range, the next batch header starts (for the count). */
  #nextBatchAt = 0;
  #records = 0;
  /** Batches counted so far and their bytes: their mean size picks sendfile or reads. */
  #batches = 0;
  #counted = 0;
  /** A batch header read alone (cut by a piece's end, or skipped by sendfile). */
  readonly #header = Buffer.allocUnsafe(BATCH_HEADER_BYTES);

  /** False for a follower's fetch: nothing counts its records, so sendfile always pays. */
  readonly #counting: boolean;
  /** The next piece, read ahead off the request thread because it was not cached. */
  #prepared: Buffer | null = null;
  /** That read while it runs; the descriptors stay open until it ends. */
  #reading: Promise<void> | null = null;
  #readError: Error | null = null;
  #releaseAfterRead = false;

  constructor(ranges: readonly SliceRange[], options: { countRecords?: boolean } = {}) {
    this.#counting = options.countRecords ?? true;
    assert(ranges.length > 0, "A file slice needs at least one range");
    const fds: number[] = [];
    try {
      for (const range of ranges) fds.push(openSync(range.path, "r"));
    } catch (error) {
      closeAll({ fds });
      throw error;
    }
    this.#ranges = ranges.map((range, i) => ({ ...range, fd: fds[i]! }));
    this.#descriptors = { fds };
    this.byteLength = ranges.reduce((sum, range) => sum + range.length, 0);
    unreleased.register(this, this.#descriptors, this);
  }

  next(maxBytes: number): Uint8Array {
    assert(maxBytes > 0, "A slice piece must be positive");
    assert(this.#reading === null, "A slice piece is read while the last one is still read");
    if (this.#readError !== null) throw this.#readError;
    const range = this.#current();
    let piece: Buffer;
    if (this.#prepared !== null) {
      piece = this.#prepared.subarray(0, maxBytes);
      this.#prepared =
        piece.byteLength < this.#prepared.byteLength ? this.#prepared.subarray(maxBytes) : null;
    } else {
      const size = Math.min(maxBytes, range.length - this.#inRange);
      piece = Buffer.allocUnsafe(size);
      this.#checkWhole(
        range,
        piece,
        readFully(range.fd, piece, 0, size, range.position + this.#inRange),
      );
    }
    if (this.#counting) this.#countBatches(range, this.#inRange + piece.byteLength, piece);
    this.#advance(piece.byteLength);
    return piece;
  }

  /**
   * Null when the next piece of at most `maxBytes` can be read or sent at once (its pages
   * are cached, or whether they are cannot be told); otherwise a promise that settles
   * once the piece has been read on the runtime's file-system threads, `next` then
   * handing it out. It never rejects: a failed read is thrown by `next`.
   */
  whenReadable(maxBytes: number): Promise<void> | null {
    assert(maxBytes > 0, "A slice piece must be positive");
    if (this.#reading !== null) return this.#reading;
    if (this.#prepared !== null || this.#readError !== null || this.#released()) return null;
    const range = this.#current();
    const size = Math.min(maxBytes, range.length - this.#inRange);
    const position = range.position + this.#inRange;
    if (rangeCached(range.fd, position, size) !== false) return null;
    const piece = Buffer.allocUnsafe(size);
    this.#reading = new Promise<void>((settle) => {
      read(range.fd, piece, 0, size, position, (error, bytesRead) => {
        this.#reading = null;
        try {
          if (error !== null) throw error;
          this.#checkWhole(range, piece, bytesRead);
          this.#prepared = piece;
        } catch (failure) {
          this.#readError = failure instanceof Error ? failure : new Error(String(failure));
        }
        if (this.#releaseAfterRead) this.release();
        settle();
      });
    });
    return this.#reading;
  }

  /**
   * sendfile for the rest, once the first piece (read with `next`) showed batches large
   * enough that reading one header per batch from the file, to count records, costs
   * less than copying the bytes; small batches are read.
   */
  sendWith(
    send: (fileFd: number, position: number, count: number) => number,
    maxBytes: number,
  ): number | null {
    assert(maxBytes > 0, "A slice piece must be positive");
    if (
      this.#prepared !== null ||
      this.#readError !== null ||
      (this.#counting &&
        (this.#batches === 0 || this.#counted / this.#batches < SENDFILE_BATCH_BYTES_MIN))
    )
      return null;
    const range = this.#current();
    const sent = send(
      range.fd,
      range.position + this.#inRange,
      Math.min(maxBytes, range.length - this.#inRange),
    );
    if (sent === 0) return 0;
    if (this.#counting) this.#countBatches(range, this.#inRange + sent, null);
    this.#advance(sent);
    return sent;
  }

  release(): void {
    if (this.#released()) return;
    if (this.#reading !== null) {
      // A descriptor closed under a running read could be reused by another file.
      this.#releaseAfterRead = true;
      return;
    }
    unreleased.unregister(this);
    closeAll(this.#descriptors);
    this.#prepared = null;
  }

  #released(): boolean {
    return this.#descriptors.fds.length === 0;
  }

  /** Throws unless a piece read from `range` came back whole. */
  #checkWhole(range: OpenRange, piece: Buffer, bytesRead: number): void {
    if (bytesRead < piece.byteLength)
      throw new Error(
        `${range.path} ends before the batches it held (${bytesRead} of ${piece.byteLength} bytes read)`,
      );
  }

  #current(): OpenRange {
    const range = this.#ranges[this.#range];
    if (range === undefined || this.#descriptors.fds.length === 0)
      throw new Error("The file slice is released or fully read");
    return range;
  }

  /** Marks `size` more bytes of the current range as delivered. */
  #advance(size: number): void {
    this.#inRange += size;
    if (this.#inRange < this.#ranges[this.#range]!.length) return;
    this.#range++;
    this.#inRange = 0;
    this.#nextBatchAt = 0;
    if (this.#range === this.#ranges.length) {
      this.release();
      this.onFinished(this.#records);
    }
  }

  /**
   * Counts the batches whose headers start before `end` (in the current range), from
   * `piece` (the bytes from #inRange on) where it holds the header, else from the file.
   */
  #countBatches(range: OpenRange, end: number, piece: Uint8Array | null): void {
    while (this.#nextBatchAt < end) {
      let header: Uint8Array;
      let at: number;
      const inPiece = this.#nextBatchAt - this.#inRange;
      if (piece !== null && inPiece + BATCH_HEADER_BYTES <= piece.byteLength) {
        header = piece;
        at = inPiece;
      } else {
        header = this.#header;
        at = 0;
        const n = readFully(
          range.fd,
          header,
          0,
          BATCH_HEADER_BYTES,
          range.position + this.#nextBatchAt,
        );
        if (n < BATCH_HEADER_BYTES) throw new Error(`${range.path} ends inside a batch header`);
      }
      const size = LOG_OVERHEAD_BYTES + readBatchLength(header, at);
      this.#records += readRecordCount(header, at);
      this.#batches++;
      this.#counted += size;
      this.#nextBatchAt += size;
    }
  }
}

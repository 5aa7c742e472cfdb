/**
 * @module
 * Limits of the storage engine, with their relations asserted at load (TigerBeetle).
 * Each bounds memory, a file format field or the work of one call.
 */
import { BATCH_HEADER_BYTES } from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";

/** Largest int32: index positions and relative offsets are int32 on disk. */
export const INT32_MAX = 2 ** 31 - 1;

/**
 * Largest single batch the log stores, whatever max.message.bytes says. Bounds the
 * buffer recovery needs to check one batch's CRC.
 */
export const BATCH_BYTES_MAX = 64 * 1024 * 1024;

/**
 * Largest records blob of one append (one partition of one produce request). Kafka's
 * socket.request.max.bytes is 100 MiB; the server's frame limit stays below this.
 */
export const APPEND_BYTES_MAX = 128 * 1024 * 1024;

/** segment.bytes bounds. Kafka's floor is 14 bytes; its ceiling is int32 (positions). */
export const SEGMENT_BYTES_MIN = 14;
export const SEGMENT_BYTES_MAX = INT32_MAX;

/** segment.ms floor (Kafka's). */
export const SEGMENT_MS_MIN = 1;

/** index.interval.bytes ceiling: Kafka's int. */
export const INDEX_INTERVAL_BYTES_MAX = INT32_MAX;

/** A segment's offsets span at most this much past its base: .index entries hold int32. */
export const RELATIVE_OFFSET_MAX = INT32_MAX;

/** Offset index entry: relative offset int32 + position int32. */
export const OFFSET_INDEX_ENTRY_BYTES = 8;
/** Time index entry: timestamp int64 + relative offset int32. */
export const TIME_INDEX_ENTRY_BYTES = 12;

/**
 * Entries in one segment's offset index: Kafka's segment.index.bytes default (10 MiB)
 * divided by the entry size. A full index rolls the segment, which bounds the memory an
 * active segment's index takes.
 */
export const INDEX_ENTRIES_MAX = (10 * 1024 * 1024) / OFFSET_INDEX_ENTRY_BYTES;

/**
 * Time index entries: one per offset index entry, plus the closing entry written when a
 * segment is sealed (its largest timestamp).
 */
export const TIME_INDEX_ENTRIES_MAX = INDEX_ENTRIES_MAX + 1;

/** Read size while scanning a segment batch by batch (recovery, index rebuilds). */
export const SCAN_CHUNK_BYTES = 1024 * 1024;

/**
 * Largest read while looking for one batch header after an index lookup. The batch
 * sought starts within index.interval.bytes of the entry, so one read of interval + 61
 * bytes usually suffices; larger intervals take several reads of this size.
 */
export const LOCATE_CHUNK_BYTES_MAX = 64 * 1024;

/** Default bound of the shared cache of sealed segments' indexes (bytes in memory). */
export const INDEX_CACHE_BYTES_DEFAULT = 64 * 1024 * 1024;
/** Default bound of open read-only segment files in the shared cache. */
export const OPEN_FILES_DEFAULT = 256;

assert(APPEND_BYTES_MAX >= BATCH_BYTES_MAX, "An append must be able to carry the largest batch");
assert(BATCH_BYTES_MAX >= BATCH_HEADER_BYTES, "The largest batch must hold a header");
// A segment file grows past segment.bytes only when a single append is larger, so its
// size is at most max(SEGMENT_BYTES_MAX, APPEND_BYTES_MAX): positions must fit in int32.
assert(SEGMENT_BYTES_MAX <= INT32_MAX, "Segment positions must fit an int32");
assert(APPEND_BYTES_MAX <= INT32_MAX, "A one-append segment must fit int32 positions");
assert(SEGMENT_BYTES_MIN >= 1, "Segments must hold something");
assert(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_MAX, "Segment size bounds are inverted");
// One append never spans segments; its records (at least 7 bytes each) must fit the
// relative offsets of a fresh segment.
assert(APPEND_BYTES_MAX / 7 < RELATIVE_OFFSET_MAX, "One append's offsets must fit one segment");
assert(Number.isInteger(INDEX_ENTRIES_MAX), "Index size must be whole entries");
assert(SCAN_CHUNK_BYTES >= BATCH_HEADER_BYTES, "A scan chunk must hold a batch header");
assert(LOCATE_CHUNK_BYTES_MAX >= BATCH_HEADER_BYTES, "A locate chunk must hold a batch header");
assert(SCAN_CHUNK_BYTES <= BATCH_BYTES_MAX, "Scan chunks grow to one batch, never shrink below it");
assert(OPEN_FILES_DEFAULT >= 2, "A read crossing segments needs two open files");

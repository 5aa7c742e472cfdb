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

/**
 * Log cleaner (compaction): bytes one cleaner tick reads at most, over all logs. The
 * cleaner works in steps of this size between other work on the event loop, so one tick
 * never blocks appends and reads for long (a 1 GiB group is cleaned over many ticks).
 */
export const CLEANER_BYTES_PER_TICK = 32 * 1024 * 1024;
/** One read of the cleaner (grown to one whole batch when a batch is larger). */
export const CLEANER_READ_BYTES = 1024 * 1024;
/**
 * Memory of the cleaner's offset map (key → last offset), Kafka's
 * log.cleaner.dedupe.buffer.size. A map that fills up ends the pass's range early; the
 * rest is cleaned by the next pass.
 */
export const OFFSET_MAP_BYTES_MAX = 64 * 1024 * 1024;
/** What one offset map entry costs besides its key's bytes (a JS Map entry, a string). */
export const OFFSET_MAP_ENTRY_OVERHEAD_BYTES = 80;
/**
 * Least dirty bytes (sealed segments written since the last pass) before a log is
 * cleaned, capped at its segment.bytes: tiny logs are not rewritten for every segment.
 */
export const CLEANER_DIRTY_BYTES_MIN = 1024 * 1024;
/** Cleaning passes whose tombstone clock is remembered; older ones merge (later time wins). */
export const CLEANER_PASSES_REMEMBERED_MAX = 32;
/** After a failed pass, the log is not cleaned again for this long (Kafka's backoff). */
export const CLEANER_BACKOFF_MS = 30_000;

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
assert(CLEANER_READ_BYTES >= BATCH_HEADER_BYTES, "A cleaner read must hold a batch header");
assert(CLEANER_BYTES_PER_TICK >= CLEANER_READ_BYTES, "A cleaner tick must allow one read");
assert(OFFSET_MAP_BYTES_MAX > OFFSET_MAP_ENTRY_OVERHEAD_BYTES, "The offset map must hold a key");
assert(CLEANER_PASSES_REMEMBERED_MAX >= 2, "Merging passes needs two of them");

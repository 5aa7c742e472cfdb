/**
 * Reading the records inside an uncompressed RecordBatch v2, for the broker's own
 * internal logs (metadata, later consumer offsets). Client data is never decoded per
 * record: produce and fetch move whole batches.
 *
 * Record layout: length varint, attributes int8, timestampDelta varlong, offsetDelta
 * varint, key (varint length, -1 null), value (same), headers count varint, then per
 * header a key string and a value (varint lengths).
 */
import { Reader } from "./reader.ts";
import { ATTRIBUTES_AT, COMPRESSION_MASK, RECORD_COUNT_AT, RECORDS_AT } from "./record-batch.ts";

export interface RecordHeader {
  key: string;
  value: Uint8Array | null;
}

export interface DecodedRecord {
  offsetDelta: number;
  timestampDelta: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
}

function nullableView(reader: Reader): Uint8Array | null {
  const size = reader.varint();
  return size < 0 ? null : reader.view(size);
}

/** Records of one uncompressed batch, or null if it is compressed or malformed. */
export function decodeRecords(batch: Uint8Array): DecodedRecord[] | null {
  const head = new Reader(batch);
  head.offset = ATTRIBUTES_AT;
  if ((head.int16() & COMPRESSION_MASK) !== 0) return null;
  head.offset = RECORD_COUNT_AT;
  const count = head.int32();
  const reader = new Reader(batch, RECORDS_AT);
  const records: DecodedRecord[] = [];
  for (let i = 0; i < count; i++) {
    const length = reader.varint();
    const end = reader.offset + length;
    reader.int8(); // Record attributes: unused by Kafka so far.
    const timestampDelta = reader.varlong();
    const offsetDelta = reader.varint();
    const key = nullableView(reader);
    const value = nullableView(reader);
    const headerCount = reader.varint();
    const headers: RecordHeader[] = [];
    for (let h = 0; h < headerCount && !reader.failed; h++) {
      const keySize = reader.varint();
      headers.push({ key: reader.utf8(keySize), value: nullableView(reader) });
    }
    if (reader.failed || reader.offset !== end) return null;
    records.push({ offsetDelta, timestampDelta, key, value, headers });
  }
  return reader.complete() ? records : null;
}

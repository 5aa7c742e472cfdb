import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_SCHEMAS_DIR, GENERATED_DIR, generateAll } from "./generate.ts";

// Kafka's JSON message schemas are not part of this repository (src/protocol/README.md):
// where they are not beside the checkout, the freshness check reports itself skipped
// rather than passing without having looked.
const schemasPresent = existsSync(DEFAULT_SCHEMAS_DIR);

test.skipIf(!schemasPresent)(
  "protocol: generate: committed tables equal what the generator writes (needs Kafka's schemas beside the checkout)",
  () => {
    const files = generateAll(DEFAULT_SCHEMAS_DIR);
    const committed = readdirSync(GENERATED_DIR).sort();
    expect(committed).toEqual([...files.keys()].sort());
    for (const [name, text] of files) {
      expect({ name, text: readFileSync(join(GENERATED_DIR, name), "utf8") }).toEqual({
        name,
        text,
      });
    }
  },
);

test("protocol: generate: no descriptive text is copied from the schemas", () => {
  for (const name of readdirSync(GENERATED_DIR)) {
    const text = readFileSync(join(GENERATED_DIR, name), "utf8");
    expect(text.includes("about")).toBe(false);
  }
});

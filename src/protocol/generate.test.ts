import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_SCHEMAS_DIR, GENERATED_DIR, generateAll } from "./generate.ts";

// The schemas live outside the repository (../shared); CI has them beside the clone.
const schemasPresent = existsSync(DEFAULT_SCHEMAS_DIR);

test("protocol: generate: committed tables equal what the generator writes", () => {
  if (!schemasPresent) {
    console.warn(`protocol: generate: schemas not at ${DEFAULT_SCHEMAS_DIR}; freshness not checked`);
    return;
  }
  const files = generateAll(DEFAULT_SCHEMAS_DIR);
  const committed = readdirSync(GENERATED_DIR).sort();
  expect(committed).toEqual([...files.keys()].sort());
  for (const [name, text] of files) {
    expect({ name, text: readFileSync(join(GENERATED_DIR, name), "utf8") }).toEqual({ name, text });
  }
});

test("protocol: generate: no descriptive text is copied from the schemas", () => {
  for (const name of readdirSync(GENERATED_DIR)) {
    const text = readFileSync(join(GENERATED_DIR, name), "utf8");
    expect(text.includes("about")).toBe(false);
  }
});

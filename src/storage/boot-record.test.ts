import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOOT_RECORD_FILE, BootRecorder, currentBootId } from "./boot-record.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "brook-boot-"));
  dirs.push(dir);
  return dir;
}

/** A start under `bootId`, after a clean stop or not. */
function start(dir: string, bootId: string | null, clean: boolean): BootRecorder {
  return new BootRecorder(dir, clean, bootId);
}

describe("storage: boot record (was the last stop a machine crash?)", () => {
  test("a new data dir is not lossy, and records the boot", () => {
    const dir = newDir();
    expect(start(dir, "boot-a", false).lossy).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, BOOT_RECORD_FILE), "utf8"))).toEqual({
      bootId: "boot-a",
      lossyPending: false,
    });
  });

  test("an unclean stop under the same boot (a process crash) is not lossy", () => {
    const dir = newDir();
    start(dir, "boot-a", false);
    expect(start(dir, "boot-a", false).lossy).toBe(false);
  });

  test("a clean stop is never lossy, even after a reboot", () => {
    const dir = newDir();
    start(dir, "boot-a", false);
    expect(start(dir, "boot-b", true).lossy).toBe(false);
  });

  test("an unclean stop under another boot (a machine crash) is lossy until it is reported", () => {
    const dir = newDir();
    start(dir, "boot-a", false);
    const lossy = start(dir, "boot-b", false);
    expect(lossy.lossy).toBe(true);
    // That process died before the controller had its registration: still lossy, even
    // after a clean stop, since the controller never learned.
    const again = start(dir, "boot-b", true);
    expect(again.lossy).toBe(true);
    again.reported();
    expect(start(dir, "boot-b", false).lossy).toBe(false);
  });

  test("without a boot id every unclean stop counts as lossy", () => {
    const dir = newDir();
    start(dir, null, false);
    expect(start(dir, null, true).lossy).toBe(false);
    expect(start(dir, null, false).lossy).toBe(true);
  });

  test("a damaged record is read as lossy", () => {
    const dir = newDir();
    writeFileSync(join(dir, BOOT_RECORD_FILE), "{not json");
    expect(start(dir, "boot-a", true).lossy).toBe(true);
  });

  test("this machine has a boot id (Linux)", () => {
    expect(currentBootId()).toMatch(/^[0-9a-f-]{36}$/);
  });
});

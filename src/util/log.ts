/**
 * One line per event on stderr: `<iso time> <LEVEL> <area>: <message> key=value ...`.
 * Level threshold comes from BROOK_LOG_LEVEL (debug, info, warn, error; default info).
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function thresholdFromEnv(): number {
  const name = (process.env.BROOK_LOG_LEVEL ?? "info").toLowerCase();
  return LEVEL_RANK[name as LogLevel] ?? LEVEL_RANK.info;
}

let threshold = thresholdFromEnv();

export function setLogLevel(level: LogLevel): void {
  threshold = LEVEL_RANK[level];
}

export type LogFields = Record<string, string | number | boolean | bigint | null | undefined>;

function formatFields(fields: LogFields | undefined): string {
  if (fields === undefined) return "";
  let text = "";
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const shown =
      typeof value === "string" && /[\s"=]/.test(value) ? JSON.stringify(value) : String(value);
    text += ` ${key}=${shown}`;
  }
  return text;
}

export class Logger {
  constructor(readonly area: string) {}

  debug(message: string, fields?: LogFields): void {
    this.#write("debug", message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.#write("info", message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.#write("warn", message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.#write("error", message, fields);
  }

  #write(level: LogLevel, message: string, fields: LogFields | undefined): void {
    if (LEVEL_RANK[level] < threshold) return;
    const line = `${new Date().toISOString()} ${level.toUpperCase()} ${this.area}: ${message}${formatFields(fields)}\n`;
    process.stderr.write(line);
  }
}

export function logger(area: string): Logger {
  return new Logger(area);
}

// Leveled, structured logging on pino: one JSON line per event on stderr, a child logger per
// component, secrets redacted wherever they appear in a line's fields. The level is set once by
// whoever read the configuration (server/config.ts: LOG_LEVEL); nothing here reads the environment.
import { pino } from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error";

const root = pino(
  {
    level: "info",
    base: undefined,
    messageKey: "msg",
    timestamp: () => `,"t":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    // Tokens and credentials never reach a log, however a caller names the field.
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization", "headers.authorization", "credential", "*.credential", "secret", "*.secret", "apiToken", "authSecret", "turnSecret"],
      censor: "[redacted]",
    },
  },
  pino.destination({ dest: 2, sync: true }),
);

export function setLogLevel(level: LogLevel): void {
  root.level = level;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

function wrap(component: string): Logger {
  const p = root.child({ component });
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (sub) => wrap(`${component}/${sub}`),
  };
}

/** The logger of one component (`"mixer"`, `"recordings"`…); its lines carry `component`. */
export function logger(component: string): Logger {
  return wrap(component);
}

// The command-line plumbing every `vfio-twin` command shares: a command is data (its name,
// summary, positionals and options, each with its help line) plus a run function; parsing,
// help, usage errors and --json are done here once, so every command follows the same
// conventions (see main.ts for the table and the conventions themselves).
//
// The parser is node's own util.parseArgs (strict: an unknown option or a missing value is an
// error, never ignored). It is the platform's parser, maintained with node itself, so the
// package needs no dependency for it; what it does not do (subcommands, help text, exit
// codes) is the few functions below, driven by the same option table.

import { readFileSync, type Stats, statSync } from "node:fs";
import { parseArgs } from "node:util";

export interface OptionSpec {
  readonly type: "boolean" | "string";
  readonly short?: string;
  readonly multiple?: boolean;
  /** the value's placeholder in help, e.g. "FILE" */
  readonly value?: string;
  readonly help: string;
  /** for string options: the values accepted (anything else is a usage error) */
  readonly choices?: readonly string[];
  /** for string options: the value must be a non-negative integer */
  readonly integer?: boolean;
}

export type Options = Readonly<Record<string, OptionSpec>>;

/** What a command's run() gets. */
export interface Invocation {
  /** option values by long name (a boolean option is true or absent) */
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  /** what follows `--` (only for commands with `rest`) */
  readonly rest: readonly string[];
  /** --json: one JSON document or JSONL events on stdout, nothing else there */
  readonly json: boolean;
}

export interface Command {
  readonly name: string;
  /** one line, shown in `vfio-twin --help` */
  readonly summary: string;
  /** positionals as shown in usage, e.g. "FILE"; each `[X]` optional. Omitted: none accepted */
  readonly args?: string;
  /** min and max positionals (default: from `args`, required names counted) */
  readonly positionals?: readonly [number, number];
  /** accepts `-- CMD ARGS...` */
  readonly rest?: string;
  readonly options?: Options;
  /** more help text, after the options */
  readonly details?: string;
  /** the exit code: 0 ok, 1 failure or user error */
  run(inv: Invocation): number | Promise<number>;
}

/** A mistake on the command line: one line on stderr, exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A user's mistake found while running (a missing file, a malformed scenario): one line, exit 1. */
export class UserError extends Error {
  override name = "UserError";
}

export const COMMON_OPTIONS: Options = {
  json: { type: "boolean", help: "machine-readable output: one JSON document or JSON lines (JSONL) of events" },
  help: { type: "boolean", short: "h", help: "this help" },
};

function allOptions(c: Command): Options {
  return { ...c.options, ...COMMON_OPTIONS };
}

function positionalRange(c: Command): [number, number] {
  if (c.positionals) return [c.positionals[0], c.positionals[1]];
  const names = (c.args ?? "").split(/\s+/).filter(Boolean);
  return [names.filter((n) => !n.startsWith("[")).length, names.length];
}

/** What the parser's error says, in one short line. */
function parseError(e: unknown): string {
  const m = (e as Error).message;
  const code = (e as { code?: string }).code;
  const opt = /'(-[^' ]+)/.exec(m)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${opt ?? m}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (/argument missing/.test(m)) return `option ${opt} needs a value`;
    // a value that starts with a dash ("--seed -1") is read as the next option
    if (/ambiguous/.test(m)) return `option ${opt} needs a value (one starting with "-" goes as ${opt}=VALUE)`;
    return `option ${opt} takes no value`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument ${/'([^']*)'/.exec(m)?.[1] ?? m}`;
  return m.split("\n")[0]!;
}

/** Parse one command's argv (after its name). Throws UsageError; `help` is returned, not run. */
export function parseInvocation(c: Command, argv: readonly string[]): Invocation & { help: boolean } {
  let args = [...argv];
  let rest: string[] = [];
  const dd = args.indexOf("--");
  if (dd >= 0 && c.rest) {
    rest = args.slice(dd + 1);
    args = args.slice(0, dd);
  }
  const opts = allOptions(c);
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: Object.fromEntries(
        Object.entries(opts).map(([k, o]) => [
          k,
          { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
        ]),
      ),
    });
  } catch (e) {
    throw new UsageError(parseError(e));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const help = values.help === true;
  if (!help) {
    for (const [k, o] of Object.entries(opts)) {
      const v = values[k];
      if (typeof v !== "string") continue;
      if (o.choices && !o.choices.includes(v))
        throw new UsageError(`--${k} must be one of ${o.choices.join(", ")}, not ${v}`);
      if (o.integer && !/^\d+$/.test(v)) throw new UsageError(`--${k} needs a non-negative integer, not ${v}`);
    }
    const [min, max] = positionalRange(c);
    const pos = parsed.positionals;
    if (pos.length > max) throw new UsageError(`unexpected argument ${pos[max]}`);
    if (pos.length < min) throw new UsageError(`missing ${(c.args ?? "").split(/\s+/)[pos.length]}`);
    if (c.rest && rest.length === 0) throw new UsageError(`missing -- ${c.rest}`);
  }
  return { values, positionals: parsed.positionals, rest, json: values.json === true, help };
}

function optionLines(opts: Options): string[] {
  const rows = Object.entries(opts).map(([k, o]) => {
    const names = `${o.short ? `-${o.short}, ` : "    "}--${k}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    const choices = o.choices ? ` (${o.choices.join(", ")})` : "";
    return [names, o.help + choices] as const;
  });
  const w = Math.max(...rows.map(([n]) => n.length)) + 2;
  return rows.map(([n, h]) => `  ${n.padEnd(w)}${h}`);
}

export function usageLine(c: Command): string {
  return ["usage: vfio-twin", c.name, "[options]", c.args, c.rest ? `-- ${c.rest}` : undefined]
    .filter(Boolean)
    .join(" ");
}

export function commandHelp(c: Command): string {
  return [
    usageLine(c),
    "",
    c.summary,
    "",
    "options:",
    ...optionLines(allOptions(c)),
    ...(c.details ? ["", c.details] : []),
  ].join("\n");
}

/** JSON with bigints as decimal strings (u64 stays exact) and Maps as objects. */
export function toJson(v: unknown, indent?: number): string {
  return JSON.stringify(
    v,
    (_k, x: unknown) =>
      typeof x === "bigint" ? x.toString() : x instanceof Map ? Object.fromEntries(x as Map<string, unknown>) : x,
    indent,
  );
}

/** One JSONL event on stdout. */
export function emit(event: { type: string } & Record<string, unknown>): void {
  console.log(toJson(event));
}

function statUser(path: string, what: string): Stats {
  try {
    return statSync(path);
  } catch {
    throw new UserError(`${path}: no such ${what}`);
  }
}

/** A file the user named, as text; a missing file, a directory or an unreadable one is a
 * UserError naming it. */
export function readUserFile(path: string, what = "file"): string {
  if (statUser(path, what).isDirectory()) throw new UserError(`${path}: is a directory, not a ${what}`);
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
}

/** A directory the user named; a missing one or a file is a UserError. */
export function userDir(path: string, what = "directory"): string {
  if (!statUser(path, what).isDirectory()) throw new UserError(`${path}: not a directory`);
  return path;
}

/**
 * Run `c` on `argv` with its output going to `out`, as the tool would run it (help on `out`,
 * exit 0; a usage error, one line on stderr, exit 2; a UserError, one line, exit 1): for
 * callers that keep a command's output, such as tests. `body` is the command's run with `out`.
 */
export function runArgv(
  c: Command,
  argv: readonly string[],
  out: (s: string) => void,
  body: (inv: Invocation, out: (s: string) => void) => number,
): number {
  const who = `vfio-twin ${c.name}`;
  try {
    const inv = parseInvocation(c, argv);
    if (inv.help) {
      out(commandHelp(c));
      return 0;
    }
    return body(inv, out);
  } catch (e) {
    if (e instanceof UsageError) console.error(`${who}: ${e.message} (see ${who} --help)`);
    else if (e instanceof UserError) console.error(`${who}: ${e.message}`);
    else throw e;
    return e instanceof UsageError ? 2 : 1;
  }
}

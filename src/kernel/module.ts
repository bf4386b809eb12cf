// Loadable modules (kernel/module/main.c): load, unload, exported symbols, symbol_get /
// symbol_put (which pin the exporting module), try_module_get / module_put. Unload is
// refused with EWOULDBLOCK while the module is pinned (its refcount, which open files of its
// fops also hold) or while a loaded module uses its symbols (source_list), and with ENOENT
// for an unknown name, EBUSY when it is already going (delete_module()).

import { EBUSY, EEXIST, ENOENT, EWOULDBLOCK } from "../uapi/errno.js";
import type { Kernel } from "./kernel.js";
import { type RefOrigin, refOrigin } from "./kref.js";
import type { KGen } from "./sched.js";

export type ModuleState = "coming" | "live" | "going" | "unloaded";

export interface ModuleDef {
  readonly name: string;
  /** modules whose symbols this one links against: a hard dependency (depmod's depends) */
  readonly requires?: readonly string[];
  /** returns 0 or -errno; exports symbols and registers devices through `m` and `k` */
  init(k: Kernel, m: Module): number;
  exit?(k: Kernel, m: Module): void;
  /** the same exit as a path that may sleep (the explorer's delete_module racing other
   * calls); a module without one runs `exit` */
  exitPath?(k: Kernel, m: Module): KGen<void>;
}

export class Module {
  state: ModuleState = "coming";
  /** references beyond the base one: try_module_get, symbol_get, open files */
  refcnt = 0;
  readonly exports = new Map<string, unknown>();
  /** modules that link against this one (their `requires`) */
  readonly usedBy = new Set<Module>();
  readonly uses = new Set<Module>();
  /** per-holder pin counts, for reports: "symbol_get(vfio_file_set_kvm)", "file /dev/vfio/1" */
  readonly pins = new Map<string, number>();
  /** pin -> the syscall that took it first */
  readonly pinOrigins = new Map<string, RefOrigin>();

  constructor(
    readonly def: ModuleDef,
    readonly k: Kernel,
  ) {}

  get name(): string {
    return this.def.name;
  }

  /** EXPORT_SYMBOL_GPL */
  export(name: string, value: unknown): void {
    this.exports.set(name, value);
    this.k.modules.symbols.set(name, this);
  }
}

export interface SymbolStats {
  /** symbol_get calls that found the symbol, by name */
  readonly gets: Map<string, number>;
  /** symbol_get calls that did not (module absent or going) */
  readonly misses: Map<string, number>;
  readonly puts: Map<string, number>;
}

export class ModuleRegistry {
  readonly loaded = new Map<string, Module>();
  readonly symbols = new Map<string, Module>();
  readonly stats: SymbolStats = { gets: new Map(), misses: new Map(), puts: new Map() };
  /** definitions known to the twin (modprobe can find them), by name */
  readonly available = new Map<string, ModuleDef>();

  constructor(private readonly k: Kernel) {}

  /** Make a module loadable by name (like installing it under /lib/modules). */
  provide(def: ModuleDef): void {
    this.available.set(def.name, def);
  }

  /** modprobe: load `name` after what it requires. Returns 0 or -errno. */
  load(name: string): number {
    if (this.loaded.has(name)) return -EEXIST;
    const def = this.available.get(name);
    if (!def) return -ENOENT;
    const deps: Module[] = [];
    for (const r of def.requires ?? []) {
      let dep = this.loaded.get(r);
      if (!dep) {
        const rc = this.load(r);
        if (rc < 0) return rc;
        dep = this.loaded.get(r)!;
      }
      deps.push(dep);
    }
    const m = new Module(def, this.k);
    this.loaded.set(name, m);
    const rc = def.init(this.k, m);
    if (rc < 0) {
      this.dropSymbols(m);
      this.loaded.delete(name);
      m.state = "unloaded";
      return rc;
    }
    for (const d of deps) {
      d.usedBy.add(m);
      m.uses.add(d);
    }
    m.state = "live";
    return 0;
  }

  /** delete_module(2) without O_TRUNC. */
  unload(name: string): number {
    const m = this.loaded.get(name);
    if (!m) return -ENOENT;
    if (m.state !== "live") return -EBUSY;
    if (m.usedBy.size > 0) return -EWOULDBLOCK;
    if (m.refcnt > 0) return -EWOULDBLOCK;
    m.state = "going";
    m.def.exit?.(this.k, m);
    this.dropSymbols(m);
    for (const d of m.uses) d.usedBy.delete(m);
    this.loaded.delete(name);
    m.state = "unloaded";
    return 0;
  }

  /**
   * delete_module(2) as a path: the same checks, then the module is going (try_module_get
   * fails from here on: opens of its files are ENODEV/ENOENT) while its exit runs, which may
   * sleep on the locks of what it unregisters.
   */
  *unloadPath(name: string): KGen<number> {
    const m = this.loaded.get(name);
    if (!m) return -ENOENT;
    if (m.state !== "live") return -EBUSY;
    if (m.usedBy.size > 0 || m.refcnt > 0) return -EWOULDBLOCK;
    m.state = "going";
    yield { kind: "preempt", where: `delete_module(${name}): going` };
    if (m.def.exitPath) yield* m.def.exitPath(this.k, m);
    else m.def.exit?.(this.k, m);
    this.dropSymbols(m);
    for (const d of m.uses) d.usedBy.delete(m);
    this.loaded.delete(name);
    m.state = "unloaded";
    return 0;
  }

  private dropSymbols(m: Module): void {
    for (const s of m.exports.keys()) if (this.symbols.get(s) === m) this.symbols.delete(s);
  }

  /** try_module_get: fails on a module that is going away. `why` names the pin for reports. */
  tryGet(m: Module | null, why: string): boolean {
    if (m === null) return true;
    if (m.state !== "live" && m.state !== "coming") return false;
    m.refcnt++;
    const n = m.pins.get(why) ?? 0;
    m.pins.set(why, n + 1);
    if (n === 0) {
      const o = refOrigin(this.k);
      if (o) m.pinOrigins.set(why, o);
    }
    return true;
  }

  put(m: Module | null, why: string): void {
    if (m === null) return;
    const n = m.pins.get(why);
    if (!n || m.refcnt <= 0) throw this.k.bug("module", `module_put(${m.name}) for ${why} without a matching get`);
    if (n === 1) {
      m.pins.delete(why);
      m.pinOrigins.delete(why);
    } else m.pins.set(why, n - 1);
    m.refcnt--;
  }

  /** symbol_get(): the symbol's value with its module pinned, or null. */
  symbolGet<T>(name: string): T | null {
    const m = this.symbols.get(name);
    if (!m || !this.tryGet(m, `symbol_get(${name})`)) {
      bump(this.stats.misses, name);
      return null;
    }
    bump(this.stats.gets, name);
    return m.exports.get(name) as T;
  }

  /** symbol_put(): drops the pin symbol_get took. */
  symbolPut(name: string): void {
    const m = this.symbols.get(name);
    if (!m) throw this.k.bug("module", `symbol_put(${name}) of an unknown symbol`);
    bump(this.stats.puts, name);
    this.put(m, `symbol_get(${name})`);
  }

  moduleOf(symbol: string): Module | null {
    return this.symbols.get(symbol) ?? null;
  }
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

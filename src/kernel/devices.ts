// Device nodes and a minimal sysfs.
//
// Char devices are registered by path (what devtmpfs shows under /dev once a driver calls
// cdev_device_add / misc_register); open(2) of an unknown path is ENOENT. The sysfs here
// holds just the entries a VMM reads: /sys/bus/pci/devices/<bdf>/iommu_group (a link to
// /sys/kernel/iommu_groups/<n>), .../vfio-dev/vfioX, .../driver, vendor/device ids.

import { EINVAL, ENOENT, ENOTDIR } from "../uapi/errno.js";
import type { CharDev, FileOperations } from "./fs.js";

export class DeviceNodes {
  private readonly nodes = new Map<string, CharDev>();

  register(path: string, fops: FileOperations, data: unknown): CharDev {
    const d: CharDev = { path, fops, data };
    this.nodes.set(path, d);
    return d;
  }

  unregister(path: string): void {
    this.nodes.delete(path);
  }

  lookup(path: string): CharDev | null {
    return this.nodes.get(path) ?? null;
  }

  /** a directory of nodes (/dev, /dev/vfio): open(2) of it without O_DIRECTORY is EISDIR */
  isDir(path: string): boolean {
    if (path === "") return false; // open("") is ENOENT (fs/namei.c getname: empty path)
    const pre = path.endsWith("/") ? path : path + "/";
    for (const p of this.nodes.keys()) if (p.startsWith(pre)) return true;
    return false;
  }

  paths(): string[] {
    return [...this.nodes.keys()].sort();
  }
}

type SysfsEntry =
  { kind: "link"; target: string } | { kind: "file"; read: () => string; write?: (text: string) => number };

export class Sysfs {
  private readonly entries = new Map<string, SysfsEntry>();

  link(path: string, target: string): void {
    this.entries.set(path, { kind: "link", target });
  }

  /** An attribute; with `write` it is writable (0644), the handler answering 0 or -errno. */
  file(path: string, read: string | (() => string), write?: (text: string) => number): void {
    this.entries.set(path, {
      kind: "file",
      read: typeof read === "string" ? () => read : read,
      ...(write ? { write } : {}),
    });
  }

  /** The write handler of a writable attribute, or null. */
  writer(path: string): ((text: string) => number) | null {
    const e = this.entries.get(path);
    return e?.kind === "file" && e.write ? e.write : null;
  }

  remove(prefix: string): void {
    for (const p of [...this.entries.keys()]) if (p === prefix || p.startsWith(prefix + "/")) this.entries.delete(p);
  }

  /** readlink(2): the link text, or -errno. */
  readlink(path: string): string | number {
    const e = this.entries.get(path);
    if (!e) return this.isDir(path) ? -EINVAL : -ENOENT;
    return e.kind === "link" ? e.target : -EINVAL;
  }

  read(path: string): string | number {
    const e = this.entries.get(path);
    if (!e) return -ENOENT;
    return e.kind === "file" ? e.read() : -EINVAL;
  }

  isDir(path: string): boolean {
    if (!path.startsWith("/sys")) return false;
    const pre = path.endsWith("/") ? path : path + "/";
    for (const p of this.entries.keys()) if (p.startsWith(pre)) return true;
    return false;
  }

  /** The names directly under a directory, sorted; -ENOENT / -ENOTDIR as readdir would. */
  readdir(path: string): string[] | number {
    if (this.entries.has(path)) return -ENOTDIR;
    const pre = path.endsWith("/") ? path : path + "/";
    const names = new Set<string>();
    for (const p of this.entries.keys()) if (p.startsWith(pre)) names.add(p.slice(pre.length).split("/")[0]!);
    if (names.size === 0) return -ENOENT;
    return [...names].sort();
  }
}

// CONFIG_FAULT_INJECTION_DEBUG_FS (lib/fault-inject.c fault_create_debugfs_attr(),
// mm/failslab.c, mm/fail_page_alloc.c): the debugfs directories of the fault attributes, whose
// presence is how tools/testing/selftests/iommu/iommufd_fail_nth.c decides fault injection is
// there. The attributes keep what is written (bools as kstrtobool reads them, numbers as
// kstrtoul); the twin's own injection is per call, by fail-nth (src/iommufd/fail_nth.ts), so
// the probability-based attributes change nothing. The oracle's kernel lacks debugfs, so the
// default machine has none of this (TwinConfig.faultInjectionDebugfs).

import { EINVAL } from "../uapi/errno.js";
import type { Kernel } from "./kernel.js";

const COMMON: [string, string][] = [
  ["probability", "0"],
  ["interval", "1"],
  ["times", "1"],
  ["space", "0"],
  ["verbose", "2"],
  ["task-filter", "N"],
];
const EXTRA: Record<string, [string, string][]> = {
  failslab: [["ignore-gfp-wait", "Y"]],
  fail_page_alloc: [
    ["ignore-gfp-wait", "Y"],
    ["ignore-gfp-highmem", "Y"],
    ["min-order", "1"],
  ],
};

function parse(old: string, text: string): string | null {
  const t = text.trim();
  if (old === "Y" || old === "N") {
    if (/^[yY1]/.test(t) || t === "on") return "Y";
    if (/^[nN0]/.test(t) || t === "off") return "N";
    return null;
  }
  return /^\d+$/.test(t) ? String(Number(t)) : null;
}

export function registerFaultInjectionDebugfs(k: Kernel): void {
  for (const dir of ["failslab", "fail_page_alloc"]) {
    for (const [attr, init] of [...COMMON, ...EXTRA[dir]!]) {
      let v = init;
      k.sysfs.file(
        `/sys/kernel/debug/${dir}/${attr}`,
        () => `${v}\n`,
        (text) => {
          const n = parse(v, text);
          if (n === null) return -EINVAL;
          v = n;
          return 0;
        },
      );
    }
  }
}

// KVM's system-level interface (virt/kvm/kvm_main.c): /dev/kvm with KVM_GET_API_VERSION,
// KVM_CHECK_EXTENSION and KVM_CREATE_VM, and the VM file it creates. The VM's device
// framework and its VFIO pseudo-device build on the Kvm object defined in ./kvm.ts.

import { EFAULT, EINVAL, ENOTTY, ENXIO } from "../uapi/errno.js";
import * as K from "../uapi/kvm.js";
import type { FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { HolderOwnership, RefCounted } from "../kernel/kref.js";
import type { Module, ModuleDef } from "../kernel/module.js";
import { installFile } from "../kernel/syscalls.js";
import { Mutex } from "../kernel/locks.js";
import type { KvmRefExports } from "../kernel/vfio_kvm.js";
import { Kvm, type KvmModuleLinks } from "./kvm.js";
import { kvmDeviceFops, newDeviceOpsTable } from "./kvm_device.js";
import { destroyInsteadOfRelease, KvmVfio, kvmVfioOps } from "./vfio.js";
import { kvmPasidInit } from "./enqcmd.js";
import { type CouplingDesign, createVfioCoupling, type VfioCoupling } from "./vfio_coupling.js";

/** KVM_USER_MEM_SLOTS on x86 (arch/x86/include/asm/kvm_host.h). */
export const KVM_USER_MEM_SLOTS = 32764;
/** KVM_MAX_VCPUS = CONFIG_KVM_MAX_NR_VCPUS: 1024 by default, 4096 only with CONFIG_MAXSMP
 * (arch/x86/kvm/Kconfig); 1024 on the oracle's 6.12 and on this machine's host kernel. */
export const KVM_MAX_VCPUS = 1024;
const PAGE_SIZE = 4096;
const KVM_CAP_IRQCHIP = 0;
/** KVM_X86_XCOMP_GUEST_SUPP's value (kvm_caps.supported_xcr0): x87|SSE|AVX. The real value
 * follows the host CPU; only whether the call succeeds is compared with the kernel. */
const KVM_SUPPORTED_XCR0 = 0x7n;

/** kvm_vm_ioctl_check_extension_generic() + the x86 answers for what the twin models. */
export function checkExtension(kvm: Kvm | null, cap: number): number {
  switch (cap) {
    case KVM_CAP_IRQCHIP: // arch/x86/kvm/x86.c kvm_vm_ioctl_check_extension()
    case K.KVM_CAP_USER_MEMORY:
    case K.KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
    case K.KVM_CAP_JOIN_MEMORY_REGIONS_WORKS:
    case K.KVM_CAP_INTERNAL_ERROR_DATA:
    case K.KVM_CAP_CHECK_EXTENSION_VM:
    case K.KVM_CAP_ENABLE_CAP_VM:
    case K.KVM_CAP_DEVICE_CTRL:
      return 1;
    case K.KVM_CAP_NR_MEMSLOTS:
      return KVM_USER_MEM_SLOTS;
    case K.KVM_CAP_MAX_VCPUS:
      return KVM_MAX_VCPUS;
    default:
      // includes KVM_CAP_IOMMU: gone with KVM device assignment (4.12), 0 on every 6.x kernel
      void kvm;
      return 0;
  }
}

export interface KvmModuleState extends KvmModuleLinks {
  readonly kvmFops: FileOperations;
  readonly vms: Set<Kvm>;
  /** the KVM-VFIO coupling, null when KVM is built without CONFIG_KVM_VFIO */
  readonly coupling: VfioCoupling | null;
}

/** How a kvm module is built: the KVM<->VFIO coupling design and CONFIG_KVM_VFIO. */
export interface KvmBuildOptions {
  /** default "upstream" */
  coupling?: CouplingDesign;
  /** CONFIG_KVM_VFIO (default true): without it KVM_DEV_TYPE_VFIO is not registered */
  vfio?: boolean;
}

function makeState(k: Kernel, m: Module, opts: KvmBuildOptions): KvmModuleState {
  const vms = new Set<Kvm>();
  const deviceOps = newDeviceOpsTable();
  const coupling = opts.vfio === false ? null : createVfioCoupling(k, opts.coupling ?? "upstream");
  // kvm_vfio_ops_init() -> kvm_register_device_ops()
  if (coupling)
    deviceOps[K.KVM_DEV_TYPE_VFIO] = k.broken.has("kvm-vfio-destroy-op")
      ? destroyInsteadOfRelease(kvmVfioOps(coupling), coupling)
      : kvmVfioOps(coupling);
  const links: KvmModuleLinks = {
    module: m,
    deviceOps,
    deviceFops: kvmDeviceFops(m),
    nextVmId: 1,
    kvmLock: new Mutex(k, "kvm_lock", "kvm_lock"),
  };
  const kvmFops: FileOperations = {
    owner: m,
    name: "kvm",
    unlocked_ioctl(_file, cmd, arg) {
      switch (cmd) {
        case K.KVM_GET_API_VERSION:
          return arg !== 0 ? -EINVAL : K.KVM_API_VERSION;
        case K.KVM_CREATE_VM: {
          // kvm_dev_ioctl_create_vm(): only the default VM type on this x86 model
          if (arg !== 0) return -EINVAL;
          const kvm = new Kvm(k, links);
          const f = k.allocFile(kvm.vmFops, "anon_inode:kvm-vm", 2);
          if (typeof f === "number") {
            kvm.put("init");
            return f;
          }
          f.fmodePread = false; // anon_inode_getfd(): no FMODE_PREAD, pread is ESPIPE
          f.privateData = kvm;
          kvm.handOver("init", "vm file");
          vms.add(kvm);
          kvm.onDestroy = () => vms.delete(kvm);
          return installFile(k.current!.process!, f);
        }
        case K.KVM_CHECK_EXTENSION:
          return checkExtension(null, arg);
        case K.KVM_GET_VCPU_MMAP_SIZE:
          // kvm_run page + pio data page + coalesced mmio ring page on x86
          return arg !== 0 ? -EINVAL : 3 * PAGE_SIZE;
        case K.KVM_GET_DEVICE_ATTR:
        case K.KVM_HAS_DEVICE_ATTR:
          return systemAttr(k, cmd === K.KVM_GET_DEVICE_ATTR, arg);
        default:
          // kvm_arch_dev_ioctl(): unknown system ioctls are EINVAL on x86, not ENOTTY
          return -EINVAL;
      }
    },
  };
  void ENOTTY;
  return Object.assign(links, { kvmFops, vms, coupling });
}

/**
 * arch/x86/kvm/x86.c kvm_arch_dev_ioctl() KVM_{GET,HAS}_DEVICE_ATTR on /dev/kvm: group 0 has
 * only KVM_X86_XCOMP_GUEST_SUPP (attr 0); other groups need kvm_x86_ops.dev_get_attr (SEV),
 * absent on the oracle's build: ENXIO. GET writes the u64 value at attr.addr.
 */
function systemAttr(k: Kernel, get: boolean, arg: number): number {
  const mm = k.current!.process!.mm;
  const attr = mm.readStruct(K.kvm_device_attr, arg);
  if (attr === null) return -EFAULT;
  if (attr.group !== 0 || attr.attr !== 0n) return -ENXIO;
  if (!get) return 0;
  const v = new Uint8Array(8);
  new DataView(v.buffer).setBigUint64(0, KVM_SUPPORTED_XCR0, true);
  return attr.addr >= 2n ** 53n || mm.copyToUser(Number(attr.addr), v) < 0 ? -EFAULT : 0;
}

/** What VFIO takes VM references with (symbol_get from vfio_device_get_kvm_safe()). */
function kvmRefExports(): KvmRefExports {
  const HOLDER = "kvm_get_kvm_safe";
  return {
    // kvm_get_kvm_safe(): refcount_inc_not_zero
    kvm_get_kvm_safe(kvm) {
      if (!(kvm instanceof Kvm) || kvm.dead || kvm.destroying) return false;
      kvm.get(HOLDER);
      return true;
    },
    kvm_put_kvm(kvm) {
      (kvm as Kvm).put(HOLDER);
    },
  };
}

/** The kvm module (kvm.ko + kvm-intel/amd as one), built with `opts`. */
export function makeKvmModule(opts: KvmBuildOptions = {}): ModuleDef {
  let pasidUnsub: (() => void) | null = null;
  return {
    name: "kvm",
    init(k, m) {
      const st = makeState(k, m, opts);
      pasidUnsub = kvmPasidInit(k, () => st.vms); // ENQCMD translations (./enqcmd.ts)
      m.export("__kvm_state", st);
      for (const [name, fn] of Object.entries(kvmRefExports())) m.export(name, fn);
      k.devices.register("/dev/kvm", st.kvmFops, st);
      k.checks.set("kvm", () => checkVms(st));
      k.holderOwners.set("kvm", (h, o) => kvmVfioHolder(st, h, o));
      return 0;
    },
    exit(k) {
      pasidUnsub?.();
      pasidUnsub = null;
      k.devices.unregister("/dev/kvm");
      k.checks.delete("kvm");
      k.holderOwners.delete("kvm");
    },
  };
}

export const kvmModule: ModuleDef = makeKvmModule();

/** Invariants of every live VM: the arch counters agree with what the KVM-VFIO device holds. */
function checkVms(st: KvmModuleState): string[] {
  const out: string[] = [];
  for (const kvm of st.vms) {
    let files = 0;
    let noncoherent = 0;
    for (const dev of kvm.devices) {
      if (!(dev.private_ instanceof KvmVfio)) continue;
      files += dev.private_.files.length;
      if (dev.private_.noncoherent) noncoherent++;
      for (const r of dev.private_.files) {
        if (r.file.dead) out.push(`vm ${kvm.id}: kvm-vfio holds released ${r.file.describe()}`);
        for (const m of st.coupling?.violations?.(r) ?? []) out.push(`vm ${kvm.id}: ${m}`);
      }
    }
    if (kvm.arch.assignedDevices !== files)
      out.push(`vm ${kvm.id}: assigned_device_count=${kvm.arch.assignedDevices} but kvm-vfio holds ${files} files`);
    if (kvm.arch.noncoherentDmaCount !== noncoherent)
      out.push(
        `vm ${kvm.id}: noncoherent_dma_count=${kvm.arch.noncoherentDmaCount}, ${noncoherent} device(s) registered`,
      );
  }
  return out;
}

/** The owner of "kvm-vfio of vm N" holds on VFIO files: that VM's KVM-VFIO device's file list. */
function kvmVfioHolder(st: KvmModuleState, holder: string, obj: RefCounted): HolderOwnership | undefined {
  if (!holder.startsWith("kvm-vfio of vm ")) return undefined;
  const m = /^kvm-vfio of vm (\d+)$/.exec(holder);
  if (!m) return undefined;
  const id = Number(m[1]);
  const kvm = [...st.vms].find((v) => v.id === id);
  const owner = `the KVM-VFIO device of vm ${id}`;
  if (!kvm) return { owner, released: true, holds: 0 };
  let holds = 0;
  for (const dev of kvm.devices)
    if (dev.private_ instanceof KvmVfio) for (const r of dev.private_.files) if (r.file === obj) holds++;
  return { owner, released: false, holds };
}

/** The state of the loaded kvm module (tests and reports), or null. */
export function kvmState(k: Kernel): KvmModuleState | null {
  return (k.modules.loaded.get("kvm")?.exports.get("__kvm_state") as KvmModuleState | undefined) ?? null;
}

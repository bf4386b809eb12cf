// The _IOC request encoding of include/uapi/asm-generic/ioctl.h (x86-64 uses the generic one):
// bits 0-7 nr, 8-15 type, 16-29 size, 30-31 direction.

export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

/** A request number is an unsigned 32-bit value; JS numbers hold it exactly. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit _IOC_SIZEBITS`);
  return ((dir << DIRSHIFT) | (type << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}

export const _IO = (type: number, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

export const _IOC_DIR = (req: number): number => (req >>> DIRSHIFT) & 3;
export const _IOC_TYPE = (req: number): number => (req >>> TYPESHIFT) & 0xff;
export const _IOC_NR = (req: number): number => (req >>> NRSHIFT) & 0xff;
export const _IOC_SIZE = (req: number): number => (req >>> SIZESHIFT) & ((1 << SIZEBITS) - 1);

/** The ioctl "type" characters of the three subsystems the twin implements. */
export const VFIO_TYPE = ";".charCodeAt(0);
export const VFIO_BASE = 100;
export const IOMMUFD_TYPE = VFIO_TYPE;
export const KVMIO = 0xae;

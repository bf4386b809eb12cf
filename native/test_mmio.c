/* Tests for mmio.c: every decoded form against an array-backed region, SIGBUS delivery for
 * refused accesses, and chaining of non-MMIO SIGSEGV. Build with `make -C native test`. */
#define _GNU_SOURCE
#include "mmio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <asm/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define NPAGES 2
#define BUS_OFF 0x1800 /* [BUS_OFF, BUS_OFF + 0x100) refuses accesses unless bus_allow */
#define LOW_ADDR 0x40000000ul /* fixed region below 4 GiB: moffs, absolute disp32, 0x67 */
#define P55 0x5555555555555555ull

/* in shared memory: the checks run in a child, so a mis-emulated access that crashes it still
 * ends in a summary line */
static int *counts;
#define passed counts[0]
#define failed counts[1]

static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (ok)
        passed++;
    else
        failed++;
}

/* ---- the device model: a byte array per region ---- */

static uint8_t mem[NPAGES * PAGE], low_mem[PAGE], rip_mem[PAGE], spare_mem[PAGE];
static volatile int bus_allow;
static volatile struct { uint64_t off; unsigned size; int w; } last;
static unsigned long ncalls;

static int device(void *cookie, uint64_t off, unsigned size, int is_write, uint64_t *val)
{
    uint8_t *m = cookie;
    last.off = off, last.size = size, last.w = is_write;
    __atomic_add_fetch(&ncalls, 1, __ATOMIC_RELAXED);
    if (m == mem && off >= BUS_OFF && off < BUS_OFF + 0x100 && !bus_allow)
        return -1;
    if (is_write) {
        memcpy(m + off, val, size);
    } else {
        *val = 0;
        memcpy(val, m + off, size);
    }
    return 0;
}

static int saw(uint64_t off, unsigned size, int w) { return last.off == off && last.size == size && last.w == w; }

static uint64_t mem_get(const uint8_t *m, size_t off, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, m + off, size);
    return v;
}

static void mem_put(uint8_t *m, size_t off, unsigned size, uint64_t v) { memcpy(m + off, &v, size); }

static uint8_t *base, *low, *spare;
static char *volatile nowhere; /* NULL the compiler cannot see (it would emit ud2 for *(int *)0) */
static uint8_t rip_page[PAGE] __attribute__((aligned(PAGE)));

/* ---- loads through C volatile pointers ---- */

static void test_volatile(void)
{
    volatile uint8_t *p8 = (volatile uint8_t *)(base + 0x10);
    volatile uint16_t *p16 = (volatile uint16_t *)(base + 0x20);
    volatile uint32_t *p32 = (volatile uint32_t *)(base + 0x40);
    volatile uint64_t *p64 = (volatile uint64_t *)(base + 0x80);

    *p8 = 0xab;
    check(mem[0x10] == 0xab && saw(0x10, 1, 1), "volatile u8 store");
    *p16 = 0xbeef;
    check(mem_get(mem, 0x20, 2) == 0xbeef && saw(0x20, 2, 1), "volatile u16 store");
    *p32 = 0xdeadbeef;
    check(mem_get(mem, 0x40, 4) == 0xdeadbeef && saw(0x40, 4, 1), "volatile u32 store");
    *p64 = 0x0123456789abcdefull;
    check(mem_get(mem, 0x80, 8) == 0x0123456789abcdefull && saw(0x80, 8, 1), "volatile u64 store");

    mem[0x11] = 0x9c;
    mem_put(mem, 0x22, 2, 0x8001);
    mem_put(mem, 0x44, 4, 0x80000001);
    mem_put(mem, 0x88, 8, 0xfedcba9876543210ull);
    uint8_t v8 = p8[1];
    check(v8 == 0x9c && saw(0x11, 1, 0), "volatile u8 load");
    uint16_t v16 = p16[1];
    check(v16 == 0x8001 && saw(0x22, 2, 0), "volatile u16 load");
    uint32_t v32 = p32[1];
    check(v32 == 0x80000001 && saw(0x44, 4, 0), "volatile u32 load");
    uint64_t v64 = p64[1];
    check(v64 == 0xfedcba9876543210ull && saw(0x88, 8, 0), "volatile u64 load");

    int64_t s8 = *(volatile int8_t *)(base + 0x11);
    int64_t s16 = *(volatile int16_t *)(base + 0x22);
    int64_t s32 = *(volatile int32_t *)(base + 0x44);
    check(s8 == (int8_t)0x9c && s16 == (int16_t)0x8001 && s32 == (int32_t)0x80000001,
          "volatile signed loads sign-extend to 64 bits");

    mem_put(mem, 0xffc, 8, 0x1122334455667788ull);
    uint64_t split = *(volatile uint64_t *)(base + 0xffc);
    *(volatile uint64_t *)(base + 0xff8) = 0xa5a5a5a5a5a5a5a5ull;
    check(split == 0x1122334455667788ull && mem_get(mem, 0xff8, 8) == 0xa5a5a5a5a5a5a5a5ull,
          "unaligned u64 across the region's page boundary is one 8-byte access");

    uint32_t sum = 0;
    for (int i = 0; i < 16; i++)
        mem_put(mem, 0x100 + 4 * i, 4, (uint32_t)i * 3);
    for (int i = 0; i < 16; i++)
        sum += ((volatile uint32_t *)(base + 0x100))[i];
    check(sum == 3 * 120, "volatile u32 loop over 16 registers");
}

/* ---- loads through inline asm, one per form; p is in %rdi ---- */

/* preset `reg` to P55, run `insn`, return the full 64-bit `reg` */
#define LOAD(insn, reg, ...)                                                                      \
    ({                                                                                            \
        uint64_t o_;                                                                              \
        __asm__ volatile("movabs $0x5555555555555555, %%" reg "\n\t" insn "\n\tmov %%" reg ", %0" \
                         : "=&r"(o_)                                                              \
                         : "D"(p), "c"(idx), "S"(aux)                                             \
                         : reg, "memory", ##__VA_ARGS__);                                          \
        o_;                                                                                       \
    })

/* the same with only p as input, for destinations rcx and rsi */
#define LOAD1(insn, reg)                                                                          \
    ({                                                                                            \
        uint64_t o_;                                                                              \
        __asm__ volatile("movabs $0x5555555555555555, %%" reg "\n\t" insn "\n\tmov %%" reg ", %0" \
                         : "=&r"(o_)                                                              \
                         : "D"(p)                                                                 \
                         : reg, "memory");                                                        \
        o_;                                                                                       \
    })

static void test_loads(void)
{
    uint8_t *p = base + 0x200;
    uint64_t idx = 0, aux = 0, v;
    mem_put(mem, 0x200, 8, 0x8877665544332291ull); /* bytes 91 22 33 44 55 66 77 88 */
    mem_put(mem, 0x208, 8, 0xf1e2d3c4b5a69788ull);

    v = LOAD("movb (%%rdi), %%r8b", "r8");
    check(v == ((P55 & ~0xffull) | 0x91) && saw(0x200, 1, 0), "8A: mov r8b, [rdi] keeps bits 8..63 (REX.R)");
    v = LOAD("movw 2(%%rdi), %%r9w", "r9");
    check(v == ((P55 & ~0xffffull) | 0x4433) && saw(0x202, 2, 0), "66 8B: mov r9w, [rdi+2] keeps bits 16..63");
    v = LOAD("movl 4(%%rdi), %%r10d", "r10");
    check(v == 0x88776655ull && saw(0x204, 4, 0), "8B: mov r10d, [rdi+4] zero-extends to 64");
    v = LOAD("movq 8(%%rdi), %%r11", "r11");
    check(v == 0xf1e2d3c4b5a69788ull && saw(0x208, 8, 0), "REX.W 8B: mov r11, [rdi+8]");
    v = LOAD("movq 8(%%rdi), %%r15", "r15");
    check(v == 0xf1e2d3c4b5a69788ull, "REX.W 8B: mov r15, [rdi+8]");
    v = LOAD("movb (%%rdi), %%ah", "rax");
    check(v == ((P55 & ~0xff00ull) | 0x9100), "8A: mov ah, [rdi] writes bits 8..15 only");
    v = LOAD1("movb 1(%%rdi), %%ch", "rcx");
    check(v == ((P55 & ~0xff00ull) | 0x2200), "8A: mov ch, [rdi+1]");
    v = LOAD("movb 2(%%rdi), %%dh", "rdx");
    check(v == ((P55 & ~0xff00ull) | 0x3300), "8A: mov dh, [rdi+2]");
    v = LOAD("movb 3(%%rdi), %%bh", "rbx");
    check(v == ((P55 & ~0xff00ull) | 0x4400), "8A: mov bh, [rdi+3]");
    v = LOAD1("movb (%%rdi), %%sil", "rsi");
    check(v == ((P55 & ~0xffull) | 0x91), "REX 8A: mov sil, [rdi] (not dh)");
    v = LOAD("movb (%%rdi), %%al", "rax");
    check(v == ((P55 & ~0xffull) | 0x91), "8A: mov al, [rdi]");
    v = LOAD("movw (%%rdi), %%ax", "rax");
    check(v == ((P55 & ~0xffffull) | 0x2291), "66 8B: mov ax, [rdi]");
    v = LOAD("movl (%%rdi), %%eax", "rax");
    check(v == 0x44332291ull, "8B: mov eax, [rdi] zero-extends");

    /* MOVZX / MOVSX / MOVSXD; byte 0x91, word 0x4433 / 0x9788, dword 0xb5a69788 */
    v = LOAD("movzbl (%%rdi), %%eax", "rax");
    check(v == 0x91 && saw(0x200, 1, 0), "0F B6: movzx eax, byte [rdi]");
    v = LOAD("movzbw (%%rdi), %%ax", "rax");
    check(v == ((P55 & ~0xffffull) | 0x91), "66 0F B6: movzx ax, byte [rdi] keeps bits 16..63");
    v = LOAD("movzbq (%%rdi), %%r9", "r9");
    check(v == 0x91, "REX.W 0F B6: movzx r9, byte [rdi]");
    v = LOAD("movzwl 8(%%rdi), %%eax", "rax");
    check(v == 0x9788 && saw(0x208, 2, 0), "0F B7: movzx eax, word [rdi+8]");
    v = LOAD("movzwq 8(%%rdi), %%r10", "r10");
    check(v == 0x9788, "REX.W 0F B7: movzx r10, word [rdi+8]");
    v = LOAD("movsbl (%%rdi), %%eax", "rax");
    check(v == 0xffffff91ull, "0F BE: movsx eax, byte [rdi] (sign to 32, zero above)");
    v = LOAD("movsbw (%%rdi), %%ax", "rax");
    check(v == ((P55 & ~0xffffull) | 0xff91), "66 0F BE: movsx ax, byte [rdi]");
    v = LOAD("movsbq (%%rdi), %%r11", "r11");
    check(v == 0xffffffffffffff91ull, "REX.W 0F BE: movsx r11, byte [rdi]");
    v = LOAD("movsbq 1(%%rdi), %%r11", "r11");
    check(v == 0x22, "REX.W 0F BE: movsx r11, byte [rdi+1] (positive)");
    v = LOAD("movswl 8(%%rdi), %%eax", "rax");
    check(v == 0xffff9788ull, "0F BF: movsx eax, word [rdi+8]");
    v = LOAD("movswq 8(%%rdi), %%r12", "r12");
    check(v == 0xffffffffffff9788ull, "REX.W 0F BF: movsx r12, word [rdi+8]");
    v = LOAD("movslq 8(%%rdi), %%r13", "r13");
    check(v == 0xffffffffb5a69788ull && saw(0x208, 4, 0), "REX.W 63: movsxd r13, dword [rdi+8]");
    v = LOAD("movslq (%%rdi), %%rax", "rax");
    check(v == 0x44332291ull, "REX.W 63: movsxd rax, dword [rdi] (positive)");
    v = LOAD(".byte 0x63, 0x47, 0x08 /* movsxd eax, [rdi+8] */", "rax");
    check(v == 0xb5a69788ull, "63 without REX.W: 32-bit move, zero-extends");

    /* addressing: disp8, disp32, SIB with/without base and index, REX.X/REX.B */
    mem_put(mem, 0x27c, 4, 0x11111111);
    mem_put(mem, 0x1f0, 4, 0x22222222);
    mem_put(mem, 0x1204, 4, 0x33333333);
    v = LOAD("movl 0x7c(%%rdi), %%eax", "rax");
    check(v == 0x11111111 && saw(0x27c, 4, 0), "ModRM mod=01 disp8");
    v = LOAD("movl -0x10(%%rdi), %%eax", "rax");
    check(v == 0x22222222 && saw(0x1f0, 4, 0), "ModRM mod=01 negative disp8");
    v = LOAD("movl 0x1004(%%rdi), %%eax", "rax");
    check(v == 0x33333333 && saw(0x1204, 4, 0), "ModRM mod=10 disp32");

    mem_put(mem, 0x20c, 4, 0x44444444);
    idx = 3;
    v = LOAD("movl (%%rdi,%%rcx,4), %%eax", "rax");
    check(v == 0x44444444 && saw(0x20c, 4, 0), "SIB base+index*4");
    mem_put(mem, 0x228, 8, 0x5555666677778888ull);
    idx = 3;
    v = LOAD("movq 0x10(%%rdi,%%rcx,8), %%rax", "rax");
    check(v == 0x5555666677778888ull && saw(0x228, 8, 0), "SIB base+index*8+disp8");
    mem_put(mem, 0x1206, 2, 0x6666);
    aux = 3;
    v = LOAD("mov %%rsi, %%r12\n\tmovw 0x1000(%%rdi,%%r12,2), %%ax", "rax", "r12");
    check((v & 0xffff) == 0x6666 && saw(0x1206, 2, 0), "SIB base+r12*2+disp32 (REX.X, index r12)");
    aux = (uint64_t)(p + 0x0c);
    v = LOAD("mov %%rsi, %%r12\n\tmovl (%%r12), %%eax", "rax", "r12");
    check(v == 0x44444444, "SIB base r12, no index (REX.B)");
    v = LOAD("mov %%rsi, %%r13\n\tmovl (%%r13), %%eax", "rax", "r13");
    check(v == 0x44444444, "base r13 (mod=01 disp8 0)");
    aux = 6;
    v = LOAD("mov %%rdi, %%r12\n\tmov %%rsi, %%r13\n\tmovl (%%r12,%%r13,2), %%eax", "rax", "r12", "r13");
    check(v == 0x44444444, "SIB base r12 + index r13*2 (REX.B+REX.X)");
    idx = (uint64_t)(p + 0x0c);
    v = LOAD("movl 0(,%%rcx,1), %%eax", "rax");
    check(v == 0x44444444, "SIB no base (mod=00 base=101) disp32 + index");
    idx = (uint64_t)(p + 0x28) / 8;
    v = LOAD("movq 0(,%%rcx,8), %%r8", "r8");
    check(v == 0x5555666677778888ull, "SIB no base, index*8 into r8");
    v = LOAD(".byte 0x3e\n\tmovl 0xc(%%rdi), %%eax", "rax");
    check(v == 0x44444444, "DS segment prefix (no-op in 64-bit mode)");
    v = LOAD(".byte 0x41, 0x3e, 0x8b, 0x47, 0x0c /* REX.B ds mov eax, [rdi+0xc] */", "rax");
    check(v == 0x44444444, "REX followed by a legacy prefix is ignored (base stays rdi, not r15)");
    v = LOAD(".byte 0x49, 0x66, 0x8b, 0x47, 0x0c /* REX.WB 66 mov ax, [rdi+0xc] */", "rax");
    check(v == ((P55 & ~0xffffull) | 0x4444) && saw(0x20c, 2, 0), "voided REX.W: 66 still selects 16 bits");

    /* GS override: the base is not in the ucontext; the fault address is used */
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)base) == 0) {
        v = LOAD("movl %%gs:0x20c, %%eax", "rax");
        check(v == 0x44444444 && saw(0x20c, 4, 0), "GS segment override (base from arch_prctl)");
        syscall(SYS_arch_prctl, ARCH_SET_GS, 0ul);
    } else {
        printf("skip GS override (arch_prctl failed)\n");
    }

    /* RIP-relative: the region is a page of this program's .bss */
    mem_put(rip_mem, 0x10, 4, 0xcafef00d);
    mem_put(rip_mem, 0x18, 8, 0x1122334455667788ull);
    v = LOAD("movl rip_page+0x10(%%rip), %%eax", "rax");
    check(v == 0xcafef00d && saw(0x10, 4, 0), "RIP-relative mov eax, [rip+disp32]");
    v = LOAD("movq rip_page+0x18(%%rip), %%r14", "r14");
    check(v == 0x1122334455667788ull, "RIP-relative REX.W mov r14");
    v = LOAD1("movzbl rip_page+0x11(%%rip), %%ecx", "rcx");
    check(v == 0xf0, "RIP-relative movzx");

    /* 0x40000000: absolute disp32, moffs (A0/A1), 67 address-size prefix */
    if (low) {
        mem_put(low_mem, 0x20, 8, 0x0102030405060708ull);
        v = LOAD("movl 0x40000020, %%eax", "rax");
        check(v == 0x05060708 && saw(0x20, 4, 0), "SIB no base no index: absolute disp32");
        v = LOAD("movabs 0x40000021, %%al", "rax");
        check(v == ((P55 & ~0xffull) | 0x07), "A0: mov al, moffs64");
        v = LOAD("movabs 0x40000020, %%eax", "rax");
        check(v == 0x05060708, "A1: mov eax, moffs64");
        v = LOAD("movabs 0x40000020, %%rax", "rax");
        check(v == 0x0102030405060708ull && saw(0x20, 8, 0), "REX.W A1: mov rax, moffs64");
        v = LOAD("movabs 0x40000022, %%ax", "rax");
        check(v == ((P55 & ~0xffffull) | 0x0506), "66 A1: mov ax, moffs64");
        aux = (LOW_ADDR + 0x24) | 0xabcd00000000ull; /* the CPU ignores bits 32..63 with 0x67 */
        v = LOAD("movl (%%esi), %%eax", "rax");
        check(v == 0x01020304 && saw(0x24, 4, 0), "67: mov eax, [esi] (32-bit address)");
    } else {
        printf("skip low region (0x40000000 unavailable): absolute disp32, moffs, 0x67\n");
    }
}

/* ---- stores ---- */

#define STORE(insn, ...) \
    __asm__ volatile(insn : : "D"(p), "c"(idx), "S"(aux), "a"(av) : "memory", ##__VA_ARGS__)

static void test_stores(void)
{
    uint8_t *p = base + 0x300;
    uint64_t idx = 0, aux = 0, av = 0;
    memset(mem + 0x300, 0xee, 0x100);

    aux = 0xa1;
    STORE("mov %%rsi, %%r12\n\tmovb %%r12b, (%%rdi)", "r12");
    check(mem[0x300] == 0xa1 && mem[0x301] == 0xee && saw(0x300, 1, 1), "REX 88: mov [rdi], r12b");
    aux = 0xb2b3;
    STORE("mov %%rsi, %%r13\n\tmovw %%r13w, 2(%%rdi)", "r13");
    check(mem_get(mem, 0x302, 2) == 0xb2b3 && saw(0x302, 2, 1), "66 REX 89: mov [rdi+2], r13w");
    aux = 0xc1c2c3c4;
    STORE("mov %%rsi, %%r14\n\tmovl %%r14d, 4(%%rdi)", "r14");
    check(mem_get(mem, 0x304, 4) == 0xc1c2c3c4 && saw(0x304, 4, 1), "REX 89: mov [rdi+4], r14d");
    aux = 0xd1d2d3d4d5d6d7d8ull;
    STORE("mov %%rsi, %%r15\n\tmovq %%r15, 8(%%rdi)", "r15");
    check(mem_get(mem, 0x308, 8) == 0xd1d2d3d4d5d6d7d8ull && saw(0x308, 8, 1), "REX.W 89: mov [rdi+8], r15");
    av = 0x1234;
    STORE("movb %%ah, 0x10(%%rdi)");
    check(mem[0x310] == 0x12, "88: mov [rdi+0x10], ah");
    aux = 0x5678;
    STORE("mov %%rsi, %%rbx\n\tmovb %%bh, 0x11(%%rdi)", "rbx");
    check(mem[0x311] == 0x56, "88: mov [rdi+0x11], bh");
    aux = 0x77;
    STORE("movb %%sil, 0x12(%%rdi)");
    check(mem[0x312] == 0x77, "REX 88: mov [rdi+0x12], sil (not dh)");
    av = 0x99887766;
    STORE("movl %%eax, 0x14(%%rdi)");
    check(mem_get(mem, 0x314, 4) == 0x99887766, "89: mov [rdi+0x14], eax");
    av = 0xabcd;
    STORE("movw %%ax, 0x18(%%rdi)");
    check(mem_get(mem, 0x318, 2) == 0xabcd && mem[0x31a] == 0xee, "66 89: mov [rdi+0x18], ax");

    STORE("movb $0x5a, 0x20(%%rdi)");
    check(mem[0x320] == 0x5a && mem[0x321] == 0xee && saw(0x320, 1, 1), "C6 /0: mov byte [rdi+0x20], imm8");
    STORE("movw $0x1234, 0x22(%%rdi)");
    check(mem_get(mem, 0x322, 2) == 0x1234 && saw(0x322, 2, 1), "66 C7 /0: mov word, imm16");
    STORE("movl $0xdeadbeef, 0x24(%%rdi)");
    check(mem_get(mem, 0x324, 4) == 0xdeadbeef && saw(0x324, 4, 1), "C7 /0: mov dword, imm32");
    STORE("movq $-2, 0x28(%%rdi)");
    check(mem_get(mem, 0x328, 8) == 0xfffffffffffffffeull && saw(0x328, 8, 1), "REX.W C7 /0: mov qword, imm32 sign-extended");
    STORE("movq $0x7fffffff, 0x30(%%rdi)");
    check(mem_get(mem, 0x330, 8) == 0x7fffffffull, "REX.W C7 /0: positive imm32");
    idx = 4;
    STORE("movw $0xbeef, 0x40(%%rdi,%%rcx,2)");
    check(mem_get(mem, 0x348, 2) == 0xbeef && saw(0x348, 2, 1), "66 C7 /0 with SIB+disp8");
    aux = 0x100;
    STORE("mov %%rsi, %%r9\n\tmovl $0x01020304, 0x1000(%%rdi,%%r9,1)", "r9");
    check(mem_get(mem, 0x1400, 4) == 0x01020304, "C7 /0 with SIB index r9 + disp32");

    av = 0x31323334;
    STORE("movnti %%eax, 0x50(%%rdi)");
    check(mem_get(mem, 0x350, 4) == 0x31323334 && saw(0x350, 4, 1), "0F C3: movnti dword");
    av = 0x4142434445464748ull;
    STORE("movnti %%rax, 0x58(%%rdi)");
    check(mem_get(mem, 0x358, 8) == 0x4142434445464748ull && saw(0x358, 8, 1), "REX.W 0F C3: movnti qword");

    /* RIP-relative stores: the immediate follows disp32, so RIP is past it */
    memset(rip_mem + 0x20, 0, 0x40);
    STORE("movl $0x11223344, rip_page+0x20(%%rip)");
    check(mem_get(rip_mem, 0x20, 4) == 0x11223344 && saw(0x20, 4, 1), "RIP-relative C7 /0 imm32");
    STORE("movb $0x77, rip_page+0x28(%%rip)");
    check(rip_mem[0x28] == 0x77 && saw(0x28, 1, 1), "RIP-relative C6 /0 imm8");
    STORE("movw $0x1234, rip_page+0x2a(%%rip)");
    check(mem_get(rip_mem, 0x2a, 2) == 0x1234 && saw(0x2a, 2, 1), "RIP-relative 66 C7 /0 imm16");
    STORE("movq $-5, rip_page+0x30(%%rip)");
    check(mem_get(rip_mem, 0x30, 8) == (uint64_t)-5, "RIP-relative REX.W C7 /0");
    av = 0xa0a1a2a3a4a5a6a7ull;
    STORE("movq %%rax, rip_page+0x38(%%rip)");
    check(mem_get(rip_mem, 0x38, 8) == av, "RIP-relative REX.W 89");

    if (low) {
        av = 0x61;
        STORE("movabs %%al, 0x40000040");
        check(low_mem[0x40] == 0x61 && saw(0x40, 1, 1), "A2: mov moffs64, al");
        av = 0x6263646566676869ull;
        STORE("movabs %%rax, 0x40000048");
        check(mem_get(low_mem, 0x48, 8) == av && saw(0x48, 8, 1), "REX.W A3: mov moffs64, rax");
        av = 0x7172;
        STORE("movabs %%ax, 0x40000050");
        check(mem_get(low_mem, 0x50, 2) == 0x7172 && saw(0x50, 2, 1), "66 A3: mov moffs64, ax");
        STORE("movl $0x0badcafe, 0x40000058");
        check(mem_get(low_mem, 0x58, 4) == 0x0badcafe, "C7 /0 absolute disp32");
        aux = LOW_ADDR + 0x60;
        av = 0x81828384;
        STORE("movl %%eax, (%%esi)");
        check(mem_get(low_mem, 0x60, 4) == 0x81828384, "67 89: mov [esi], eax");
    }
}

/* ---- ALU forms, differentially: the same instruction on ordinary memory and on the region
 * must leave the same rax, rcx, arithmetic flags and memory ---- */

#define FLAGS 0x8d5ull

struct cpu {
    uint64_t rax, rcx, flags;
};

#define DIFF_FN(name, insn)                                                                    \
    static void name(uint8_t *p, struct cpu *c)                                                \
    {                                                                                          \
        uint64_t a = c->rax, cx = c->rcx, f, fin = c->flags;                                    \
        __asm__ volatile("lea -128(%%rsp), %%rsp\n\tpushfq\n\tandq $~0x8d5, (%%rsp)\n\t"         \
                         "orq %[fin], (%%rsp)\n\tpopfq\n\t" insn "\n\t"                          \
                         "pushfq\n\tpopq %[f]\n\tlea 128(%%rsp), %%rsp"                              \
                         : "+a"(a), "+c"(cx), [f] "=&r"(f)                                      \
                         : "D"(p), [fin] "r"(fin)                                                \
                         : "cc", "memory");                                                     \
        c->rax = a, c->rcx = cx, c->flags = f & FLAGS;                                          \
    }

#define ALU_FORMS(X)                                                     \
    X(cmp_imm32, "cmpl $5, (%%rdi)", "83 /7: cmp dword, imm8")              \
    X(cmp_imm8, "cmpb $0x80, 1(%%rdi)", "80 /7: cmp byte, imm8")            \
    X(cmp_imm32b, "cmpl $0x12345678, 4(%%rdi)", "81 /7: cmp dword, imm32")  \
    X(cmp_rq, "cmpq %%rcx, 8(%%rdi)", "REX.W 39: cmp qword, rcx")          \
    X(cmp_wr, "cmpw (%%rdi), %%cx", "66 3B: cmp cx, word")                 \
    X(cmp_ah, "cmpb %%ah, 3(%%rdi)", "38: cmp byte, ah")                   \
    X(test_b, "testb $1, (%%rdi)", "F6 /0: test byte, imm8")               \
    X(test_l, "testl $0x80000000, 4(%%rdi)", "F7 /0: test dword, imm32")   \
    X(test_w, "testw $0x8000, 2(%%rdi)", "66 F7 /0: test word, imm16")     \
    X(test_r, "testl %%ecx, 4(%%rdi)", "85: test dword, ecx")              \
    X(test_rb, "testb %%cl, 1(%%rdi)", "84: test byte, cl")                \
    X(or_l, "orl $1, (%%rdi)", "83 /1: or dword, imm8")                    \
    X(and_l, "andl $-5, (%%rdi)", "83 /4: and dword, imm8 sign-extended")  \
    X(and_q, "andq $0x7ffffff0, 8(%%rdi)", "REX.W 81 /4: and qword, imm32") \
    X(xor_q, "xorq %%rcx, 8(%%rdi)", "REX.W 31: xor qword, rcx")           \
    X(add_b, "addb $0x7f, (%%rdi)", "80 /0: add byte (overflow)")          \
    X(add_q, "addq $-1, 8(%%rdi)", "REX.W 83 /0: add qword, -1")          \
    X(sub_w, "subw $1, 2(%%rdi)", "66 83 /5: sub word")                    \
    X(adc_l, "adcl %%ecx, (%%rdi)", "11: adc dword, ecx (carry in)")       \
    X(sbb_q, "sbbq $3, 8(%%rdi)", "REX.W 83 /3: sbb qword (borrow in)")    \
    X(add_rl, "addl (%%rdi), %%eax", "03: add eax, dword (zero-extends)")  \
    X(sub_rq, "subq 8(%%rdi), %%rax", "REX.W 2B: sub rax, qword")          \
    X(or_ah, "orb 1(%%rdi), %%ah", "0A: or ah, byte")                      \
    X(and_cx, "andw 2(%%rdi), %%cx", "66 23: and cx, word")                \
    X(xor_ecx, "xorl (%%rdi), %%ecx", "33: xor ecx, dword")               \
    X(inc_l, "incl (%%rdi)", "FF /0: inc dword (CF kept)")                 \
    X(dec_b, "decb 1(%%rdi)", "FE /1: dec byte")                           \
    X(inc_q, "incq 8(%%rdi)", "REX.W FF /0: inc qword")                    \
    X(dec_w, "decw 2(%%rdi)", "66 FF /1: dec word")                        \
    X(lock_or, "lock orl $1, 4(%%rdi)", "F0 83 /1: lock or")               \
    X(lock_add, "lock addq %%rcx, 8(%%rdi)", "F0 REX.W 01: lock add")      \
    X(xchg_l, "xchgl %%eax, (%%rdi)", "87: xchg dword, eax")               \
    X(xchg_b, "xchgb %%cl, 1(%%rdi)", "86: xchg byte, cl")                 \
    X(xchg_q, "xchgq %%rcx, 8(%%rdi)", "REX.W 87: xchg qword, rcx")

#define X(name, insn, desc) DIFF_FN(diff_##name, insn)
ALU_FORMS(X)
#undef X

static void test_alu(void)
{
    static const struct {
        void (*fn)(uint8_t *, struct cpu *);
        const char *desc;
    } forms[] = {
#define X(name, insn, desc) {diff_##name, desc},
        ALU_FORMS(X)
#undef X
    };
    static const uint8_t patterns[][16] = {
        {5, 0x80, 0x00, 0x80, 0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0x7f, 0x01, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80},
        {0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
    };
    static const struct cpu inputs[] = {
        {0x1122334455668077ull, 0x8000000000000001ull, 0},
        {0xffffffff8000ffffull, 0x000000007fffffffull, FLAGS},
        {0, 0xffffffffffffffffull, 0x001},
    };
    uint8_t plain[16];
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        int same = 1;
        for (size_t pi = 0; pi < sizeof patterns / sizeof patterns[0]; pi++)
            for (size_t ii = 0; ii < sizeof inputs / sizeof inputs[0]; ii++) {
                struct cpu want = inputs[ii], got = inputs[ii];
                memcpy(plain, patterns[pi], 16);
                memcpy(mem + 0xc00, patterns[pi], 16);
                forms[f].fn(plain, &want);
                forms[f].fn(base + 0xc00, &got);
                if (memcmp(&want, &got, sizeof want) || memcmp(plain, mem + 0xc00, 16))
                    same = 0;
            }
        check(same, "%s: as on memory (result, flags, register)", forms[f].desc);
    }
}

/* ---- signals ---- */

static sigjmp_buf jb;
static volatile sig_atomic_t nsig, last_sig;
static siginfo_t last_info;
static sigset_t mask_in_handler;

static void info_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    nsig++;
    last_sig = sig;
    last_info = *si;
    sigprocmask(SIG_BLOCK, NULL, &mask_in_handler);
    siglongjmp(jb, 1);
}

static void enable_handler(int sig)
{
    nsig++;
    last_sig = sig;
    bus_allow = 1; /* "memory decode back on": returning retries the access */
}

static void plain_jump_handler(int sig)
{
    nsig++;
    last_sig = sig;
    siglongjmp(jb, 1);
}

static void set_action(int sig, void (*h)(int, siginfo_t *, void *), int flags, int extra_mask_sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (extra_mask_sig)
        sigaddset(&sa.sa_mask, extra_mask_sig);
    sigaction(sig, &sa, NULL);
}

static void test_sigbus(void)
{
    volatile uint32_t *bad = (volatile uint32_t *)(base + BUS_OFF + 4);
    sigset_t empty;
    sigemptyset(&empty);

    set_action(SIGBUS, info_handler, 0, SIGUSR1);
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        uint32_t v = *bad;
        check(0, "refused read returned 0x%x instead of raising SIGBUS", v);
    } else {
        check(nsig == 1 && last_sig == SIGBUS && last_info.si_signo == SIGBUS && last_info.si_code == BUS_ADRERR &&
                  last_info.si_addr == (void *)bad,
              "refused read: SA_SIGINFO SIGBUS handler, BUS_ADRERR at the address, siglongjmp out");
        check(sigismember(&mask_in_handler, SIGBUS) && sigismember(&mask_in_handler, SIGUSR1) &&
                  !sigismember(&mask_in_handler, SIGSEGV),
              "SIGBUS handler runs with SIGBUS + its sa_mask blocked");
    }
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile uint16_t *)(base + BUS_OFF + 0x10) = 7;
        check(0, "refused write returned");
    } else {
        check(nsig == 1 && last_info.si_addr == (void *)(base + BUS_OFF + 0x10) && saw(BUS_OFF + 0x10, 2, 1),
              "refused write: SIGBUS handler");
    }
    /* siglongjmp without restoring the mask leaves SIGBUS blocked, as on Linux, but MMIO must
     * keep working (SIGSEGV never stays blocked) */
    nsig = 0;
    if (sigsetjmp(jb, 0) == 0)
        (void)*bad;
    mem_put(mem, 0x60, 4, 0x600d);
    uint32_t ok = *(volatile uint32_t *)(base + 0x60);
    check(nsig == 1 && ok == 0x600d, "MMIO still works after siglongjmp(env, 0) out of the SIGBUS handler");
    sigprocmask(SIG_SETMASK, &empty, NULL);

    /* a plain handler that fixes the device and returns: the access is retried and completes */
    signal(SIGBUS, enable_handler);
    nsig = 0;
    bus_allow = 0;
    mem_put(mem, BUS_OFF + 4, 4, 0xfeedface);
    uint32_t v = *bad;
    check(nsig == 1 && v == 0xfeedface, "plain SIGBUS handler returns after enabling decode: access retried");
    bus_allow = 0;

    /* SA_RESETHAND */
    set_action(SIGBUS, info_handler, SA_RESETHAND, 0);
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        (void)*bad;
    struct sigaction cur;
    sigaction(SIGBUS, NULL, &cur);
    check(nsig == 1 && cur.sa_handler == SIG_DFL, "SA_RESETHAND SIGBUS handler: called once, disposition back to SIG_DFL");
    signal(SIGBUS, SIG_DFL);
}

static volatile uintptr_t handler_sp;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    char here;
    handler_sp = (uintptr_t)&here;
    info_handler(sig, si, uc);
}

static void preinit_handler(int sig, siginfo_t *si, void *uc)
{
    info_handler(sig, si, uc);
}

static void test_segv_chaining(void)
{
    struct sigaction old, cur;
    sigaction(SIGSEGV, NULL, &old);
    check(old.sa_handler == SIG_DFL, "sigaction(SIGSEGV) reports the program's SIG_DFL, not the MMIO handler");

    set_action(SIGSEGV, segv_handler, 0, 0);
    sigaction(SIGSEGV, NULL, &cur);
    check(cur.sa_sigaction == segv_handler && (cur.sa_flags & SA_SIGINFO), "sigaction(SIGSEGV) returns the program's handler");

    nsig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)(nowhere + 8) = 1;
        check(0, "NULL store returned");
    } else {
        check(nsig == 1 && last_sig == SIGSEGV && last_info.si_addr == (void *)8 && last_info.si_code == SEGV_MAPERR &&
                  !sigismember(&mask_in_handler, SIGSEGV),
              "program SIGSEGV handler installed after mmio_init gets a NULL fault (SEGV_MAPERR, si_addr 8)");
    }
    mem_put(mem, 0x68, 4, 0x1234);
    check(*(volatile uint32_t *)(base + 0x68) == 0x1234, "MMIO still emulated with a program SIGSEGV handler installed");

    /* an instruction the decoder does not know, inside a region: the program's SIGSEGV */
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        fprintf(stderr, "(expected diagnostic follows)\n");
        __asm__ volatile("movups %%xmm0, (%0)" : : "r"(base + 0x70) : "memory");
        check(0, "undecodable instruction returned");
    } else {
        check(nsig == 1 && last_info.si_addr == (void *)(base + 0x70) && last_info.si_code == SEGV_ACCERR,
              "undecodable movups [mem], xmm0 in a region reaches the program's SIGSEGV handler");
    }

    /* unregister: the PROT_NONE page faults as a plain SIGSEGV again */
    check(mmio_lookup((uintptr_t)spare + 5) == 1, "mmio_lookup inside a region");
    mmio_unregister((uintptr_t)spare + 100, 1);
    check(mmio_lookup((uintptr_t)spare + 5) == 0 && mmio_lookup((uintptr_t)base) == 1,
          "mmio_unregister drops the overlapping region only");
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        (void)*(volatile uint8_t *)(spare + 5);
    check(nsig == 1 && last_info.si_addr == (void *)(spare + 5), "access after mmio_unregister is a SIGSEGV");

    /* signal() returns the previous handler and installs a plain one */
    sighandler_t prev = signal(SIGSEGV, plain_jump_handler);
    check((void *)prev == (void *)segv_handler, "signal(SIGSEGV) returns the program's previous handler");
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)nowhere = 1;
    check(nsig == 1 && last_sig == SIGSEGV, "plain signal() SIGSEGV handler gets the fault");

    /* SA_RESETHAND on the program's SIGSEGV handler */
    set_action(SIGSEGV, segv_handler, SA_RESETHAND, 0);
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)nowhere = 1;
    sigaction(SIGSEGV, NULL, &cur);
    check(nsig == 1 && cur.sa_handler == SIG_DFL, "SA_RESETHAND SIGSEGV handler: called once, then SIG_DFL");

    /* SA_ONSTACK: the program's handler runs on its alternate stack */
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    set_action(SIGSEGV, segv_handler, SA_ONSTACK, 0);
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)nowhere = 1;
    check(nsig == 1 && handler_sp - (uintptr_t)altstack < sizeof altstack,
          "SA_ONSTACK SIGSEGV handler gets the fault on its alternate stack");
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);

    sigaction(SIGSEGV, &old, NULL);
}

/* ---- deaths, in children ---- */

static int child_status(void (*body)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2); /* the undecodable-instruction diagnostic */
        body();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static int killed_by(int st, int sig) { return WIFSIGNALED(st) && WTERMSIG(st) == sig; }

static void die_null(void) { *(volatile int *)nowhere = 1; }
static void die_null_after_reset(void)
{
    set_action(SIGSEGV, segv_handler, 0, 0);
    signal(SIGSEGV, SIG_DFL);
    *(volatile int *)nowhere = 1;
}
static void die_null_ignored(void)
{
    signal(SIGSEGV, SIG_IGN);
    *(volatile int *)nowhere = 1;
}
static void die_raise(void) { raise(SIGSEGV); }
static void live_raise_ignored(void)
{
    signal(SIGSEGV, SIG_IGN);
    raise(SIGSEGV);
}
static void die_resethand_twice(void)
{
    set_action(SIGSEGV, segv_handler, SA_RESETHAND, 0);
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)nowhere = 1;
    *(volatile int *)nowhere = 2;
}
static void die_undecodable(void) { __asm__ volatile("movups %%xmm0, (%0)" : : "r"(base + 0x70) : "memory"); }
static void die_bus_default(void) { (void)*(volatile uint32_t *)(base + BUS_OFF); }
static void die_bus_ignored(void)
{
    signal(SIGBUS, SIG_IGN);
    (void)*(volatile uint32_t *)(base + BUS_OFF);
}
static void die_bus_blocked(void)
{
    sigset_t s;
    set_action(SIGBUS, info_handler, 0, 0);
    sigemptyset(&s);
    sigaddset(&s, SIGBUS);
    sigprocmask(SIG_BLOCK, &s, NULL);
    *(volatile uint8_t *)(base + BUS_OFF) = 1;
}
static void die_null_blocked(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGSEGV);
    sigprocmask(SIG_BLOCK, &s, NULL);
    *(volatile int *)nowhere = 1;
}
static void live_mmio(void) { *(volatile uint32_t *)(base + 0x90) = 1; }

static void test_deaths(void)
{
    check(killed_by(child_status(die_null), SIGSEGV), "NULL store kills the child with SIGSEGV");
    check(killed_by(child_status(die_null_after_reset), SIGSEGV), "NULL store after the program's handler was reset to SIG_DFL: SIGSEGV");
    check(killed_by(child_status(die_null_ignored), SIGSEGV), "NULL store with SIGSEGV ignored still kills with SIGSEGV");
    check(killed_by(child_status(die_raise), SIGSEGV), "raise(SIGSEGV) with SIG_DFL kills with SIGSEGV");
    int st = child_status(live_raise_ignored);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "raise(SIGSEGV) with SIG_IGN is ignored");
    check(killed_by(child_status(die_resethand_twice), SIGSEGV), "second fault after SA_RESETHAND kills with SIGSEGV");
    check(killed_by(child_status(die_null_blocked), SIGSEGV), "NULL store with SIGSEGV blocked kills with SIGSEGV");
    check(killed_by(child_status(die_undecodable), SIGSEGV), "undecodable MMIO instruction without a handler: SIGSEGV");
    check(killed_by(child_status(die_bus_default), SIGBUS), "refused read with SIGBUS at SIG_DFL kills with SIGBUS");
    check(killed_by(child_status(die_bus_ignored), SIGBUS), "refused read with SIGBUS ignored still kills with SIGBUS");
    check(killed_by(child_status(die_bus_blocked), SIGBUS), "refused write with SIGBUS blocked kills with SIGBUS");
    st = child_status(live_mmio);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "MMIO in a forked child works");
}

/* ---- threads ---- */

#define NTHREADS 4
#define ITERS 20000

static void *worker(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    volatile uint64_t *slot = (volatile uint64_t *)(base + 0xa00 + 8 * t);
    uintptr_t bad = 0;
    for (uint64_t i = 0; i < ITERS; i++) {
        *slot = i * NTHREADS + t;
        if (*slot != i * NTHREADS + t)
            bad++;
    }
    return (void *)bad;
}

static void test_threads(void)
{
    pthread_t th[NTHREADS];
    unsigned long before = ncalls;
    for (uintptr_t t = 0; t < NTHREADS; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    int churn_errors = 0;
    for (int i = 0; i < 2000; i++) {
        if (mmio_register((uintptr_t)spare, PAGE, device, spare_mem) != 0)
            churn_errors++;
        mmio_unregister((uintptr_t)spare, PAGE);
    }
    uintptr_t bad = 0;
    for (int t = 0; t < NTHREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad += (uintptr_t)r;
    }
    check(bad == 0 && churn_errors == 0 && ncalls - before == 2ul * NTHREADS * ITERS,
          "%d threads x %d store+load pairs while another region is registered/unregistered 2000 times", NTHREADS, ITERS);
}

static void *blocked_worker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    mem_put(mem, 0xb00, 4, 0xb10c);
    return (void *)(uintptr_t)(*(volatile uint32_t *)(base + 0xb00) == 0xb10c);
}

static void test_blocked_masks(void)
{
    pthread_t th;
    void *ok = NULL;
    pthread_create(&th, NULL, blocked_worker, NULL);
    pthread_join(th, &ok);
    check(ok != NULL, "MMIO from a thread that blocked every signal with pthread_sigmask");

    sigset_t segv, old;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    sigprocmask(SIG_BLOCK, &segv, &old);
    *(volatile uint16_t *)(base + 0xb04) = 0x5e9;
    check(mem_get(mem, 0xb04, 2) == 0x5e9, "MMIO after sigprocmask(SIG_BLOCK, {SIGSEGV})");
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void report_speed(void)
{
    struct timespec t0, t1;
    volatile uint32_t *r = (volatile uint32_t *)(base + 0x40);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100000; i++)
        (void)*r;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("note: %.2f us per emulated access (100000 reads, callback included)\n",
           ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 100000 / 1e3);
}

static void test_register_errors(void)
{
    errno = 0;
    check(mmio_register((uintptr_t)base + PAGE, PAGE, device, mem) == -1 && errno == EEXIST, "overlapping mmio_register: EEXIST");
    errno = 0;
    check(mmio_register((uintptr_t)spare, 0, device, mem) == -1 && errno == EINVAL, "empty mmio_register: EINVAL");
    errno = 0;
    check(mmio_register((uintptr_t)spare, PAGE, NULL, mem) == -1 && errno == EINVAL, "mmio_register without callback: EINVAL");
}

static void preinit_handler(int sig, siginfo_t *si, void *uc);

static int run_tests(void)
{
    /* a handler installed before mmio_init() is recorded as the program's and still called */
    struct sigaction cur;
    set_action(SIGSEGV, preinit_handler, 0, 0);
    mmio_init();
    sigaction(SIGSEGV, NULL, &cur);
    check(cur.sa_sigaction == preinit_handler, "mmio_init keeps a SIGSEGV handler installed before it as the program's");
    nsig = 0;
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)nowhere = 1;
    check(nsig == 1 && last_sig == SIGSEGV, "... and chains a NULL fault to it");
    signal(SIGSEGV, SIG_DFL);
    mmio_init(); /* idempotent */

    base = mmap(NULL, NPAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    spare = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    low = mmap((void *)LOW_ADDR, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (low == MAP_FAILED || low != (uint8_t *)LOW_ADDR)
        low = NULL;
    if (base == MAP_FAILED || spare == MAP_FAILED || mprotect(rip_page, PAGE, PROT_NONE) != 0) {
        perror("mmap");
        return 2;
    }
    if (mmio_register((uintptr_t)base, NPAGES * PAGE, device, mem) || mmio_register((uintptr_t)spare, PAGE, device, spare_mem) ||
        mmio_register((uintptr_t)rip_page, PAGE, device, rip_mem) || (low && mmio_register(LOW_ADDR, PAGE, device, low_mem))) {
        perror("mmio_register");
        return 2;
    }

    test_register_errors();
    test_volatile();
    test_loads();
    test_stores();
    test_alu();
    test_sigbus();
    test_deaths();
    test_segv_chaining();
    test_threads();
    test_blocked_masks();
    report_speed();
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    counts = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(120);
        _exit(run_tests());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        check(0, "test process killed by signal %d (%s) after the last check above", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st) != 0)
        check(0, "test process exited with status %d", WEXITSTATUS(st));
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

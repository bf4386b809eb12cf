/* MMIO emulation for VFIO BAR mappings: SIGSEGV handler, x86-64 decoder, signal interposition.
 *
 * Link into the LD_PRELOAD library (no main, no constructors). Needs dlsym(RTLD_NEXT) for
 * the real sigaction: -ldl on glibc < 2.34.
 *
 * Decoded (legacy prefixes 66, 67, F0, segment overrides, REX.W/R/X/B; any ModRM/SIB/disp
 * form incl. RIP-relative; AH..BH without REX):
 *   MOV 88 89 8A 8B, C6/C7 /0, A0..A3 (moffs), MOVZX/MOVSX 0F B6/B7/BE/BF, MOVSXD 63,
 *   MOVNTI 0F C3; with a memory operand also ADD OR ADC SBB AND SUB XOR CMP (00..3B,
 *   80/81/83), TEST (84/85, F6/F7 /0), INC/DEC (FE/FF /0 /1), XCHG (86/87).
 * Not decoded (the fault goes to the program's SIGSEGV disposition, with a line on stderr):
 *   SSE/AVX (VEX/EVEX) moves, string instructions (MOVS/STOS/...), anything else. */
#define _GNU_SOURCE
#include "mmio.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#if !defined(__x86_64__) || !defined(__linux__)
#error "mmio.c decodes x86-64 instructions and reads the Linux/glibc ucontext_t"
#endif

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);
static void *real_sigaction_p, *real_sigprocmask_p, *real_pthread_sigmask_p;

/* libc's definition of a function we interpose; mmio_init() resolves all of them so that the
 * handler path never calls dlsym() */
static void *real_fn(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

static sigaction_fn real_sigaction(void)
{
    sigaction_fn f;
    void *p = real_fn(&real_sigaction_p, "sigaction");
    memcpy(&f, &p, sizeof f); /* object-to-function pointer, the POSIX way */
    return f;
}

static sigmask_fn real_mask_fn(void **slot, const char *name)
{
    sigmask_fn f;
    void *p = real_fn(slot, name);
    memcpy(&f, &p, sizeof f);
    return f;
}

/* This thread's mask, straight to the kernel: no interposition, no dlsym, async-signal-safe. */
static void thread_mask(int how, const sigset_t *set, sigset_t *old)
{
    if (old)
        sigemptyset(old);
    syscall(SYS_rt_sigprocmask, how, set, old, (size_t)(_NSIG / 8));
}

static void cpu_relax(void) { __builtin_ia32_pause(); }

/* ---- small locks: writers block every signal while they hold one, so a handler on the
 * same thread can never spin on a lock its own thread holds. Readers in the handler use the
 * sequence counters (seqlock) and never take the lock. ---- */

static void lock_take(char *lock, sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    thread_mask(SIG_BLOCK, &all, saved);
    while (__atomic_test_and_set(lock, __ATOMIC_ACQUIRE))
        cpu_relax();
}

static void lock_drop(char *lock, const sigset_t *saved)
{
    __atomic_clear(lock, __ATOMIC_RELEASE);
    thread_mask(SIG_SETMASK, saved, NULL);
}

static void seq_write_begin(unsigned *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_write_end(unsigned *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* ---- regions ---- */

struct region {
    uintptr_t start;
    size_t len; /* 0: free slot */
    mmio_fn fn;
    void *cookie;
};

static struct region regions[MMIO_MAX_REGIONS];
static unsigned region_seq;
static char region_lock;

/* The region holding all of [addr, addr+size), copied out consistently; 0 when none. */
static int region_find(uintptr_t addr, size_t size, struct region *out)
{
    for (;;) {
        unsigned s = __atomic_load_n(&region_seq, __ATOMIC_ACQUIRE);
        if (s & 1) {
            cpu_relax();
            continue;
        }
        int found = 0;
        for (int i = 0; i < MMIO_MAX_REGIONS && !found; i++) {
            uintptr_t start = __atomic_load_n(&regions[i].start, __ATOMIC_RELAXED);
            size_t len = __atomic_load_n(&regions[i].len, __ATOMIC_RELAXED);
            if (len && addr - start < len && size <= len - (addr - start)) {
                out->start = start;
                out->len = len;
                out->fn = __atomic_load_n(&regions[i].fn, __ATOMIC_RELAXED);
                out->cookie = __atomic_load_n(&regions[i].cookie, __ATOMIC_RELAXED);
                found = 1;
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&region_seq, __ATOMIC_RELAXED) == s)
            return found;
    }
}

int mmio_register(uintptr_t start, size_t len, mmio_fn fn, void *cookie)
{
    if (!fn || !len || start + len < start) {
        errno = EINVAL;
        return -1;
    }
    mmio_init();
    sigset_t saved;
    int err = ENOSPC, slot = -1;
    lock_take(&region_lock, &saved);
    for (int i = 0; i < MMIO_MAX_REGIONS; i++) {
        if (!regions[i].len) {
            if (slot < 0)
                slot = i;
        } else if (start < regions[i].start + regions[i].len && regions[i].start < start + len) {
            err = EEXIST;
            slot = -1;
            break;
        }
    }
    if (slot >= 0) {
        seq_write_begin(&region_seq);
        __atomic_store_n(&regions[slot].start, start, __ATOMIC_RELAXED);
        __atomic_store_n(&regions[slot].fn, fn, __ATOMIC_RELAXED);
        __atomic_store_n(&regions[slot].cookie, cookie, __ATOMIC_RELAXED);
        __atomic_store_n(&regions[slot].len, len, __ATOMIC_RELAXED);
        seq_write_end(&region_seq);
    }
    lock_drop(&region_lock, &saved);
    if (slot < 0) {
        errno = err;
        return -1;
    }
    return 0;
}

void mmio_unregister(uintptr_t start, size_t len)
{
    sigset_t saved;
    uintptr_t end = start + len < start ? UINTPTR_MAX : start + len;
    lock_take(&region_lock, &saved);
    seq_write_begin(&region_seq);
    for (int i = 0; i < MMIO_MAX_REGIONS; i++)
        if (regions[i].len && start < regions[i].start + regions[i].len && regions[i].start < end)
            __atomic_store_n(&regions[i].len, 0, __ATOMIC_RELAXED);
    seq_write_end(&region_seq);
    lock_drop(&region_lock, &saved);
}

int mmio_lookup(uintptr_t addr)
{
    struct region r;
    return region_find(addr, 1, &r);
}

/* ---- the program's SIGSEGV disposition (what it believes is installed) ---- */

static struct sigaction prog_segv;
static unsigned prog_seq;
static char prog_lock;
static int init_state; /* 0: not initialised, 1: in progress, 2: done */

static void prog_segv_get(struct sigaction *out)
{
    for (;;) {
        unsigned s = __atomic_load_n(&prog_seq, __ATOMIC_ACQUIRE);
        if (s & 1) {
            cpu_relax();
            continue;
        }
        memcpy(out, &prog_segv, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&prog_seq, __ATOMIC_RELAXED) == s)
            return;
    }
}

static void segv_handler(int sig, siginfo_t *si, void *ctx);

/* Our handler, with SA_ONSTACK mirrored from the program's so its stack-overflow handler
 * still runs on its alternate stack. Asynchronous signals are blocked while we emulate: the
 * access is atomic, as on hardware. SIGSEGV stays blocked too (a fault in the callback kills
 * at once); invoke() unblocks it for the program's handlers. */
static int install_ours(int prog_flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | (prog_flags & SA_ONSTACK);
    sigfillset(&sa.sa_mask);
    sigdelset(&sa.sa_mask, SIGSEGV);
    sigdelset(&sa.sa_mask, SIGBUS);
    sigdelset(&sa.sa_mask, SIGILL);
    sigdelset(&sa.sa_mask, SIGFPE);
    sigdelset(&sa.sa_mask, SIGTRAP);
    return real_sigaction()(SIGSEGV, &sa, NULL);
}

void mmio_init(void)
{
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2)
        return;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
            cpu_relax();
        return;
    }
    real_mask_fn(&real_sigprocmask_p, "sigprocmask");
    real_mask_fn(&real_pthread_sigmask_p, "pthread_sigmask");
    sigset_t saved;
    lock_take(&prog_lock, &saved);
    if (real_sigaction()) {
        /* whatever is installed now is the program's (or the default) */
        struct sigaction cur;
        real_sigaction()(SIGSEGV, NULL, &cur);
        seq_write_begin(&prog_seq);
        prog_segv = cur;
        seq_write_end(&prog_seq);
        install_ours(cur.sa_flags);
    }
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
    lock_drop(&prog_lock, &saved);
}

/* ---- x86-64 decoder (Intel SDM vol. 2, one-byte and two-byte opcode maps) ---- */

enum { REX_B = 1, REX_X = 2, REX_R = 4, REX_W = 8 };

enum { K_MOV, K_ALU, K_XCHG };
enum { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP, ALU_TEST, ALU_INC, ALU_DEC };

struct insn {
    int kind;          /* K_MOV: load or store; K_ALU: read (+ write back); K_XCHG */
    int alu;           /* K_ALU: ALU_* */
    int mem_dst;       /* K_ALU: memory is the destination operand */
    unsigned len;      /* bytes, prefixes included */
    unsigned size;     /* memory access width: 1, 2, 4, 8 */
    unsigned dst_size; /* load: destination register width */
    int is_write;
    int is_imm;  /* the other operand is an immediate (imm), not reg */
    int sign;    /* load sign-extends (MOVSX/MOVSXD) */
    int reg;     /* register operand 0..15 */
    int rex;     /* a REX prefix was present: byte regs 4..7 are SPL..DIL, not AH..BH */
    int seg;     /* FS/GS override: the effective address misses the segment base */
    uint64_t imm;
    uintptr_t ea;
};

static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static uint64_t size_mask(unsigned size) { return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1; }

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t sext(uint64_t v, unsigned size)
{
    unsigned shift = 64 - 8 * size;
    return size >= 8 ? v : (uint64_t)((int64_t)(v << shift) >> shift);
}

static uint64_t reg_get(const greg_t *g, int r, unsigned size, int rex)
{
    if (size == 1 && !rex && r >= 4 && r < 8) /* AH, CH, DH, BH */
        return ((uint64_t)g[greg_of[r - 4]] >> 8) & 0xff;
    return (uint64_t)g[greg_of[r]] & size_mask(size);
}

/* Register write with the CPU's merge rules: 8/16-bit writes keep the rest, 32-bit writes
 * zero-extend to 64. */
static void reg_put(greg_t *g, int r, unsigned size, int rex, uint64_t v)
{
    if (size == 1 && !rex && r >= 4 && r < 8) {
        greg_t *d = &g[greg_of[r - 4]];
        *d = (greg_t)(((uint64_t)*d & ~0xff00ull) | ((v & 0xff) << 8));
        return;
    }
    greg_t *d = &g[greg_of[r]];
    if (size == 4)
        *d = (greg_t)(v & 0xffffffffull);
    else if (size == 8)
        *d = (greg_t)v;
    else
        *d = (greg_t)(((uint64_t)*d & ~size_mask(size)) | (v & size_mask(size)));
}

/* 0 and *in filled for a supported memory access at p (RIP), -1 otherwise. */
static int decode(const uint8_t *p, const greg_t *g, struct insn *in)
{
    unsigned i = 0;
    int opsz16 = 0, addr32 = 0, rex = 0, lock = 0, grp = 0;
    memset(in, 0, sizeof *in);

    for (;; i++) {
        if (i >= 14)
            return -1;
        uint8_t b = p[i];
        if (b == 0x66)
            opsz16 = 1;
        else if (b == 0x67)
            addr32 = 1;
        else if (b == 0x2e || b == 0x3e || b == 0x26 || b == 0x36)
            ; /* CS/DS/ES/SS overrides are no-ops in 64-bit mode */
        else if (b == 0x64 || b == 0x65)
            in->seg = 1;
        else if (b == 0xf0)
            lock = 1;
        else if ((b & 0xf0) == 0x40) {
            rex = b; /* must be last before the opcode: a legacy prefix after it voids it */
            continue;
        } else
            break;
        rex = 0;
    }
    in->rex = rex != 0;
    unsigned osz = (rex & REX_W) ? 8 : opsz16 ? 2 : 4;
    unsigned immsz = 0;
    uint8_t op = p[i++];

    switch (op) {
    case 0x88: /* MOV r/m8, r8 */
        in->size = 1, in->is_write = 1;
        break;
    case 0x89: /* MOV r/m16/32/64, r16/32/64 */
        in->size = osz, in->is_write = 1;
        break;
    case 0x8a: /* MOV r8, r/m8 */
        in->size = in->dst_size = 1;
        break;
    case 0x8b: /* MOV r16/32/64, r/m16/32/64 */
        in->size = in->dst_size = osz;
        break;
    case 0xc6: /* C6 /0 ib: MOV r/m8, imm8 */
        in->size = 1, in->is_write = in->is_imm = 1, immsz = 1, grp = 0xc6;
        break;
    case 0xc7: /* C7 /0 iw/id: MOV r/m16/32, imm16/32; REX.W: r/m64, imm32 sign-extended */
        in->size = osz, in->is_write = in->is_imm = 1, immsz = osz == 2 ? 2 : 4, grp = 0xc6;
        break;
    case 0x80: /* 80 /0../7 ib: ADD..CMP r/m8, imm8 */
    case 0x81: /* 81 /0../7 iw/id: ADD..CMP r/m16/32/64, imm16/32 */
    case 0x83: /* 83 /0../7 ib: ADD..CMP r/m16/32/64, imm8 sign-extended */
        in->kind = K_ALU, in->mem_dst = 1, in->is_imm = 1, grp = 0x80;
        in->size = op == 0x80 ? 1 : osz;
        immsz = op == 0x81 ? (osz == 2 ? 2 : 4) : 1;
        break;
    case 0x84: /* TEST r/m8, r8 */
    case 0x85: /* TEST r/m16/32/64, r16/32/64 */
        in->kind = K_ALU, in->alu = ALU_TEST, in->mem_dst = 1, in->size = op == 0x84 ? 1 : osz;
        break;
    case 0x86: /* XCHG r/m8, r8 */
    case 0x87: /* XCHG r/m16/32/64, r16/32/64 */
        in->kind = K_XCHG, in->size = op == 0x86 ? 1 : osz;
        break;
    case 0xf6: /* F6 /0 ib: TEST r/m8, imm8 */
    case 0xf7: /* F7 /0 iw/id: TEST r/m16/32/64, imm16/32 */
        in->kind = K_ALU, in->alu = ALU_TEST, in->mem_dst = 1, in->is_imm = 1, grp = 0xc6;
        in->size = op == 0xf6 ? 1 : osz;
        immsz = op == 0xf6 ? 1 : (osz == 2 ? 2 : 4);
        break;
    case 0xfe: /* FE /0, /1: INC, DEC r/m8 */
    case 0xff: /* FF /0, /1: INC, DEC r/m16/32/64 */
        in->kind = K_ALU, in->mem_dst = 1, grp = 0xfe;
        in->size = op == 0xfe ? 1 : osz;
        break;
    case 0x63: /* MOVSXD r64, r/m32 (REX.W); without REX.W a plain 16/32-bit move */
        if (rex & REX_W)
            in->size = 4, in->dst_size = 8, in->sign = 1;
        else
            in->size = in->dst_size = osz;
        break;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: { /* MOV AL/eAX <-> moffs (A0..A3) */
        unsigned asz = addr32 ? 4 : 8;
        in->size = (op & 1) ? osz : 1;
        in->dst_size = in->size;
        in->is_write = op >= 0xa2;
        in->reg = 0;
        in->ea = (uintptr_t)le(p + i, asz);
        in->len = i + asz;
        return 0;
    }
    case 0x0f: {
        uint8_t op2 = p[i++];
        switch (op2) {
        case 0xb6: /* MOVZX r16/32/64, r/m8 */
        case 0xb7: /* MOVZX r32/64, r/m16 */
        case 0xbe: /* MOVSX r16/32/64, r/m8 */
        case 0xbf: /* MOVSX r32/64, r/m16 */
            in->size = (op2 & 1) ? 2 : 1;
            in->dst_size = osz;
            in->sign = op2 >= 0xbe;
            break;
        case 0xc3: /* MOVNTI m32/64, r32/64 */
            if (opsz16)
                return -1;
            in->size = osz, in->is_write = 1;
            break;
        default:
            return -1;
        }
        break;
    }
    default:
        if (op < 0x40 && (op & 7) < 4) { /* 00..3B /r: ADD OR ADC SBB AND SUB XOR CMP, either direction */
            in->kind = K_ALU, in->alu = op >> 3, in->mem_dst = !(op & 2);
            in->size = (op & 1) ? osz : 1;
            break;
        }
        return -1;
    }

    /* ModRM, SIB, displacement (SDM vol. 2 tables 2-2 and 2-3, REX extensions 2-4/2-5) */
    uint8_t modrm = p[i++];
    unsigned mod = modrm >> 6, rm = modrm & 7;
    in->reg = (int)((modrm >> 3) & 7) | ((rex & REX_R) ? 8 : 0);
    if (mod == 3)
        return -1; /* register operand: not a memory access */
    unsigned ext = (modrm >> 3) & 7; /* opcode extension of group opcodes */
    if (grp == 0xc6 && ext != 0)
        return -1; /* C6/C7, F6/F7 with /1../7 are other instructions */
    if (grp == 0x80)
        in->alu = (int)ext;
    if (grp == 0xfe) {
        if (ext > 1)
            return -1; /* FF /2.. are CALL, JMP, PUSH */
        in->alu = ext ? ALU_DEC : ALU_INC;
    }
    if (lock && !(in->kind == K_XCHG || (in->kind == K_ALU && in->alu != ALU_CMP && in->alu != ALU_TEST)))
        return -1; /* LOCK only on read-modify-write forms (#UD otherwise) */

    uint64_t ea = 0;
    int riprel = 0, disp32 = mod == 2;
    if (rm == 4) {
        uint8_t sib = p[i++];
        unsigned idx = ((sib >> 3) & 7) | ((rex & REX_X) ? 8 : 0), base = sib & 7;
        if (idx != 4) /* index 100 without REX.X: none; r12 is a valid index */
            ea += (uint64_t)g[greg_of[idx]] << (sib >> 6);
        if (base == 5 && mod == 0)
            disp32 = 1; /* no base, disp32 (also with REX.B: r13 needs mod 01) */
        else
            ea += (uint64_t)g[greg_of[base | ((rex & REX_B) ? 8 : 0)]];
    } else if (rm == 5 && mod == 0) {
        riprel = disp32 = 1; /* RIP + disp32, RIP of the next instruction */
    } else {
        ea += (uint64_t)g[greg_of[rm | ((rex & REX_B) ? 8 : 0)]];
    }
    if (mod == 1)
        ea += sext(p[i], 1), i += 1;
    else if (disp32)
        ea += sext(le(p + i, 4), 4), i += 4;

    if (immsz) {
        in->imm = sext(le(p + i, immsz), immsz); /* imm8 of 83, imm32 with REX.W: sign-extended */
        i += immsz;
    }
    in->len = i;
    if (riprel)
        ea += (uint64_t)(uintptr_t)p + i;
    in->ea = (uintptr_t)(addr32 ? ea & 0xffffffffull : ea);
    return 0;
}

/* ---- ALU forms: run the same operation on registers, so result and flags are the CPU's ---- */

#define RFLAGS_ARITH 0x8d5ull /* OF SF ZF AF PF CF */

/* rsp is moved past the red zone before pushfq: the compiler may keep data there */
#define ALU_ASM(mn, sfx, m)                                                                     \
    __asm__("bt $0, %[cf]\n\t" mn sfx " %" m "[b], %" m "[a]\n\t"                              \
            "lea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %[fl]\n\tlea 128(%%rsp), %%rsp"           \
            : [a] "+q"(a), [fl] "=r"(fl)                                                         \
            : [b] "q"(b), [cf] "r"(cf)                                                           \
            : "cc")
#define ALU_ASM1(mn, sfx, m)                                                                    \
    __asm__("bt $0, %[cf]\n\t" mn sfx " %" m "[a]\n\t"                                          \
            "lea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %[fl]\n\tlea 128(%%rsp), %%rsp"           \
            : [a] "+q"(a), [fl] "=r"(fl)                                                         \
            : [cf] "r"(cf)                                                                       \
            : "cc")
#define ALU_SIZES(ASM, mn)              \
    switch (size) {                     \
    case 1: ASM(mn, "b", "b"); break;   \
    case 2: ASM(mn, "w", "w"); break;   \
    case 4: ASM(mn, "l", "k"); break;   \
    default: ASM(mn, "q", "q"); break;  \
    }

/* a OP b at `size` bytes with carry-in cf (ADC, SBB; INC/DEC keep it); *flags gets RFLAGS */
static uint64_t alu_native(int op, unsigned size, uint64_t a, uint64_t b, uint64_t cf, uint64_t *flags)
{
    uint64_t fl = 0;
    switch (op) {
    case ALU_ADD: ALU_SIZES(ALU_ASM, "add") break;
    case ALU_OR: ALU_SIZES(ALU_ASM, "or") break;
    case ALU_ADC: ALU_SIZES(ALU_ASM, "adc") break;
    case ALU_SBB: ALU_SIZES(ALU_ASM, "sbb") break;
    case ALU_AND: case ALU_TEST: ALU_SIZES(ALU_ASM, "and") break;
    case ALU_SUB: case ALU_CMP: ALU_SIZES(ALU_ASM, "sub") break;
    case ALU_XOR: ALU_SIZES(ALU_ASM, "xor") break;
    case ALU_INC: ALU_SIZES(ALU_ASM1, "inc") break;
    case ALU_DEC: ALU_SIZES(ALU_ASM1, "dec") break;
    }
    *flags = fl;
    return a & size_mask(size);
}

/* ---- signal delivery as the kernel would do it ---- */

static int default_action(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    return real_sigaction()(sig, &dfl, NULL);
}

/* Run a program handler for sig the way the kernel sets one up: mask = interrupted mask +
 * sa_mask + sig (unless SA_NODEFER), SA_RESETHAND honoured, SA_SIGINFO picks the calling
 * convention. SIGSEGV itself is never really blocked: MMIO must keep working inside the
 * handler and after it siglongjmp()s out without restoring the mask (a blocked SIGSEGV
 * fault kills). */
static void invoke(const struct sigaction *act, int sig, siginfo_t *si, ucontext_t *uc)
{
    sigset_t m = uc->uc_sigmask, old;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&act->sa_mask, s) == 1)
            sigaddset(&m, s);
    if (!(act->sa_flags & SA_NODEFER))
        sigaddset(&m, sig);
    sigdelset(&m, SIGSEGV);
    if (act->sa_flags & SA_RESETHAND) {
        if (sig == SIGSEGV) {
            sigset_t saved;
            lock_take(&prog_lock, &saved);
            seq_write_begin(&prog_seq);
            memset(&prog_segv, 0, sizeof prog_segv);
            prog_segv.sa_handler = SIG_DFL;
            seq_write_end(&prog_seq);
            lock_drop(&prog_lock, &saved);
        } else {
            default_action(sig);
        }
    }
    thread_mask(SIG_SETMASK, &m, &old);
    if (act->sa_flags & SA_SIGINFO)
        act->sa_sigaction(sig, si, uc);
    else
        act->sa_handler(sig);
    thread_mask(SIG_SETMASK, &old, NULL);
}

/* A refused access: the program's SIGBUS disposition, BUS_ADRERR at the faulting address.
 * We never install a SIGBUS handler, so the kernel's disposition is the program's. Blocked or
 * ignored behaves as the kernel's force_sig_fault(): reset to default and kill. If the
 * handler returns, we return without advancing RIP: the access is retried, as on hardware. */
static void deliver_sigbus(uintptr_t addr, ucontext_t *uc)
{
    struct sigaction act;
    if (real_sigaction()(SIGBUS, NULL, &act) != 0 || sigismember(&uc->uc_sigmask, SIGBUS) == 1 ||
        act.sa_handler == SIG_DFL || act.sa_handler == SIG_IGN) {
        sigset_t bus;
        default_action(SIGBUS);
        sigemptyset(&bus);
        sigaddset(&bus, SIGBUS);
        thread_mask(SIG_UNBLOCK, &bus, NULL);
        raise(SIGBUS);
        return; /* not reached */
    }
    siginfo_t bi;
    memset(&bi, 0, sizeof bi);
    bi.si_signo = SIGBUS;
    bi.si_code = BUS_ADRERR;
    bi.si_addr = (void *)addr;
    invoke(&act, SIGBUS, &bi, uc);
}

/* Not an MMIO access: what the program's own disposition would have done. */
static void chain_segv(int sig, siginfo_t *si, ucontext_t *uc)
{
    struct sigaction act;
    prog_segv_get(&act);
    int is_dfl = act.sa_handler == SIG_DFL, is_ign = act.sa_handler == SIG_IGN; /* whatever SA_SIGINFO says */
    if (!is_dfl && !is_ign) {
        invoke(&act, sig, si, uc);
        return;
    }
    if (is_ign && si->si_code <= 0)
        return; /* sent by kill()/sigqueue(): really ignored */
    default_action(sig);
    if (si->si_code <= 0)
        raise(sig); /* not a fault: nothing re-executes; pending until we return, then kills */
    /* a fault: returning re-executes the instruction, which now kills as SIG_DFL would
     * (an ignored fault kills too: force_sig_fault resets it to the default) */
}

static void write_hex(char *buf, unsigned *n, uint64_t v, int digits)
{
    for (int d = digits - 1; d >= 0; d--)
        buf[(*n)++] = "0123456789abcdef"[(v >> (4 * d)) & 15];
}

/* A fault in a registered region that we cannot emulate: say so on stderr (write(2) only). */
static void report_undecodable(uintptr_t rip, uintptr_t addr)
{
    char buf[160];
    unsigned n = 0;
    const char *a = "vfio-twin mmio: cannot emulate access to 0x", *b = " by instruction at 0x", *c = ":";
    for (; *a; a++) buf[n++] = *a;
    write_hex(buf, &n, addr, 16);
    for (; *b; b++) buf[n++] = *b;
    write_hex(buf, &n, rip, 16);
    for (; *c; c++) buf[n++] = *c;
    int avail = (int)(4096 - (rip & 4095)); /* the next page may be unmapped: never fault here */
    for (int k = 0; k < 15 && k < avail; k++) {
        buf[n++] = ' ';
        write_hex(buf, &n, ((const uint8_t *)rip)[k], 2);
    }
    buf[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, n);
    (void)r;
}

/* 1 when the fault was an MMIO access (emulated, or turned into the program's SIGBUS). */
static int emulate(siginfo_t *si, ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    uintptr_t fault = (uintptr_t)si->si_addr, rip = (uintptr_t)g[REG_RIP];
    struct region r;
    if (si->si_code <= 0 || !region_find(fault, 1, &r))
        return 0;
    if (region_find(rip, 1, &r))
        return 0; /* instruction fetch from a BAR */
    struct insn in;
    if (decode((const uint8_t *)rip, g, &in) != 0) {
        report_undecodable(rip, fault);
        return 0;
    }
    uintptr_t ea = in.seg ? fault : in.ea; /* FS/GS base unknown here: trust the fault address */
    if (fault - ea >= in.size || !region_find(ea, in.size, &r)) {
        report_undecodable(rip, fault); /* straddles a region boundary, or decoder disagrees */
        return 0;
    }
    uint64_t mask = size_mask(in.size), off = ea - r.start, val = 0;
    uint64_t other = in.is_imm ? in.imm & mask : reg_get(g, in.reg, in.size, in.rex);
    if (in.kind == K_MOV) {
        if (in.is_write)
            val = other;
        if (r.fn(r.cookie, off, in.size, in.is_write, &val) != 0)
            goto bus_error;
        if (!in.is_write) {
            val &= mask;
            if (in.sign)
                val = sext(val, in.size);
            reg_put(g, in.reg, in.dst_size, in.rex, val);
        }
    } else {
        /* read-modify-write as two device accesses; LOCK cannot make them atomic for the
         * device model (a locked access to UC memory is not either, on the bus) */
        if (r.fn(r.cookie, off, in.size, 0, &val) != 0)
            goto bus_error;
        val &= mask;
        if (in.kind == K_XCHG) {
            uint64_t w = other;
            if (r.fn(r.cookie, off, in.size, 1, &w) != 0)
                goto bus_error;
            reg_put(g, in.reg, in.size, in.rex, val);
        } else {
            uint64_t fl, a = in.mem_dst ? val : other, b = in.mem_dst ? other : val;
            uint64_t res = alu_native(in.alu, in.size, a, b, (uint64_t)g[REG_EFL] & 1, &fl);
            if (in.alu != ALU_CMP && in.alu != ALU_TEST) {
                if (!in.mem_dst)
                    reg_put(g, in.reg, in.size, in.rex, res);
                else if (r.fn(r.cookie, off, in.size, 1, &res) != 0)
                    goto bus_error;
            }
            g[REG_EFL] = (greg_t)(((uint64_t)g[REG_EFL] & ~RFLAGS_ARITH) | (fl & RFLAGS_ARITH));
        }
    }
    g[REG_RIP] = (greg_t)(rip + in.len);
    return 1;

bus_error:
    deliver_sigbus(fault, uc);
    return 1;
}

static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
    int saved_errno = errno;
    if (!emulate(si, ctx))
        chain_segv(sig, si, ctx);
    errno = saved_errno;
}

/* ---- interposed signal API: SIGSEGV is ours once mmio_init ran; the program sees and
 * changes only its recorded disposition. Other signals go straight through. ---- */

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    sigaction_fn real = real_sigaction();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (sig != SIGSEGV || __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 0)
        return real(sig, act, oldact);
    struct sigaction n, o;
    if (act)
        n = *act; /* act and oldact may alias; user memory is touched outside the lock */
    sigset_t saved;
    lock_take(&prog_lock, &saved);
    o = prog_segv;
    if (act) {
        seq_write_begin(&prog_seq);
        prog_segv = n;
        sigdelset(&prog_segv.sa_mask, SIGKILL); /* as the kernel stores it */
        sigdelset(&prog_segv.sa_mask, SIGSTOP);
        seq_write_end(&prog_seq);
        install_ours(n.sa_flags);
    }
    lock_drop(&prog_lock, &saved);
    if (oldact)
        *oldact = o;
    return 0;
}

/* A thread that blocks SIGSEGV (sigfillset() + pthread_sigmask() is a common idiom for worker
 * threads) would be killed by its first MMIO access: the kernel does not deliver a blocked
 * synchronous fault. On hardware that access just works, so SIGSEGV is left out of every mask
 * the program sets once mmio_init() ran. */
static const sigset_t *strip_segv(int how, const sigset_t *set, sigset_t *copy)
{
    if (!set || how == SIG_UNBLOCK || __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2 || sigismember(set, SIGSEGV) != 1)
        return set;
    *copy = *set;
    sigdelset(copy, SIGSEGV);
    return copy;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    sigmask_fn real = real_mask_fn(&real_sigprocmask_p, "sigprocmask");
    sigset_t copy;
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(how, strip_segv(how, set, &copy), old);
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    sigmask_fn real = real_mask_fn(&real_pthread_sigmask_p, "pthread_sigmask");
    sigset_t copy;
    if (!real)
        return ENOSYS;
    return real(how, strip_segv(how, set, &copy), old);
}

static sighandler_t set_handler(int sig, sighandler_t h, int flags, int mask_self)
{
    struct sigaction a, o;
    memset(&a, 0, sizeof a);
    a.sa_handler = h;
    a.sa_flags = flags;
    sigemptyset(&a.sa_mask);
    if (mask_self && sigaddset(&a.sa_mask, sig) < 0)
        return SIG_ERR;
    if (sigaction(sig, &a, &o) < 0)
        return SIG_ERR;
    return o.sa_handler;
}

/* glibc's signal(): BSD semantics (handler stays, signal masked while it runs, SA_RESTART) */
sighandler_t signal(int sig, sighandler_t h) { return set_handler(sig, h, SA_RESTART, 1); }
sighandler_t bsd_signal(int sig, sighandler_t h) { return set_handler(sig, h, SA_RESTART, 1); }
/* System V semantics; strict ISO C programs reach this through the signal -> __sysv_signal redirect */
sighandler_t sysv_signal(int sig, sighandler_t h) { return set_handler(sig, h, SA_RESETHAND | SA_NODEFER, 0); }
sighandler_t __sysv_signal(int sig, sighandler_t h);
sighandler_t __sysv_signal(int sig, sighandler_t h) { return set_handler(sig, h, SA_RESETHAND | SA_NODEFER, 0); }

/* glibc's sigset(), over our sigaction */
sighandler_t sigset(int sig, sighandler_t disp)
{
    sigset_t set, oset;
    if (sigemptyset(&set) < 0 || sigaddset(&set, sig) < 0)
        return SIG_ERR;
    if (disp == SIG_HOLD) {
        struct sigaction o;
        if (sigprocmask(SIG_BLOCK, &set, &oset) < 0)
            return SIG_ERR;
        if (sigismember(&oset, sig))
            return SIG_HOLD;
        if (sigaction(sig, NULL, &o) < 0)
            return SIG_ERR;
        return o.sa_handler;
    }
    sighandler_t old = set_handler(sig, disp, 0, 0);
    if (old == SIG_ERR || sigprocmask(SIG_UNBLOCK, &set, &oset) < 0)
        return SIG_ERR;
    return sigismember(&oset, sig) ? SIG_HOLD : old;
}

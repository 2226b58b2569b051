/* What GCC's unwinder needs from glibc, over bionic, for linking libelectra.so for Android
 * without the NDK (scripts/android-aar.sh, scripts/android/link.sh).
 *
 * The unwinder linked into the Android libelectra.so is GCC's (libgcc_eh.a of Debian's
 * gcc-aarch64-linux-gnu / the host gcc; the NDK before r23 shipped the same unwinder). GCC 12
 * built against glibc >= 2.35 finds a PC's unwind tables with glibc's _dl_find_object, which
 * bionic does not have; this is that function for bionic, over dl_iterate_phdr (in libc.so since
 * API 21 on 64-bit ABIs). It is hidden: it never leaves libelectra.so.
 *
 * __pthread_key_create: GCC's threads layer (gthr-posix.h) takes a weak reference to it as its
 * "is libpthread linked?" test; glibc has it, bionic does not, and without it the unwinder
 * would skip its locks (pthread_once, the FDE registry mutex). Defined here (hidden), over
 * bionic's pthread_key_create, the unwinder uses them as on glibc. The static mutex and once
 * initialisers GCC compiled in are all-zero, as bionic's PTHREAD_MUTEX_INITIALIZER and
 * PTHREAD_ONCE_INIT are.
 *
 * Self-contained (no libc headers): struct layouts as in glibc's <dlfcn.h> (aarch64, x86_64: no
 * dlfo_eh_dbase) and the first four fields of struct dl_phdr_info, identical in bionic. */
#include <stddef.h>
#include <stdint.h>

#define PT_LOAD 1u
#define PT_GNU_EH_FRAME 0x6474e550u

struct elf64_phdr {
    uint32_t p_type, p_flags;
    uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
};

struct dl_phdr_info {
    uint64_t dlpi_addr;
    const char *dlpi_name;
    const struct elf64_phdr *dlpi_phdr;
    uint16_t dlpi_phnum;
};

struct dl_find_object {
    unsigned long long dlfo_flags;
    void *dlfo_map_start;
    void *dlfo_map_end;
    void *dlfo_link_map;
    void *dlfo_eh_frame;
    unsigned long long dlfo_reserved[7];
};

extern int pthread_key_create(unsigned *key, void (*destructor)(void *));

__attribute__((visibility("hidden"))) int __pthread_key_create(unsigned *key, void (*destructor)(void *)) {
    return pthread_key_create(key, destructor);
}

extern int dl_iterate_phdr(int (*callback)(struct dl_phdr_info *, size_t, void *), void *data);

struct query {
    uintptr_t pc;
    struct dl_find_object *result;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data) {
    struct query *q = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    void *eh_frame = NULL;
    int contains = 0;
    (void)size;
    for (uint16_t i = 0; i < info->dlpi_phnum; i++) {
        const struct elf64_phdr *p = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)(info->dlpi_addr + p->p_vaddr);
        if (p->p_type == PT_LOAD) {
            uintptr_t end = start + (uintptr_t)p->p_memsz;
            if (start < lo) lo = start;
            if (end > hi) hi = end;
            if (q->pc >= start && q->pc < end) contains = 1;
        } else if (p->p_type == PT_GNU_EH_FRAME) {
            eh_frame = (void *)start;
        }
    }
    if (!contains) return 0;
    q->result->dlfo_flags = 0;
    q->result->dlfo_map_start = (void *)lo;
    q->result->dlfo_map_end = (void *)hi;
    q->result->dlfo_link_map = NULL;
    q->result->dlfo_eh_frame = eh_frame;
    return 1;
}

/* 0 and *result filled when pc lies in a loaded object, -1 otherwise (as glibc's). */
__attribute__((visibility("hidden"))) int _dl_find_object(void *pc, struct dl_find_object *result) {
    struct query q = {(uintptr_t)pc, result};
    return dl_iterate_phdr(find_object, &q) ? 0 : -1;
}

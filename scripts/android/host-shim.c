/* Bionic over glibc, for the smoke test of scripts/android-aar.sh: the x86_64 Android
 * libelectra.so loaded on an x86-64 Linux host (examples/infer.c and a panic caught across GCC's
 * unwinder). Built as a "libc.so" (Android's soname) that depends on glibc's libc.so.6 and is
 * preloaded (LD_PRELOAD), so its definitions come first:
 *   - the bionic functions glibc lacks: __errno, __system_property_get;
 *   - those whose ABI differs: sysconf (bionic numbers its _SC_* names differently) and
 *     strerror_r (bionic's is the POSIX one; glibc's strerror_r symbol is the GNU one).
 * Everything else the library uses (file, memory, thread and clock calls) has the same
 * x86-64 ABI in both (kernel structures and constants). Test-only: never shipped. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

int *__errno(void) { return &errno; }

/* No Android system properties here: every property reads as absent (length 0). */
int __system_property_get(const char *name, char *value) {
    (void)name;
    value[0] = '\0';
    return 0;
}

extern long __sysconf(int name);

/* bionic's <bits/sysconf.h> numbers -> glibc's <bits/confname.h> numbers. */
long sysconf(int name) {
    switch (name) {
    case 0x0027: /* _SC_PAGESIZE */
    case 0x0028: /* _SC_PAGE_SIZE */
        return __sysconf(30);
    case 0x0060: return __sysconf(83); /* _SC_NPROCESSORS_CONF */
    case 0x0061: return __sysconf(84); /* _SC_NPROCESSORS_ONLN */
    case 0x0062: return __sysconf(85); /* _SC_PHYS_PAGES */
    case 0x0063: return __sysconf(86); /* _SC_AVPHYS_PAGES */
    default:
        fprintf(stderr, "host-shim: bionic sysconf(%#x) is not translated; add it to scripts/android/host-shim.c\n", name);
        errno = EINVAL;
        return -1;
    }
}

extern int __xpg_strerror_r(int errnum, char *buf, size_t len);

int strerror_r(int errnum, char *buf, size_t len) { return __xpg_strerror_r(errnum, buf, len); }

#!/usr/bin/env python3
"""Mach-O static libraries and the XCFramework, without Xcode (scripts/ios-xcframework.sh).

  xcframework.py fat OUT IN.a...         universal (fat) archive of thin archives, as `lipo -create`
  xcframework.py inspect LIB.a           architectures, platforms, exported electra_* functions
  xcframework.py plist XCF SLICE...      writes XCF/Info.plist; SLICE = id:library:arch,arch[:simulator]
  xcframework.py check XCF SYMBOLS.txt   checks the plist, every slice's architectures and platform
                                         and its electra_* functions against SYMBOLS.txt
  xcframework.py selftest DIR            fat + inspect on tiny llvm-mc objects (arm64 and x86_64
                                         simulator), when llvm-mc and llvm-ar exist

Only the standard library: the archive ("!<arch>", BSD and GNU member names), Mach-O 64-bit
headers, LC_BUILD_VERSION / LC_VERSION_MIN_* (platform), LC_SYMTAB (nlist_64), the fat header
(big-endian fat_header + fat_arch records, each slice aligned to 2^14 as lipo does for arm64).
"""
import os
import plistlib
import struct
import subprocess
import sys
import tempfile

CPU_ARM64 = 0x0100000C
CPU_X86_64 = 0x01000007
ARCH_NAMES = {CPU_ARM64: "arm64", CPU_X86_64: "x86_64"}
PLATFORMS = {1: "macos", 2: "ios", 3: "tvos", 4: "watchos", 6: "maccatalyst", 7: "ios-simulator"}
FAT_MAGIC = 0xCAFEBABE
MH_MAGIC_64 = 0xFEEDFACF
LC_SYMTAB, LC_VERSION_MIN_IPHONEOS, LC_BUILD_VERSION = 0x2, 0x25, 0x32
ALIGN = 14


def die(msg):
    print(f"xcframework.py: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def archive_members(data):
    """(name, bytes) of each member of a thin ar archive."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos, longnames = 8, b""
    while pos + 60 <= len(data):
        hdr = data[pos : pos + 60]
        name = hdr[:16].decode("latin-1").rstrip()
        size = int(hdr[48:58].decode().strip())
        body = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name.startswith("#1/"):  # BSD: the name leads the body
            n = int(name[3:])
            name, body = body[:n].rstrip(b"\0").decode("latin-1"), body[n:]
        elif name == "//":
            longnames = body
            continue
        elif name.startswith("/") and name[1:].isdigit():
            off = int(name[1:])
            name = longnames[off : longnames.index(b"/\n", off)].decode("latin-1")
        if name in ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED", "__.SYMDEF_64", "__.SYMDEF_64 SORTED"):
            continue
        yield name.rstrip("/"), body


def macho_info(obj):
    """(cputype, cpusubtype, platform or None, [exported symbol names]) of a 64-bit Mach-O object."""
    magic, cputype, cpusub, _ft, ncmds, _size, _flags, _res = struct.unpack_from("<8I", obj, 0)
    if magic != MH_MAGIC_64:
        return None
    off, platform, syms = 32, None, []
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<2I", obj, off)
        if cmd == LC_BUILD_VERSION:
            platform = struct.unpack_from("<I", obj, off + 8)[0]
        elif cmd == LC_VERSION_MIN_IPHONEOS and platform is None:
            platform = 2  # the old command says iOS (devices and, before LC_BUILD_VERSION, simulators)
        elif cmd == LC_SYMTAB:
            symoff, nsyms, stroff, _strsize = struct.unpack_from("<4I", obj, off + 8)
            for i in range(nsyms):
                strx, ntype, _sect, _desc, _value = struct.unpack_from("<IBBHQ", obj, symoff + 16 * i)
                # N_EXT, not N_PEXT, defined in a section (N_SECT): an exported definition.
                if ntype & 0x01 and not ntype & 0x10 and ntype & 0x0E == 0x0E:
                    end = obj.index(b"\0", stroff + strx)
                    syms.append(obj[stroff + strx : end].decode("latin-1"))
        off += cmdsize
    return cputype, cpusub & 0x00FFFFFF, platform, syms


def thin_archives(data):
    """[(cputype or None, thin archive bytes)] of a thin or fat archive."""
    if struct.unpack_from(">I", data, 0)[0] == FAT_MAGIC:
        n = struct.unpack_from(">I", data, 4)[0]
        out = []
        for i in range(n):
            cputype, _sub, off, size, _align = struct.unpack_from(">5I", data, 8 + 20 * i)
            out.append((cputype, data[off : off + size]))
        return out
    return [(None, data)]


def inspect(path):
    """{arch: {"platforms": set, "symbols": set, "objects": n, "fat_cputype": c}} of a .a file."""
    with open(path, "rb") as f:
        data = f.read()
    result = {}
    for fat_cpu, thin in thin_archives(data):
        for name, body in archive_members(thin):
            info = macho_info(body)
            if info is None:
                continue
            cputype, _sub, platform, syms = info
            arch = ARCH_NAMES.get(cputype, hex(cputype))
            if fat_cpu is not None and fat_cpu != cputype:
                die(f"{path}: member {name} is {arch} inside the fat slice {ARCH_NAMES.get(fat_cpu, hex(fat_cpu))}")
            r = result.setdefault(arch, {"platforms": set(), "symbols": set(), "objects": 0})
            r["objects"] += 1
            r["platforms"].add(PLATFORMS.get(platform, str(platform)) if platform is not None else "none")
            r["symbols"].update(s[1:] for s in syms if s.startswith("_electra_"))
    return result


def fat(out, inputs):
    slices = []
    for path in inputs:
        with open(path, "rb") as f:
            data = f.read()
        first = next((macho_info(b) for _n, b in archive_members(data) if macho_info(b)), None)
        if first is None:
            die(f"{path}: no Mach-O object")
        slices.append((first[0], first[1], data))
    if len({s[0] for s in slices}) != len(slices):
        die("two inputs have the same architecture")
    slices.sort(key=lambda s: s[0])
    header = struct.pack(">2I", FAT_MAGIC, len(slices))
    offset, records, body = 8 + 20 * len(slices), [], b""
    for cputype, sub, data in slices:
        pad = -offset % (1 << ALIGN)
        body += b"\0" * pad
        offset += pad
        records.append(struct.pack(">5I", cputype, sub, offset, len(data), ALIGN))
        body += data
        offset += len(data)
    with open(out, "wb") as f:
        f.write(header + b"".join(records) + body)


def write_plist(xcf, specs):
    libs = []
    for spec in specs:
        parts = spec.split(":")
        ident, lib, archs = parts[0], parts[1], parts[2].split(",")
        entry = {
            "BinaryPath": lib,
            "HeadersPath": "Headers",
            "LibraryIdentifier": ident,
            "LibraryPath": lib,
            "SupportedArchitectures": archs,
            "SupportedPlatform": "ios",
        }
        if len(parts) > 3 and parts[3] == "simulator":
            entry["SupportedPlatformVariant"] = "simulator"
        libs.append(entry)
    plist = {"AvailableLibraries": libs, "CFBundlePackageType": "XFWK", "XCFrameworkFormatVersion": "1.0"}
    with open(os.path.join(xcf, "Info.plist"), "wb") as f:
        plistlib.dump(plist, f, fmt=plistlib.FMT_XML)


def check(xcf, symbols_txt):
    with open(symbols_txt) as f:
        want = {line.strip() for line in f if line.strip()}
    with open(os.path.join(xcf, "Info.plist"), "rb") as f:
        plist = plistlib.load(f)
    if plist.get("CFBundlePackageType") != "XFWK" or plist.get("XCFrameworkFormatVersion") != "1.0":
        die("Info.plist: CFBundlePackageType must be XFWK and XCFrameworkFormatVersion 1.0")
    libs = plist.get("AvailableLibraries")
    if not libs:
        die("Info.plist: no AvailableLibraries")
    for lib in libs:
        for key in ("LibraryIdentifier", "LibraryPath", "HeadersPath", "SupportedArchitectures", "SupportedPlatform"):
            if key not in lib:
                die(f"Info.plist: {lib.get('LibraryIdentifier')} has no {key}")
        ident, sim = lib["LibraryIdentifier"], lib.get("SupportedPlatformVariant") == "simulator"
        if lib["SupportedPlatform"] != "ios" or lib.get("SupportedPlatformVariant") not in (None, "simulator"):
            die(f"Info.plist: {ident}: platform {lib['SupportedPlatform']} {lib.get('SupportedPlatformVariant')}")
        archs = sorted(lib["SupportedArchitectures"])
        expect_id = "ios-" + "_".join(archs) + ("-simulator" if sim else "")
        if ident != expect_id:
            die(f"Info.plist: LibraryIdentifier {ident}, expected {expect_id}")
        base = os.path.join(xcf, ident)
        headers = os.path.join(base, lib["HeadersPath"])
        for h in ("electra.h", "module.modulemap"):
            if not os.path.isfile(os.path.join(headers, h)):
                die(f"{ident}: no {lib['HeadersPath']}/{h}")
        with open(os.path.join(headers, "module.modulemap")) as f:
            mm = " ".join(f.read().split())
        if mm != 'module Electra { header "electra.h" export * }':
            die(f"{ident}: module.modulemap is not the Electra module: {mm}")
        info = inspect(os.path.join(base, lib["LibraryPath"]))
        if sorted(info) != archs:
            die(f"{ident}: the library holds {sorted(info)}, the plist says {archs}")
        platform = "ios-simulator" if sim else "ios"
        for arch, r in sorted(info.items()):
            other = r["platforms"] - {platform, "none"}
            if other or platform not in r["platforms"]:
                die(f"{ident} {arch}: object platforms {sorted(r['platforms'])}, expected {platform}")
            if r["symbols"] != want:
                die(f"{ident} {arch}: electra_* functions differ from {symbols_txt}: "
                    f"missing {sorted(want - r['symbols'])}, extra {sorted(r['symbols'] - want)}")
            print(f"{ident}/{lib['LibraryPath']}: {arch}, {r['objects']} objects, platform {platform}, "
                  f"{len(r['symbols'])} electra_* = {os.path.basename(symbols_txt)}")
    print(f"{xcf}/Info.plist: XFWK 1.0, {len(libs)} libraries: " + ", ".join(l["LibraryIdentifier"] for l in libs))


def selftest(d):
    """fat() and inspect() on two one-function archives assembled by llvm-mc (simulator arm64, x86_64)."""
    os.makedirs(d, exist_ok=True)
    archives = []
    for arch, triple, insn in (("arm64", "arm64-apple-ios13.0-simulator", "ret"),
                               ("x86_64", "x86_64-apple-ios13.0-simulator", "retq")):
        src, obj, lib = (os.path.join(d, f"{arch}.{e}") for e in ("s", "o", "a"))
        with open(src, "w") as f:
            f.write(f".globl _electra_selftest\n_electra_selftest:\n  {insn}\n")
        subprocess.run(["llvm-mc", "-filetype=obj", f"-triple={triple}", src, "-o", obj], check=True)
        if os.path.exists(lib):
            os.remove(lib)
        subprocess.run(["llvm-ar", "rcs", "--format=darwin", lib, obj], check=True)
        archives.append(lib)
    out = os.path.join(d, "fat.a")
    fat(out, archives)
    info = inspect(out)
    ok = sorted(info) == ["arm64", "x86_64"] and all(
        r["platforms"] == {"ios-simulator"} and r["symbols"] == {"electra_selftest"} for r in info.values())
    if not ok:
        die(f"selftest: the fat archive reads back as {info}")
    lipo = next((p for p in ("llvm-lipo", "llvm-lipo-14") if subprocess.run(["sh", "-c", f"command -v {p}"],
                                                                             capture_output=True).returncode == 0), None)
    if lipo:
        archs = subprocess.run([lipo, "-archs", out], check=True, capture_output=True, text=True).stdout.split()
        if sorted(archs) != ["arm64", "x86_64"]:
            die(f"selftest: {lipo} -archs says {archs}")
        print(f"selftest: fat archive arm64 + x86_64 (ios-simulator objects) read back, and by {lipo}: {' '.join(archs)}")
    else:
        print("selftest: fat archive arm64 + x86_64 (ios-simulator objects) read back (no llvm-lipo to cross-check)")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "fat":
        fat(args[0], args[1:])
    elif cmd == "inspect":
        for arch, r in sorted(inspect(args[0]).items()):
            print(f"{arch}: {r['objects']} objects, platforms {sorted(r['platforms'])}, {len(r['symbols'])} electra_*")
    elif cmd == "plist":
        write_plist(args[0], args[1:])
    elif cmd == "check":
        check(args[0], args[1])
    elif cmd == "selftest":
        selftest(args[0] if args else tempfile.mkdtemp())
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)

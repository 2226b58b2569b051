#!/usr/bin/env python3
"""Checks that every native method of classes.jar has its JNI entry point in libelectra.so.

  jni-names.py CLASSES_DIR EXPORTS.txt

CLASSES_DIR: the compiled binding (scripts/android-aar.sh's javac output); EXPORTS.txt: the
library's exported function names, one a line. Native methods are read with `javap -p`; a
method is found when the library exports its short JNI name (Java_<class>_<method>) or its long
one (…__<argument signature>), mangled as the JNI specification says (_1 for '_', _2 for ';',
_3 for '[', _0xxxx for other non-ASCII-alphanumerics). With JNI_OnLoad exported the methods may
be registered at load time instead (RegisterNatives), so missing names are then only listed.
"""
import os
import re
import subprocess
import sys

PRIMS = {"boolean": "Z", "byte": "B", "char": "C", "short": "S", "int": "I", "long": "J",
         "float": "F", "double": "D", "void": "V"}


def mangle(s):
    out = []
    for ch in s:
        if ch in "./":
            out.append("_")
        elif ch == "_":
            out.append("_1")
        elif ch == ";":
            out.append("_2")
        elif ch == "[":
            out.append("_3")
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append("_0%04x" % ord(ch))
    return "".join(out)


def descriptor(t):
    dims = t.count("[]")
    base = t.replace("[]", "").strip()
    if base.endswith("..."):
        base, dims = base[:-3], dims + 1
    d = PRIMS.get(base) or "L" + base.replace(".", "/") + ";"
    return "[" * dims + d


def main(classes_dir, exports_txt):
    with open(exports_txt) as f:
        exports = {line.strip() for line in f if line.strip()}
    classes = []
    for root, _dirs, files in os.walk(classes_dir):
        for name in files:
            if name.endswith(".class"):
                rel = os.path.relpath(os.path.join(root, name), classes_dir)[: -len(".class")]
                classes.append(rel.replace(os.sep, "."))
    if not classes:
        return 0
    out = subprocess.run(["javap", "-p", "-cp", classes_dir] + sorted(classes), check=True,
                         capture_output=True, text=True).stdout
    cls, methods, missing = None, 0, []
    for line in out.splitlines():
        m = re.match(r"^(?:.*\s)?(?:class|interface|enum)\s+([\w.$]+)", line)
        if m and line.rstrip().endswith("{"):
            cls = m.group(1)
            continue
        m = re.match(r"^\s+.*\bnative\b.*?\s([\w$]+)\((.*)\)", line)
        if not m or cls is None:
            continue
        methods += 1
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",") if a.strip()]
        short = "Java_" + mangle(cls.replace(".", "/")) + "_" + mangle(name)
        long_ = short + "__" + mangle("".join(descriptor(a) for a in args))
        if short not in exports and long_ not in exports:
            missing.append(f"{cls}.{name}({', '.join(args)}) -> {short}")
    registered = "JNI_OnLoad" in exports
    for m in missing:
        print(("not exported (JNI_OnLoad may register it): " if registered else "MISSING: ") + m)
    print(f"jni-names: {methods} native methods, {methods - len(missing)} with an exported Java_* entry point"
          + (f", {len(missing)} left to JNI_OnLoad" if registered and missing else ""))
    return 1 if missing and not registered else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

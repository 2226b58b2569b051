# libelectra: build and install the C library (docs/INSTALL.md).
#
#   make lib                                  # target/dist/libelectra.{so,a} (fat LTO, stripped)
#   make install PREFIX=/usr/local DESTDIR=   # lib, headers, pkg-config and CMake files
#   make uninstall PREFIX=/usr/local
#   make examples                             # the C/C++ examples against target/release
#   make size                                 # sizes of the built libraries, stripped
#
# Installs:
#   $(LIBDIR)/libelectra.so.$(ABI)            the shared library; its soname is libelectra.so.$(ABI)
#   $(LIBDIR)/libelectra.so -> libelectra.so.$(ABI)   the link-time name (-lelectra)
#   $(LIBDIR)/libelectra.a                    the static library (debug info stripped)
#   $(INCLUDEDIR)/electra.h, electra.hpp      the C header and the C++11 RAII wrapper
#   $(LIBDIR)/pkgconfig/electra.pc            pkg-config --cflags --libs electra
#   $(LIBDIR)/cmake/electra/electraConfig.cmake (+ ConfigVersion)   find_package(electra)
#   $(DOCDIR)/LICENSE                         the Apache License 2.0 (Cargo.toml's license)
#
# PROFILE=dist (Cargo.toml: release + fat LTO, one codegen unit, stripped) builds only the
# cdylib and the staticlib (`cargo rustc --crate-type cdylib,staticlib`): with the rlib among the
# outputs rustc cannot run LTO on them. PROFILE=release gives a quicker, larger build.

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/electra
DOCDIR ?= $(PREFIX)/share/doc/electra
PROFILE ?= dist
CARGO ?= cargo
# Cargo features of the library, e.g. FEATURES=mpi for `"distributed": "mpi"` (docs/DISTRIBUTED.md).
FEATURES ?=
# A cross build: TARGET=aarch64-unknown-linux-gnu STRIP=aarch64-linux-gnu-strip (see scripts/cross-check.sh).
TARGET ?=
STRIP ?= strip
INSTALL ?= install

CARGO_TARGET_DIR ?= target
PROFILE_DIR := $(if $(filter dev test,$(PROFILE)),debug,$(if $(filter bench,$(PROFILE)),release,$(PROFILE)))
OUTDIR := $(CARGO_TARGET_DIR)/$(if $(TARGET),$(TARGET)/)$(PROFILE_DIR)
TARGET_FLAG := $(if $(TARGET),--target $(TARGET))

# The ABI version is the one of src/ffi/mod.rs (as in build.rs, which sets the soname from it).
ABI := $(shell sed -n 's/^pub const ELECTRA_ABI_VERSION: u32 = \([0-9][0-9]*\);.*/\1/p' src/ffi/mod.rs)
VERSION := $(shell sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
SONAME := libelectra.so.$(ABI)

# Paths in the generated files: ${prefix}-relative for pkg-config, list-dir-relative for CMake
# (so an installed tree can be moved).
rel = $(shell realpath -m --relative-to='$(1)' '$(2)')

.PHONY: all lib install install-files uninstall examples size
all: lib

lib:
	@test -n "$(ABI)" || { echo "Makefile: ELECTRA_ABI_VERSION not found in src/ffi/mod.rs" >&2; exit 1; }
	@mkdir -p $(OUTDIR)
	$(CARGO) rustc --profile $(PROFILE) $(TARGET_FLAG) $(if $(FEATURES),--features $(FEATURES)) --lib --crate-type cdylib,staticlib -- \
	  --print native-static-libs 2> $(OUTDIR)/electra-build.log; \
	  rc=$$?; cat $(OUTDIR)/electra-build.log >&2; exit $$rc
	@# "note: native-static-libs: -lgcc_s ..." (cargo replays it on a fresh build).
	@sed -n 's/^note: native-static-libs: //p' $(OUTDIR)/electra-build.log | tail -n 1 > $(OUTDIR)/native-static-libs.tmp
	@if [ -s $(OUTDIR)/native-static-libs.tmp ]; then mv $(OUTDIR)/native-static-libs.tmp $(OUTDIR)/native-static-libs.txt; \
	  else rm -f $(OUTDIR)/native-static-libs.tmp; fi
	@test -s $(OUTDIR)/native-static-libs.txt || { echo "Makefile: rustc printed no native-static-libs" >&2; exit 1; }
	@echo "built $(OUTDIR)/libelectra.so ($(SONAME)) and libelectra.a; static links also need: $$(cat $(OUTDIR)/native-static-libs.txt)"

install: lib install-files

# Installs what `make lib` built (no cargo call: `sudo make install-files` after `make lib`).
install-files:
	@test -f $(OUTDIR)/libelectra.so -a -f $(OUTDIR)/native-static-libs.txt || { echo "run make lib first" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 755 $(OUTDIR)/libelectra.so $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libelectra.so
	$(INSTALL) -m 644 $(OUTDIR)/libelectra.a $(DESTDIR)$(LIBDIR)/libelectra.a
	$(STRIP) --strip-debug $(DESTDIR)$(LIBDIR)/libelectra.a
	$(INSTALL) -m 644 include/electra.h include/electra.hpp $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 LICENSE $(DESTDIR)$(DOCDIR)/LICENSE
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e "s|@NATIVE_STATIC_LIBS@|$$(cat $(OUTDIR)/native-static-libs.txt)|g" \
	    electra.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/electra.pc
	sed -e 's|@PREFIX_FROM_CMAKEDIR@|$(call rel,$(CMAKEDIR),$(PREFIX))|g' \
	    -e 's|@LIBDIR_FROM_PREFIX@|$(call rel,$(PREFIX),$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR_FROM_PREFIX@|$(call rel,$(PREFIX),$(INCLUDEDIR))|g' \
	    -e 's|@ABI@|$(ABI)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e "s|@NATIVE_STATIC_LIBS@|$$(sed 's/^ *//; s/ *$$//; s/ \{1,\}/;/g; s/-l//g' $(OUTDIR)/native-static-libs.txt)|g" \
	    cmake/electraConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/electraConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' cmake/electraConfigVersion.cmake.in \
	    > $(DESTDIR)$(CMAKEDIR)/electraConfigVersion.cmake
	@echo "installed libelectra $(VERSION) (ABI $(ABI)) under $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libelectra.so $(DESTDIR)$(LIBDIR)/libelectra.a
	rm -f $(DESTDIR)$(INCLUDEDIR)/electra.h $(DESTDIR)$(INCLUDEDIR)/electra.hpp
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/electra.pc
	rm -f $(DESTDIR)$(CMAKEDIR)/electraConfig.cmake $(DESTDIR)$(CMAKEDIR)/electraConfigVersion.cmake
	rm -f $(DESTDIR)$(DOCDIR)/LICENSE
	-rmdir $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(DOCDIR) 2>/dev/null

examples:
	$(CARGO) build --release --lib
	$(MAKE) -C examples

# Sizes as shipped: the .so stripped of everything but its dynamic symbols, the .a of debug info.
size:
	@tmp=$$(mktemp -d) && \
	  $(STRIP) -o $$tmp/libelectra.so $(OUTDIR)/libelectra.so && \
	  $(STRIP) --strip-debug -o $$tmp/libelectra.a $(OUTDIR)/libelectra.a && \
	  printf '%-40s %12s %12s\n' "$(OUTDIR)" "as built" "stripped" && \
	  for f in libelectra.so libelectra.a; do \
	    printf '%-40s %12s %12s\n' "$$f" "$$(stat -c %s $(OUTDIR)/$$f)" "$$(stat -c %s $$tmp/$$f)"; \
	  done; rm -rf $$tmp

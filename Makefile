# sync-* directory-sync toolkit.  See README.md.
#
#   make            build bin/ (sync-import, sync-diff, sync-export, sync-role)
#   make check      install missing Debian packages (as root), build, run tests
#   make demo       the same, then run the built-in example
#   make install    PREFIX=/usr/local DESTDIR=  (binaries, sync-cycle, man
#                   pages, and the examples under $(DOCDIR)/examples)
#   make SANITIZE=address,undefined check

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/sync
PKGS     = ldap lber libcurl jansson yaml-0.1 libcrypto
CC      ?= cc

# Debian packages the build needs (by their current names, no
# transitional ones: the same on Debian 12 and Ubuntu 24.04),
# and those the tests and the demo need too.
BUILD_DEBS = build-essential pkgconf libldap-dev libcurl4-openssl-dev \
       libjansson-dev libyaml-dev libssl-dev
DEBS = $(BUILD_DEBS) slapd ldap-utils samba samba-ad-dc \
       samba-ad-provision python3 perl \
       iproute2 procps mandoc curl etcd-server etcd-client

WARN = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
       -Wwrite-strings -Wvla -Wpointer-arith -Wformat=2 -Wundef \
       -Wold-style-definition -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilib \
       $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -pthread
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm

ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
OUT = build-san
else
OUT = build
endif

CMDS    = $(patsubst cmd/%.c,%,$(sort $(wildcard cmd/*.c)))
LIBSRC  = $(sort $(wildcard lib/*.c))
LIBOBJ  = $(LIBSRC:lib/%.c=$(OUT)/lib/%.o)
BINS    = $(CMDS:%=$(OUT)/bin/%)
FUZZSRC = $(sort $(wildcard tests/fuzz/*.c))
FUZZ    = $(FUZZSRC:tests/fuzz/%.c=$(OUT)/fuzz/%)
MAN1    = $(wildcard man/*.1)
MAN5    = $(wildcard man/*.5)
MAN7    = $(wildcard man/*.7)

all: pkgcheck $(BINS) $(FUZZ) bin

pkgcheck:
	@for p in $(PKGS); do \
	  pkg-config --exists $$p || { \
	    echo "make: pkg-config cannot find '$$p'; install the Debian build dependencies:" >&2; \
	    echo "  apt-get install $(BUILD_DEBS)" >&2; exit 2; }; \
	done

# bin/ always points at the tree the last build made, so tests and the
# demo run what was just built, sanitized or not.
bin: $(BINS)
	@ln -sfn $(OUT)/bin bin

$(OUT)/lib/%.o: lib/%.c lib/*.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OUT)/libsync.a: $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

# The version the binaries report (--version): `git describe` in a git
# checkout of this tree ("0.1.0-12-gabc1234-dirty"), else SYNC_VERSION of
# lib/sync.h (a release tarball).  $(OUT)/version is rewritten only when
# the version changes, and only the binaries' own files are compiled with
# it: a commit recompiles four small files, never the library, and a
# build with nothing changed does nothing.
$(OUT)/version: FORCE
	@mkdir -p $(@D)
	@base=$$(sed -n 's/^#define SYNC_VERSION "\(.*\)"$$/\1/p' lib/sync.h); \
	v=$$base; \
	if [ -e .git ] && d=$$(git describe --tags --always --dirty \
	    --match 'v[0-9]*' 2>/dev/null); then \
		case $$d in \
		v[0-9]*) v=$${d#v} ;; \
		*) v=$$base-g$$d ;; \
		esac; \
	fi; \
	v=$$(printf '%s' "$$v" | tr -cd 'A-Za-z0-9._+-'); \
	[ "$$(cat $@ 2>/dev/null)" = "$$v" ] || printf '%s\n' "$$v" >$@

$(OUT)/bin/%: cmd/%.c $(OUT)/libsync.a lib/*.h $(OUT)/version
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DSYNC_BUILD_VERSION="\"$$(cat $(OUT)/version)\"" \
	    $(LDFLAGS) -o $@ $< $(OUT)/libsync.a $(LIBS)

# Fuzz targets are always compiled (as plain programs that read their
# input files) so they do not rot; tests/fuzz/README says how to run them
# under libFuzzer.
$(OUT)/fuzz/%: tests/fuzz/%.c tests/fuzz/main.h $(OUT)/libsync.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(OUT)/libsync.a $(LIBS)

# Installs the Debian packages that are missing; without root, prints
# the one line to run.  scim-deps.sh: node and npm (Debian's, when there
# is no node) and the SCIM test server's npm packages.
deps:
	@sh tests/deps.sh $(DEBS)
	@sh tests/scim-deps.sh

# The package lists, for tests/0005-deps.t and for CI
# (examples/ci-workflow.yml installs the build packages).
print-debs:
	@echo $(DEBS)

print-build-debs:
	@echo $(BUILD_DEBS)

check: deps
	$(MAKE) all
	sh tests/run.sh

demo: deps
	$(MAKE) all
	sh examples/demo.sh

bench: all
	sh bench/run.sh

# The examples that make sense on an installed system, with the
# binaries' directory in the cron file, the systemd units and the CI
# workflow made the installed one.
EXAMPLES = ad-to-entra.yaml openldap-to-entra.yaml sync-cycle.cron \
       sync-cycle.service sync-cycle.timer sync-role-check.service \
       sync-role-check.timer ci-workflow.yml ci-dry-run.sh ci-truncate.sh

# Not "all": installing needs the binaries, not the fuzz targets, and
# must leave bin/ pointing where it did.
install: pkgcheck $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(DOCDIR)/examples
	install -m 755 $(BINS) examples/sync-cycle $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	for f in $(EXAMPLES); do \
	    sed 's|/usr/local/bin|$(BINDIR)|g' examples/$$f \
	        >$(DESTDIR)$(DOCDIR)/examples/$$f && \
	    chmod 644 $(DESTDIR)$(DOCDIR)/examples/$$f || exit 2; \
	done

uninstall:
	for f in $(CMDS) sync-cycle; do rm -f $(DESTDIR)$(BINDIR)/$$f; done
	for f in $(notdir $(MAN1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$f; done
	for f in $(notdir $(MAN5)); do rm -f $(DESTDIR)$(MANDIR)/man5/$$f; done
	for f in $(notdir $(MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$f; done
	for f in $(EXAMPLES); do rm -f $(DESTDIR)$(DOCDIR)/examples/$$f; done
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || :

clean:
	rm -rf build build-san bin tests/tmp

.PHONY: FORCE all pkgcheck bin deps print-debs print-build-debs check demo bench install uninstall clean
.SECONDARY:

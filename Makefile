# kvswap: kvswapd (daemon/), libkvswap and kvswapctl (client/), tests/.
# Everything built goes under $(BUILD); generated protobuf-c code too.

BUILD   ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
# make WERROR=1 turns warnings into errors (CI builds so).
WERROR  ?= 0
PKGS     = liburing libprotobuf-c libsystemd inih

# pkg-config runs lazily so that `make test` can install it first.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) libisal)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
# libkvswap's own: protobuf-c, and ISA-L for its CRC32C (crc32_iscsi).
LIB_PKGS   = libprotobuf-c libisal
LIB_LIBS   = $(shell pkg-config --libs $(LIB_PKGS))

WARN     = -Wall -Wextra -Wshadow -Wno-unused-parameter -Wmissing-prototypes \
	   -Wstrict-prototypes -Wformat=2
ifeq ($(WERROR),1)
WARN    += -Werror
endif
# protoc-c output is not ours to fix: its warnings show but never fail.
GEN_WARN = -Wno-missing-prototypes -Wno-error
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) \
	     -I$(BUILD)/proto -Iproto -Iclient -Idaemon -MMD -MP

PROTO_C  = $(BUILD)/proto/kvswap.pb-c.c
PROTO_H  = $(BUILD)/proto/kvswap.pb-c.h

DAEMON_SRC = $(wildcard daemon/*.c)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/proto/kvswap.pb-c.o
# Everything but main(): unit tests link these.
DAEMON_LIB = $(filter-out $(BUILD)/daemon/kvswapd.o,$(DAEMON_OBJ))

LIB_SRC  = client/kvswap.c client/batch.c
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/pic/%.o) $(BUILD)/pic/proto/kvswap.pb-c.o
SONAME   = libkvswap.so.0

# kvswapctl: one file per command group, on libkvswap's public API.
CTL_SRC  = $(wildcard client/ctl/*.c)
CTL_OBJ  = $(CTL_SRC:%.c=$(BUILD)/%.o)

TEST_SRC = $(wildcard tests/test-*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Shell tests (TAP too) are copied next to the compiled ones.
TEST_SH  = $(wildcard tests/test-*.sh)
TEST_BIN += $(TEST_SH:tests/%.sh=$(BUILD)/tests/%)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)
# The shared test code (harness, TAP): everything in tests/ but the tests.
HARNESS  = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(TEST_SRC),$(wildcard tests/*.c)))

# kvswapctl's objects: every client/*.c that is not the library.
CLI_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(LIB_SRC),$(wildcard client/*.c)))
BENCH_BIN = $(BUILD)/bench/crc32c-speed $(BUILD)/bench/scale \
	    $(BUILD)/bench/req-syscalls

# -MMD -MP writes one .d beside each object (beside each bench binary, which
# is compiled and linked in one step); make reads those that exist.
DEPS = $(patsubst %.o,%.d,$(DAEMON_OBJ) $(LIB_OBJ) $(CLI_OBJ) $(HARNESS) \
			  $(TEST_OBJ)) $(BENCH_BIN:%=%.d)

# Man pages, from scdoc sources: docs/man/kvswapd.8.scd -> build/man/kvswapd.8
MAN_SRC  = $(wildcard docs/man/*.scd)
MAN      = $(MAN_SRC:docs/man/%.scd=$(BUILD)/man/%)

# make install [DESTDIR=/staging] [PREFIX=/usr] [SYSCONFDIR=/etc]
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR      = $(PREFIX)/bin
SBINDIR     = $(PREFIX)/sbin
LIBDIR      = $(PREFIX)/lib
INCLUDEDIR  = $(PREFIX)/include
MANDIR      = $(PREFIX)/share/man
UNITDIR     = $(PREFIX)/lib/systemd/system
SYSUSERSDIR = $(PREFIX)/lib/sysusers.d
VERSION     = $(shell sed -n 's/.*KVSWAP_VERSION "\(.*\)".*/\1/p' proto/kvswap-protocol.h)
# Fills in @PREFIX@-style placeholders; the .pc keeps its paths relative to
# ${prefix} so that pkg-config --define-prefix can move it.
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	    -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
	    -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g'

all: $(BUILD)/kvswapd $(BUILD)/kvswapctl $(BUILD)/libkvswap.a \
     $(BUILD)/$(SONAME) $(MAN)

deps:
	@tools/deps.sh

$(PROTO_C) $(PROTO_H): proto/kvswap.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/proto/kvswap.pb-c.o: $(PROTO_C)
	$(CC) $(ALL_CFLAGS) $(GEN_WARN) -c -o $@ $<

$(BUILD)/pic/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/pic/proto/kvswap.pb-c.o: $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(GEN_WARN) -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/kvswapd: $(DAEMON_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/libkvswap.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SONAME): $(LIB_OBJ) client/libkvswap.sym
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=client/libkvswap.sym -o $@ $(LIB_OBJ) \
		$(LIB_LIBS)
	ln -sf $(SONAME) $(BUILD)/libkvswap.so

$(BUILD)/kvswapctl: $(CTL_OBJ) $(BUILD)/libkvswap.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIB_LIBS) -lm -lpthread

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(DAEMON_LIB) $(BUILD)/libkvswap.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LIB_LIBS) -lm

$(TEST_SH:tests/%.sh=$(BUILD)/tests/%): $(BUILD)/tests/%: tests/%.sh
	@mkdir -p $(dir $@)
	install -m 755 $< $@

$(MAN): $(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@.tmp && mv $@.tmp $@

man: $(MAN)

tests: all $(TEST_BIN)

# The test suite: TAP programs run by prove, one per module or behaviour.
test: deps
	@$(MAKE) --no-print-directory tests
	prove -f --timer $(sort $(TEST_BIN))

# The power-loss loop at length: 1,000 power cuts under load (minutes).
test-long: deps
	@$(MAKE) --no-print-directory tests
	KVSWAP_POWERLOSS_ITERS=1000 prove -v --timer $(BUILD)/tests/test-powerloss

# The integration tests against a kvswapd built with ASan, UBSan and LSan
# (any report makes the daemon exit non-zero, which the tests catch), in a
# build folder of its own so that it can follow `make test` in one checkout.
# test-systemd is left out: it checks the installed files, not the daemon.
SAN_BUILD  ?= build-san
SAN_CFLAGS  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
test-sanitize: deps
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CFLAGS="$(SAN_CFLAGS)" tests
	KVSWAPD=$(SAN_BUILD)/kvswapd \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		prove -f --timer $(filter-out %/test-systemd,$(sort $(TEST_BIN:$(BUILD)/%=$(SAN_BUILD)/%)))

# Runs kvswapd in the foreground on a store and socket under the checkout.
RUN_DIR ?= $(CURDIR)/$(BUILD)/run
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p $(RUN_DIR)
	@echo "kvswapd: socket $(RUN_DIR)/kvswapd.sock; in another shell:"
	@echo "  export KVSWAP_SOCKET=$(RUN_DIR)/kvswapd.sock; $(BUILD)/kvswapctl stat"
	$(BUILD)/kvswapd --socket $(RUN_DIR)/kvswapd.sock \
		--store $(RUN_DIR)/store0.kvs --store-size 1G

# Benchmarks of the durable store: CRC32C speed (the daemon's code and
# ISA-L's, which libkvswap uses), restart with many entries.
$(BUILD)/bench/crc32c-speed: bench/crc32c-speed.c $(BUILD)/daemon/crc32c.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/bench/scale: bench/scale.c $(BUILD)/libkvswap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

# System calls per request, by API shape (bench/syscalls.sh runs it).
$(BUILD)/bench/req-syscalls: bench/req-syscalls.c $(BUILD)/libkvswap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

BENCH_ENTRIES ?= 1000000
bench-store: deps all $(BENCH_BIN)
	$(BUILD)/bench/crc32c-speed
	$(BUILD)/bench/scale $(BENCH_ENTRIES)

# Files only: run systemd-sysusers, systemctl daemon-reload and enable the
# socket afterwards (docs/INSTALL-SERVICE.md). An existing kvswapd.conf is
# kept.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(SYSCONFDIR)/kvswapd/kvswapd.conf.d
	install -m 755 $(BUILD)/kvswapd $(DESTDIR)$(SBINDIR)/kvswapd
	install -m 755 $(BUILD)/kvswapctl $(DESTDIR)$(BINDIR)/kvswapctl
	install -m 755 $(BUILD)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkvswap.so
	install -m 644 $(BUILD)/libkvswap.a $(DESTDIR)$(LIBDIR)/libkvswap.a
	install -m 644 client/kvswap.h $(DESTDIR)$(INCLUDEDIR)/kvswap.h
	$(SUBST) client/libkvswap.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libkvswap.pc
	$(SUBST) systemd/kvswapd.service > $(DESTDIR)$(UNITDIR)/kvswapd.service
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/libkvswap.pc \
		$(DESTDIR)$(UNITDIR)/kvswapd.service
	install -m 644 systemd/kvswapd.socket $(DESTDIR)$(UNITDIR)/kvswapd.socket
	install -m 644 systemd/kvswap.sysusers $(DESTDIR)$(SYSUSERSDIR)/kvswap.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/kvswapd/kvswapd.conf || \
		install -m 644 systemd/kvswapd.conf \
			$(DESTDIR)$(SYSCONFDIR)/kvswapd/kvswapd.conf
	for m in $(MAN); do d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
		install -d $$d && install -m 644 $$m $$d/ || exit 1; done
	@[ -n "$(DESTDIR)" ] || ldconfig

# Leaves the configuration and the store.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/kvswapd $(DESTDIR)$(BINDIR)/kvswapctl \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libkvswap.so \
		$(DESTDIR)$(LIBDIR)/libkvswap.a $(DESTDIR)$(INCLUDEDIR)/kvswap.h \
		$(DESTDIR)$(LIBDIR)/pkgconfig/libkvswap.pc \
		$(DESTDIR)$(UNITDIR)/kvswapd.service \
		$(DESTDIR)$(UNITDIR)/kvswapd.socket \
		$(DESTDIR)$(SYSUSERSDIR)/kvswap.conf \
		$(foreach m,$(MAN),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	@[ -n "$(DESTDIR)" ] || ldconfig

# fio against kvswapd on one store, every case (v1 requests and batches,
# the vLLM shape, prefill overlap, the Mooncake trace replay from
# ../shared/traces or $$BENCH_TRACE); minutes, not part of test.
# docs/PERFORMANCE.md describes it. Results under $(BUILD)/bench.
bench: deps
	@tools/deps.sh --bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench/crc32c-speed
	BUILD=$(BUILD) bench/run.sh

clean:
	rm -rf $(BUILD) $(SAN_BUILD)

.PHONY: all deps tests test test-long test-sanitize run install uninstall man clean bench bench-store
.SECONDARY:

-include $(DEPS)
-include tests/faultfs/faultfs.mk

# The Python binding (python/kvswap): swap-in of 1 GiB in 64 KiB segments
# into a numpy array against kvswapctl bench's same shape, in one run
# (docs/PYTHON.md). Debian's interpreter, which deps.sh equips.
bench-python: deps
	@$(MAKE) --no-print-directory all
	BUILD=$(BUILD) /usr/bin/python3 bench/python-swapin.py

.PHONY: bench-python

# faultfs, the fault-injecting FUSE filesystem for tests (tests/faultfs/),
# and fsio, the helper that checks its durability model. Included by the
# Makefile. Built only where pkg-config knows fuse3 (tools/deps.sh installs
# libfuse3-dev), so that the build never needs it; tests/test-faultfs.sh
# skips without them.

FAULTFS = $(BUILD)/tests/faultfs $(BUILD)/tests/fsio

ifeq ($(shell pkg-config --exists fuse3 2>/dev/null && echo yes),yes)

$(BUILD)/tests/faultfs: tests/faultfs/faultfs.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(shell pkg-config --cflags fuse3) \
		-o $@ $< $(shell pkg-config --libs fuse3)

$(BUILD)/tests/fsio: tests/faultfs/fsio.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(shell pkg-config --cflags liburing) \
		-o $@ $< $(shell pkg-config --libs liburing)

tests: $(FAULTFS)

else

$(FAULTFS):
	@echo "$@: needs libfuse3 (pkg-config fuse3); run tools/deps.sh" >&2
	@exit 1

endif

# rrc: a model compiler for self-supervised relational reasoning.
#
#   make          build ./rrc (installs missing Debian packages first)
#   make test     build and run every test; ends with "N passed, N failed, N skipped"
#                 (exit status non-zero only if a test failed)
#   make asan     the same tests under AddressSanitizer + UBSan
#   make tsan     the tests that use threads under ThreadSanitizer
#   make demo     the main job (see README.md)
#   make goldens  regenerate tests/golden/ with PyTorch (needs python3-torch)
#   make bench    rrc against the PyTorch reference (docs/PERFORMANCE.md)
#   make install  rrc, its runtime, specs, man page and completion under
#                 $(DESTDIR)$(PREFIX) (default /usr/local); make uninstall
#   make deb      rrc_VERSION_amd64.deb (dpkg-deb), installing under /usr
#
# Every target that compiles depends (order-only) on `deps`, which installs
# what is missing with one apt-get and does nothing when all is there.

CC      ?= gcc
OPT     ?= -O2
SAN     ?=
BUILD   ?= build
CFLAGS_WARN = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wwrite-strings -Wundef -Wpointer-arith \
              -Wformat=2 -Wcast-align -Wnull-dereference -Wvla -Werror=switch \
              -Werror=int-conversion -Werror=incompatible-pointer-types
# Debian's llvm-19-dev paths are written out (not $(shell llvm-config-19 ...)):
# the Makefile is read before `deps` can install LLVM on a fresh machine.
LLVM_DIR = /usr/lib/llvm-19
# Debian's Open MPI (libopenmpi-dev) likewise: these are the paths
# `pkg-config --cflags --libs ompi-c` gives, written out for the same reason
# (runtime/rt_comm.c; mpirun starts the ranks of a data-parallel run).
MPI_DIR = /usr/lib/x86_64-linux-gnu/openmpi
CPPFLAGS = -D_GNU_SOURCE -Icompiler -Iruntime -I/usr/include/lua5.4 -I$(LLVM_DIR)/include -I$(MPI_DIR)/include
CFLAGS  = -std=c11 $(OPT) -g $(CFLAGS_WARN) $(SAN) -pthread -DRRC_LINK_SAN='"$(SAN)"'
LDFLAGS = $(SAN) -pthread
LDLIBS_RT = -ljansson -lz -lpng -ljpeg -lm -lopenblas -L$(MPI_DIR)/lib -lmpi
# rrc exports the runtime's kernels (-rdynamic, whole archive) so that code
# JIT-compiled in-process resolves them as process symbols.
LDLIBS    = -L$(LLVM_DIR)/lib -lLLVM-19 -llua5.4 $(LDLIBS_RT)
LINK_RT   = -rdynamic -Wl,--whole-archive $(BUILD)/librrt.a -Wl,--no-whole-archive

RT_SRCS  := $(wildcard runtime/*.c)
CC_SRCS  := $(wildcard compiler/*.c compiler/frontend/*.c compiler/ir/*.c compiler/passes/*.c compiler/codegen/*.c)
CC_LIB_SRCS := $(filter-out compiler/main.c,$(CC_SRCS))
# tests/*.c: the runner and the helpers every test shares; tests/AREA/: the
# tests of one part (frontend, ir, codegen, runtime, cli)
TEST_SRCS := $(wildcard tests/*.c tests/*/*.c)

RT_OBJS  := $(RT_SRCS:%.c=$(BUILD)/%.o)
CC_LIB_OBJS := $(CC_LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/compiler/frontend/prelude_lua.o
MAIN_OBJ := $(BUILD)/compiler/main.o
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
$(TEST_OBJS): CPPFLAGS += -Itests

.PHONY: all deps test asan tsan demo clean goldens bench compare
all: rrc

deps:
	@sh tools/deps.sh

$(BUILD)/librrt.a: $(RT_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/librrc.a: $(CC_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

rrc: $(MAIN_OBJ) $(BUILD)/librrc.a $(BUILD)/librrt.a $(BUILD)/rrc_trainer_main.o
	$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(BUILD)/librrc.a $(LINK_RT) $(LDLIBS)

# the main() of AOT trainers; `rrc compile` links it with the generated object
$(BUILD)/rrc_trainer_main.o: runtime/trainer/main.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The rr prelude (Lua source) is compiled into the binary as a C string.
$(BUILD)/compiler/frontend/prelude_lua.c: compiler/frontend/rr.lua tools/embed.sh | deps
	@mkdir -p $(dir $@)
	sh tools/embed.sh rr_prelude_lua $< > $@

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# Augmentation is pixel loops with variable trip counts: -O2's "very cheap"
# vectoriser leaves them scalar (docs/DECISIONS.md); so are retrieval's
# passes over a query's similarities
$(BUILD)/runtime/rt_augment.o $(BUILD)/runtime/rt_eval.o: CFLAGS += -O3
# The interpreter's convolution runs rrc check's thousands of forwards; its
# inner loop over output channels has a variable trip count too
$(BUILD)/compiler/ir/ops_conv.o: CFLAGS += -O3
# The optimizers' per-element double arithmetic vectorises once sqrt need
# not set errno (the arguments are never negative)
$(BUILD)/runtime/rt_optim.o: CFLAGS += -O3 -fno-math-errno

# `rrc --version` names the commit it was built from (git describe, empty
# outside a git checkout); the header changes only when that does
.PHONY: FORCE
$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@printf '#define RRC_GIT_DESCRIBE "%s"\n' "$$(git describe --always --dirty 2>/dev/null)" > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/compiler/cmd_info.o: $(BUILD)/version.h
$(BUILD)/compiler/cmd_info.o: CPPFLAGS += -I$(BUILD)

$(BUILD)/compiler/frontend/prelude_lua.o: $(BUILD)/compiler/frontend/prelude_lua.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/rrc_tests: $(TEST_OBJS) $(BUILD)/librrc.a $(BUILD)/librrt.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(BUILD)/librrc.a $(LINK_RT) $(LDLIBS)

# the MPI collectives' self-test, run under mpirun by tests/runtime/test_comm.c
$(BUILD)/comm_selftest: $(BUILD)/tools/comm_selftest.o $(BUILD)/librrt.a
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/tools/comm_selftest.o $(BUILD)/librrt.a $(LDLIBS_RT)

test: rrc $(BUILD)/rrc_tests $(BUILD)/comm_selftest
	@sh tools/layering.sh $(BUILD)
	@$(BUILD)/rrc_tests

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    RRC=build-asan/rrc test-asan

.PHONY: test-asan
test-asan: $(BUILD)/rrc_tests $(BUILD)/rrc $(BUILD)/comm_selftest
	@RRC_BIN=$(BUILD)/rrc ASAN_OPTIONS=detect_leaks=1 $(BUILD)/rrc_tests

# ThreadSanitizer: the tests that run threads (compiling in two threads,
# LLVM's one-time setup, the JIT and its cache, the worker pool, the views'
# making, training, AOT trainers, the MPI hang guard's watchdog thread in
# comm_selftest under mpirun) and the rrc processes they start, all
# instrumented. Code TSan cannot see into (libLLVM, OpenBLAS, JIT output) is
# covered by tools/tsan.supp, a reason per line.
TSAN_TESTS = llvm_init pool_ cluster_kmeans_same_on_pool_threads deepcluster_views jit_cache cli_train_uses_the_cache aug_batch_thread_count_invariant \
             jit_golden_steps_threaded jit_matches_interp train_ aot_trainer_equals_jit kill_9 probe_deterministic \
             eval_same_on_pool_threads cli_train_monitor_knn comm_mpi_ check_is_the_same_on_any_threads
tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread -fno-omit-frame-pointer" test-tsan

.PHONY: test-tsan
test-tsan: $(BUILD)/rrc_tests $(BUILD)/rrc $(BUILD)/comm_selftest
	@RRC_BIN=$(BUILD)/rrc TSAN_OPTIONS="suppressions=$(CURDIR)/tools/tsan.supp halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	    $(BUILD)/rrc_tests $(TSAN_TESTS)

$(BUILD)/rrc: $(MAIN_OBJ) $(BUILD)/librrc.a $(BUILD)/librrt.a $(BUILD)/rrc_trainer_main.o
	$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(BUILD)/librrc.a $(LINK_RT) $(LDLIBS)

goldens:
	/usr/bin/python3 tests/golden/make_goldens.py
	/usr/bin/python3 tests/golden/make_math_goldens.py
	/usr/bin/python3 tests/golden/make_finetune_goldens.py
	/usr/bin/python3 tests/golden/make_aug_dist_goldens.py
	/usr/bin/python3 tests/golden/make_baseline_goldens.py
	/usr/bin/python3 tests/golden/make_cluster_goldens.py

demo: rrc
	@sh tools/demo.sh

# every method on Fashion-MNIST, one table in docs/RESULTS.md (COMPARE_EPOCHS, default 10)
compare: rrc
	@sh tools/compare.sh

# rrc against the PyTorch reference; writes docs/PERFORMANCE.md
bench: rrc
	@RRC_EXTRA_PKGS="python3-torch python3-torchvision dataset-fashion-mnist" sh tools/deps.sh
	/usr/bin/python3 bench/bench.py

# ---- installation ----
# PREFIX/bin/rrc finds everything else from its own place (driver.c), so an
# installation can be moved, and never reads the source tree.
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^\#define RRC_VERSION "\(.*\)"/\1/p' compiler/driver.h)
RT_ABI_HEADERS := $(filter-out runtime/rt_data_internal.h runtime/rt_kernels_impl.h,$(wildcard runtime/*.h))
.PHONY: install uninstall deb
RRC_EXE ?= rrc
install: $(RRC_EXE) $(BUILD)/librrt.a $(BUILD)/rrc_trainer_main.o
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/rrc/include $(DESTDIR)$(PREFIX)/share/rrc/specs/lib \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(RRC_EXE) $(DESTDIR)$(PREFIX)/bin/rrc
	install -m 644 $(BUILD)/librrt.a $(BUILD)/rrc_trainer_main.o $(DESTDIR)$(PREFIX)/lib/rrc/
	install -m 644 $(RT_ABI_HEADERS) $(DESTDIR)$(PREFIX)/lib/rrc/include/
	install -m 644 specs/*.lua specs/README.md $(DESTDIR)$(PREFIX)/share/rrc/specs/
	install -m 644 specs/lib/*.lua $(DESTDIR)$(PREFIX)/share/rrc/specs/lib/
	install -m 644 docs/rrc.1 $(DESTDIR)$(PREFIX)/share/man/man1/rrc.1
	install -m 644 tools/rrc.bash-completion $(DESTDIR)$(PREFIX)/share/bash-completion/completions/rrc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/rrc $(DESTDIR)$(PREFIX)/share/man/man1/rrc.1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/rrc
	rm -rf $(DESTDIR)$(PREFIX)/lib/rrc $(DESTDIR)$(PREFIX)/share/rrc

# The package's Depends: the shared libraries rrc links (dpkg-shlibdeps'
# answer for Debian 12, written out) and what `rrc compile` links trainers
# with (cc, ld and the -dev packages of the runtime's libraries), and mpirun
# (openmpi-bin) for data-parallel runs.
DEB_DEPENDS = libc6, libllvm19, liblua5.4-0, libjansson4, zlib1g, libpng16-16, libjpeg62-turbo, \
              libopenblas0 | libopenblas0-pthread, libopenmpi3, gcc, binutils, libc6-dev, libjansson-dev, zlib1g-dev, \
              libpng-dev, libjpeg62-turbo-dev, libopenblas-dev, libopenmpi-dev, openmpi-bin
deb: rrc
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(BUILD)/deb PREFIX=/usr
	install -d $(BUILD)/deb/DEBIAN
	printf 'Package: rrc\nVersion: %s\nArchitecture: amd64\nMaintainer: rrc developers <rrc@localhost>\nDepends: %s\nSection: devel\nPriority: optional\nDescription: model compiler for self-supervised relational reasoning\n rrc turns a Lua spec (backbone, augmentations, relation head, loss,\n optimizer, data) into a fast verified trainer, JIT or ahead of time, with LLVM.\n' \
	    '$(VERSION)' '$(DEB_DEPENDS)' > $(BUILD)/deb/DEBIAN/control
	dpkg-deb --root-owner-group --build $(BUILD)/deb rrc_$(VERSION)_amd64.deb

clean:
	rm -rf build build-asan build-tsan build-fuzz rrc

include fuzz/fuzz.mk
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

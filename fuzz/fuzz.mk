# fuzz/fuzz.mk: libFuzzer targets of every input parser (included by the
# Makefile; README.md "Fuzzing").
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="fuzz_spec fuzz_idx"]
#       builds the targets with clang-19 (-fsanitize=fuzzer,address,undefined)
#       into build-fuzz/ and runs each for N seconds (default 60), one after
#       the other, on a copy of its seed corpus fuzz/corpus/TARGET/; prints one
#       line per target and fails if any found a crash, leak or timeout
#       (the input is kept as build-fuzz/run/TARGET/crash-*, leak-*, timeout-*).
#   make fuzz-build    only builds them.
#
# The project's sources each target needs are compiled here from source,
# with the fuzzer's instrumentation (not taken from build/), and no target
# links LLVM: the cache-manifest target replaces the three symbols only
# cache_entry() uses (fuzz/fuzz_cache_stubs.c).

FUZZ_CC      ?= clang-19
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_ALL      = fuzz_spec fuzz_idx fuzz_cifar fuzz_image fuzz_tiny fuzz_safetensors fuzz_program_json fuzz_cache_manifest
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The Lua sandbox's caps, lowered so that a looping or allocating spec costs
# milliseconds (compiler/frontend/lf_internal.h; every bundled spec fits).
FUZZ_CAPS    = -DLF_INSTR_CAP=1000000 '-DLF_MEM_CAP=((size_t)8<<20)'
FUZZ_CFLAGS  = -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -pthread $(CFLAGS_WARN) \
               -Wno-cast-align $(FUZZ_CAPS) -DRRC_FUZZ_SRCDIR='"$(CURDIR)"'
FUZZ_LDFLAGS = -fsanitize=fuzzer $(FUZZ_SAN) -pthread

FUZZ_DATA_SRCS = runtime/rt_data.c runtime/rt_data_idx.c runtime/rt_data_bin.c runtime/rt_data_folder.c \
                 runtime/rt_data_image.c runtime/rt_data_subset.c runtime/rt_data_tiny.c runtime/rt_rng.c
# the front end and the IR it lowers to
FUZZ_SPEC_SRCS = $(wildcard compiler/frontend/*.c compiler/ir/*.c) compiler/util.c
FUZZ_SRCS_fuzz_spec           = $(FUZZ_SPEC_SRCS)
FUZZ_SRCS_fuzz_idx            = $(FUZZ_DATA_SRCS)
FUZZ_SRCS_fuzz_cifar          = $(FUZZ_DATA_SRCS)
FUZZ_SRCS_fuzz_image          = $(FUZZ_DATA_SRCS)
FUZZ_SRCS_fuzz_tiny           = $(FUZZ_DATA_SRCS)
FUZZ_SRCS_fuzz_safetensors    = runtime/rt_safetensors.c runtime/rt_file.c
FUZZ_SRCS_fuzz_program_json   = runtime/rt_program_json.c runtime/rt_program.c
FUZZ_SRCS_fuzz_cache_manifest = compiler/cache.c compiler/util.c runtime/rt_file.c fuzz/fuzz_cache_stubs.c
FUZZ_EXTRA_fuzz_spec          = $(FUZZ_BUILD)/obj/prelude_lua.o
FUZZ_LIBS_fuzz_spec           = -llua5.4 -lm
FUZZ_LIBS_fuzz_idx            = -lz -lpng -ljpeg -lm
FUZZ_LIBS_fuzz_cifar          = -lz -lpng -ljpeg -lm
FUZZ_LIBS_fuzz_image          = -lz -lpng -ljpeg -lm
FUZZ_LIBS_fuzz_tiny           = -lz -lpng -ljpeg -lm
FUZZ_LIBS_fuzz_safetensors    = -ljansson
FUZZ_LIBS_fuzz_program_json   = -ljansson -lm
FUZZ_LIBS_fuzz_cache_manifest =

FUZZ_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))
FUZZ_BINS = $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build fuzz-deps
fuzz-deps:
	@RRC_EXTRA_PKGS="clang-19 libclang-rt-19-dev" sh tools/deps.sh

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(FUZZ_BUILD)/obj/%.o: %.c fuzz/fuzz.mk | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/obj/prelude_lua.c: compiler/frontend/rr.lua tools/embed.sh | fuzz-deps
	@mkdir -p $(dir $@)
	sh tools/embed.sh rr_prelude_lua $< > $@

$(FUZZ_BUILD)/obj/prelude_lua.o: $(FUZZ_BUILD)/obj/prelude_lua.c
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

define FUZZ_RULE
$(FUZZ_BUILD)/$(1): $(FUZZ_BUILD)/obj/fuzz/$(1).o $(call FUZZ_OBJ,$(FUZZ_SRCS_$(1))) $(FUZZ_EXTRA_$(1))
	$$(FUZZ_CC) $$(FUZZ_LDFLAGS) -o $$@ $$^ $$(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_RULE,$(t))))

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)

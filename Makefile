# tuna — build, test and check.
#   make            library build/libtuna.a (public: only tuna_* exported; see
#                   below) and CLI build/tuna
#   make test       unit + parity tests, the same under ASan+UBSan, fuzz smoke runs
#   make test-fast  unit + parity tests only (no sanitizer rebuild)
#   make fuzz       libFuzzer targets (clang), run briefly
#   make fuzz-long  each libFuzzer target 10 minutes, new coverage merged into fuzz/corpus/
#   make soak       kill -9 / resume soak of sft checkpoints, then the serve soak
#   make bench      benchmarks (see bench/README.md)
#   make demo       the quick start's main job (scripts/demo.sh)
#   make demo-prefs its preference stage: DPO after the demo's SFT adapter
#   make demo-grpo  its third act: GRPO with a verifiable reward after a short SFT run
# Sources are picked up by wildcard: a new file in src/<module>/ or tests/test_*.c
# needs no edit here.

CC       ?= cc
OBJCOPY  ?= objcopy
OPT      ?= -O3 -march=native
CFLAGS   += -std=c11 -Wall -Wextra -D_GNU_SOURCE -fopenmp -Iinclude -Isrc \
            -I/usr/include/x86_64-linux-gnu/openblas-openmp $(OPT)
LDLIBS   += -lopenblas -ldnnl -lcurl -lcrypto -lyaml -lpcre2-8 -ljansson -lutf8proc -lmicrohttpd -lpthread -lm -fopenmp

BUILD    ?= build
.DEFAULT_GOAL := all

# The configuration is probed after the packages are installed: make first
# remakes $(BUILD)/config.mk (scripts/deps.sh, then scripts/configure.sh),
# then reads it and starts over, so the first build on a new machine already
# sees Open MPI. configure.sh rewrites the file only when it changes, and
# every object depends on it: a changed configuration rebuilds, without
# `make clean`. Open MPI (data-parallel training) is used when mpicc is
# installed; without it tuna builds single-process (src/train/dist.c's stubs).
ifeq ($(filter clean,$(MAKECMDGOALS)),)
include $(BUILD)/config.mk
endif
$(BUILD)/config.mk: FORCE
	@scripts/deps.sh
	@scripts/configure.sh $(BUILD)
FORCE:
MPI_LDLIBS := $(TUNA_MPI_LDLIBS)
CFLAGS   += $(TUNA_MPI_CFLAGS) -I$(BUILD)/gen
LDLIBS   += $(TUNA_MPI_LDLIBS)
# test-only accessors (src/*/*_probe.c, e.g. tests/model_probe.h's): in
# libtuna_internal.a, which the tests link, never in the public libtuna.a
PROBE_SRC:= $(sort $(wildcard src/*/*_probe.c))
LIB_SRC  := $(sort $(filter-out src/cli/% $(PROBE_SRC),$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))
HDRS     := $(wildcard include/*.h src/*/*.h tests/*.h)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
PROBE_OBJ:= $(PROBE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test test-fast test-san fuzz fuzz-long soak soak-train soak-serve bench clean demo demo-prefs demo-grpo

all: $(BUILD)/libtuna.a $(BUILD)/tuna $(TESTS) $(BENCHES)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c $(HDRS) $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# what `tuna --version` says the code was compiled with
$(BUILD)/src/core/version.o: CFLAGS += -DTUNA_BUILD_FLAGS='"$(CC) $(OPT)"'

# vector tanhf/expf from libmvec for the activation loops (see kernels_act.c)
$(BUILD)/src/kernels/kernels_act.o: CFLAGS += -ffast-math

# Two archives of the same objects. $(BUILD)/libtuna.a, the public one,
# exports only tuna_* names: its objects are linked into one relocatable
# object (ld -r), in which every other global symbol (gguf_*, st_*, k_*, ...)
# is made local (objcopy --keep-global-symbol 'tuna_*'), so a program can link
# it beside a library that uses the same names (llama.cpp's gguf_*); such a
# program pulls in the whole library and links the libraries listed in
# $(BUILD)/libtuna.ldlibs. $(BUILD)/libtuna_internal.a keeps one object per
# source file and every symbol: the tests, benches and the CLI link it, as
# they call internal functions (the CLI: serve's srv_*, gguf_* in generate).
# tests/test_library_symbols.sh checks the public archive's symbols.
$(BUILD)/libtuna.a: $(LIB_OBJ) | $(BUILD)/libtuna.ldlibs
	@rm -f $@
	$(LD) -r -o $(BUILD)/libtuna_all.o $^
	$(OBJCOPY) --wildcard --keep-global-symbol='tuna_*' $(BUILD)/libtuna_all.o $(BUILD)/libtuna.o
	ar rcs $@ $(BUILD)/libtuna.o
	@rm -f $(BUILD)/libtuna_all.o $(BUILD)/libtuna.o

$(BUILD)/libtuna_internal.a: $(LIB_OBJ) $(PROBE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# rewritten only when the link flags change (libtuna.a is not remade for it)
$(BUILD)/libtuna.ldlibs: FORCE
	@mkdir -p $(dir $@)
	@echo '$(LDLIBS)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

# the chat page of tuna serve, built into the binary
$(BUILD)/gen/chat_page.c: src/serve/chat.html scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh $< tuna_chat_page > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/chat_page.o: $(BUILD)/gen/chat_page.c $(BUILD)/config.mk
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tuna: $(CLI_OBJ) $(BUILD)/gen/chat_page.o $(BUILD)/libtuna_internal.a
	$(CC) $(CFLAGS) $(CLI_OBJ) $(BUILD)/gen/chat_page.o $(BUILD)/libtuna_internal.a $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtuna_internal.a $(HDRS) $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libtuna_internal.a $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libtuna_internal.a $(HDRS) $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libtuna_internal.a $(LDLIBS) -o $@

# the other bf16 GEMM candidates of issue 22 item 3 (scripts/deps.sh installs
# them), linked into this benchmark only; libxsmm comes as static archives
$(BUILD)/bench/bench_gemm_bf16: LDLIBS += -lxsmmext -lxsmm -ldl

test-fast: all
	@scripts/run_tests.sh $(BUILD)

# The sanitizer tier rebuilds everything in build-san with ASan+UBSan.
test-san: deps
	@$(MAKE) --no-print-directory BUILD=build-san OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDLIBS="-lopenblas -ldnnl -lcurl -lcrypto -lyaml -lpcre2-8 -ljansson -lutf8proc -lmicrohttpd -lpthread $(MPI_LDLIBS) -lm -fopenmp -fsanitize=address,undefined" build-san/libtuna.a build-san/tuna $(TESTS:$(BUILD)/%=build-san/%)
	@TUNA_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 scripts/run_tests.sh build-san

# The full suite: unit and parity tests, the same under ASan+UBSan, then each
# libFuzzer target for a few seconds from its seed corpus.
test: all
	@scripts/test_all.sh

fuzz: deps
	@scripts/run_fuzz.sh

# Outside `make test` (long; see bench/README.md "Soak and long fuzz"): each
# target FUZZ_SECONDS (600) at low priority, one at a time, then its new
# inputs merged into fuzz/corpus/<target>/ by coverage (-merge=1).
fuzz-long: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-600} FUZZ_MERGE=1 nice -n 10 scripts/run_fuzz.sh

# Outside `make test`: SIGKILL / resume soak of sft checkpoints (full and LoRA)
# and the serve soak under well-behaved and hostile clients.
soak: soak-train soak-serve
soak-train: $(BUILD)/tuna
	@TUNA=$(BUILD)/tuna scripts/soak_train.sh
soak-serve: $(BUILD)/tuna
	@TUNA=$(BUILD)/tuna scripts/soak_serve.sh

bench: all
	@echo "benchmarks: see bench/README.md"; ls $(BUILD)/bench

demo: all
	@scripts/demo.sh

demo-prefs: all
	@scripts/demo_prefs.sh

demo-grpo: all
	@scripts/demo_grpo.sh

clean:
	rm -rf build build-san build-fuzz

# aim — build, test, install, benchmark.
#
#   make                 build every tool into bin/ (and the CUDA backend when nvcc is found)
#   make check           build and run all tests
#   make check SAN=1     the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench           benchmarks against the references, side by side
#   make fuzz            run every fuzz target longer (FUZZ_SECONDS, default 60;
#                        FUZZ_RUNS=N: N executions each; FUZZ_TARGETS="a b": only those)
#   make install PREFIX=/usr/local DESTDIR=
#
# Optional parts are detected, reported and never required:
#   CUDA (nvcc)  -> build/libaim-cuda.so, loaded at run time by the tools
#   MPI (mpicc)  -> aim-train gains data-parallel training across processes
#   oneDNN       -> bf16 matrix products on the CPU (--precision bf16), and
#                   oneDNN's fp32 GEMM where it beats OpenBLAS; DNNL=0 leaves it out

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
SAN ?= 0

PKGS := libzstd zlib libpng libjpeg libwebp libwebpdemux libtiff-4 jansson libarchive libzip openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
$(error pkg-config could not find $(PKGS): run scripts/setup.sh first)
endif

ifeq ($(SAN),1)
BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
OPT := -O1 -g -fno-omit-frame-pointer $(SANFLAGS)
else
BUILD := build
OPT := -O2 -g -march=x86-64-v2 -mtune=native
endif
BIN := $(BUILD)/bin

CFLAGS ?=
# The library's layers, bottom to top (common/README.md): each folder is on the
# include path, so a file names a header by its own name wherever it lives.
LAYERS := $(shell sed -n 's/^| `\([a-z]*\)` |.*/\1/p' common/README.md | grep -vx cuda)
LAYER_INC := -Icommon $(addprefix -Icommon/,$(LAYERS))
HEADERS := $(wildcard common/*/*.h common/cuda/*.cuh)

CFLAGS += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -fopenmp $(LAYER_INC) $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lm -ldl -lpthread
LDFLAGS += -fopenmp $(SANFLAGS)

# --- optional MPI ------------------------------------------------------------
MPICC := $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPICC),)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null) -DAIM_HAVE_MPI=1
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
endif

# --- optional oneDNN ------------------------------------------------------------
ifndef DNNL
DNNL := $(shell printf '\043include <oneapi/dnnl/dnnl.h>\nint main(void){return !dnnl_version();}\n' | \
	$(CC) -x c - -o /dev/null -ldnnl >/dev/null 2>&1 && echo 1 || echo 0)
endif
ifeq ($(DNNL),1)
CFLAGS += -DAIM_HAVE_DNNL=1
LDLIBS += -ldnnl
endif

# --- optional CUDA -----------------------------------------------------------
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_SRC := $(wildcard common/cuda/*.cu)
ifneq ($(NVCC),)
ifneq ($(CUDA_SRC),)
CUDA_LIB := $(BUILD)/libaim-cuda.so
endif
endif
NVCCFLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC $(LAYER_INC) -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

# --- sources -------------------------------------------------------------------
COMMON_SRC := $(filter-out common/base/dist_mpi.c,$(wildcard $(LAYERS:%=common/%/*.c)))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libaim.a
TOOL_SRC := $(wildcard tools/*.c)
TOOLS := $(TOOL_SRC:tools/%.c=$(BIN)/%)
TEST_SRC := $(wildcard tests/unit/*.c)
UNIT_TESTS := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
MAN := $(wildcard man/*.1 man/*.5)

ifneq ($(MPICC),)
DIST_OBJ := $(BUILD)/common/base/dist_mpi.o
DIST_LIBS := $(MPI_LIBS)
endif

.PHONY: all check bench fuzz install clean config layers includes ldlibs
all: config $(TOOLS) $(CUDA_LIB)

config:
	@echo "aim: CC=$(CC) SAN=$(SAN) MPI=$(if $(MPICC),yes,no) oneDNN=$(if $(filter 1,$(DNNL)),yes,no) CUDA=$(if $(CUDA_LIB),yes ($(NVCC)),no)"

$(BUILD)/common/%.o: common/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The element-wise GELU and SwiGLU loops (no reductions: each output is the
# same IEEE operations on its own input, whatever the vector width) may run
# both sides of their exp clamps: without this GCC keeps the clamps as
# branches in the AVX2 clones, which then stay scalar (the AVX-512 clones
# mask them) and GELU was a fifth of an AVX2 machine's ViT-S extraction.
# aim never reads the floating-point exception flags. The softmax and
# normalisation rows would gain too, but their sums would then be vectorised
# in another order on AVX-512 and change results recorded there.
$(BUILD)/common/ops/ops_gelu.o $(BUILD)/common/ops/ops_swiglu.o: CFLAGS += -fno-trapping-math

$(BUILD)/common/base/dist_mpi.o: common/base/dist_mpi.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: tools/%.c $(LIB) $(DIST_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(DIST_OBJ),-DAIM_HAVE_MPI=1) $(LDFLAGS) -o $@ $< $(DIST_OBJ) $(LIB) $(LDLIBS) $(DIST_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(HEADERS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/libaim-cuda.so: $(CUDA_SRC) $(HEADERS) $(wildcard common/cuda/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -shared -o $@ $(CUDA_SRC) -lcublas -lcublasLt

# The include flags, for scripts that compile against the library themselves.
includes:
	@echo $(LAYER_INC)

# The libraries a program linking $(BUILD)/libaim.a needs (oneDNN included
# when it was found), for the same scripts.
ldlibs:
	@echo $(LDLIBS)

# No file of the library includes a header from a layer above its own.
layers:
	@tests/layers.sh

check: all $(UNIT_TESTS) layers
	BUILD=$(BUILD) SAN=$(SAN) tests/run.sh

bench: all
	BUILD=$(BUILD) bench/run.sh

# Fuzz targets are built with clang's libFuzzer against the library,
# compiled once more with coverage instrumentation.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -Wno-pass-failed $(LAYER_INC) $(PKG_CFLAGS)
FUZZ_OBJ := $(COMMON_SRC:%.c=build-fuzz/%.o)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
# The resampling passes and the mode conversions run over every pixel of a decoded image: tracing
# their comparisons took 60 % of the image target's time and guides nothing
# (the decoders are the target). They keep ASan, UBSan and edge coverage.
# Likewise the pickle reader's walk over its object graph (pickle_flatten.c): on
# crafted DAGs that spend the walk's whole visit budget, tracing its loop
# comparisons was 65 % of the pickle target's time (1,300 -> 400 exec/s);
# the opcodes, where comparisons do guide, stay traced in pickle.c.
FUZZ_PIXEL_LOOPS := build-fuzz/common/image/resample.o build-fuzz/common/image/transform.o \
	build-fuzz/common/image/pilmode.o build-fuzz/common/io/pickle_flatten.o
$(FUZZ_PIXEL_LOOPS): FUZZ_COVERAGE := -fno-sanitize-coverage=trace-cmp
build-fuzz/common/%.o: common/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined $(FUZZ_COVERAGE) -c -o $@ $<
build-fuzz/libaim.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libaim.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build-fuzz/libaim.a $(PKG_LIBS) -lm -ldl -lpthread
fuzz-build: $(FUZZ_BIN)
fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_TARGETS="$(FUZZ_TARGETS)" tests/fuzz/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/lib/aim
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	for m in $(MAN); do case $$m in *.1) install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man1/;; *.5) install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man5/;; esac; done
	$(if $(CUDA_LIB),install -m 755 $(CUDA_LIB) $(DESTDIR)$(PREFIX)/lib/aim/)

clean:
	rm -rf build build-san build-fuzz

# hyperbuf - one plain GNU Makefile.
#   make            build everything into build/
#   make run        build, start hyperbufd on configs/local.conf, share frames end to end
#   make check      the house checks (tools/check-layers.sh, tools/check-size.sh), then build
#                   with ASan+UBSan into build/asan/ and run every test suite (the VM and Xen
#                   cases too when QEMU and the Xen packages are installed)
#   make check-kvm  only the VM suites: real QEMU guests (needs qemu-system-x86, see docs/KVM.md),
#                   the conformance suite's QEMU target among them
#   make check-conform  only the conformance suite, on every target (docs/TESTING.md)
#   make check-xen  only the Xen cases: Xen 4.17 with a dom0 and two domUs under QEMU TCG, the
#                   conformance suite's Xen target among them
#   make bench      benchmarks, printed as ratios against a baseline measured in the same run
#                   (with GStreamer: hyperbufsink ! hyperbufsrc against shmsink ! shmsrc, tcp)
#   make fuzz       the libFuzzer targets (clang), each FUZZ_SECONDS (10) from its seed corpus
#   make fuzz-regress  every seed and every saved crash once through its target (make check too)
#   make install    PREFIX=/usr/local DESTDIR=  (the GStreamer plugin into GST_PLUGINDIR,
#                   GStreamer's own plugin folder by default; the systemd unit into
#                   SYSTEMDUNITDIR, its user into SYSUSERSDIR: docs/DEPLOY.md)
#   make abi-baseline  rewrite abi/libhyperbuf.so.0.abi from the build's library (only with a
#                   new soname, or for additions: tests/test_sh_abi.sh checks it in make check)
#   make clean
.SUFFIXES:
# The dependency check below is the first rule in the file; `make` alone must still mean all.
.DEFAULT_GOAL := all

VERSION   := 0.1.0
SOMAJOR   := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
LIBDIR    ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR    ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
# systemd looks in /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

# SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer (make check does this).
SAN       ?= 0
B         ?= build

CC        ?= cc
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wpointer-arith -Wstrict-prototypes
DEPS_CFLAGS = $(shell pkg-config --cflags libprotobuf-c inih libpng 2>/dev/null)
DEPS_LIBS_LIB = $(shell pkg-config --libs libprotobuf-c 2>/dev/null)
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -D_GNU_SOURCE \
	-DHB_VERSION_STRING='"$(VERSION)"' -DHB_SYSCONFDIR='"$(SYSCONFDIR)"' \
	-Iinclude -iquote $(B)/gen -iquote . $(DEPS_CFLAGS)
ifeq ($(SAN),1)
ALL_CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
endif
LDFLAGS ?=

# FUZZ=1 is for the fuzz targets' own build (make fuzz runs it with CC=clang into $(B)/fuzz):
# the product's objects with libFuzzer's coverage hooks, ASan and UBSan. docs/FUZZING.md.
FUZZ      ?= 0
ifeq ($(FUZZ),1)
ALL_CFLAGS += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
LDFUZZ := -fsanitize=fuzzer,address,undefined
endif

# WITH_XEN=1 builds the Xen backend into hyperbufd and the Xen paths (xen: address, grant-based
# buffers) into libhyperbuf. Default: on when libxen-dev's pkg-config files are installed.
ifeq ($(origin WITH_XEN),undefined)
WITH_XEN := $(shell pkg-config --exists xengnttab xenevtchn xenstore xencontrol 2>/dev/null && \
	echo 1 || echo 0)
endif
ifeq ($(WITH_XEN),1)
ALL_CFLAGS += -DHB_WITH_XEN=1
XEN_LIBS_LIB = $(shell pkg-config --libs xengnttab xenevtchn xenstore)
XEN_LIBS_DAEMON = $(shell pkg-config --libs xengnttab xenevtchn xenstore xencontrol)
XEN_PC_REQUIRES := xengnttab xenevtchn xenstore
endif

# The knobs that change what an object file contains; a change rebuilds everything.
KNOBS := SAN=$(SAN) WITH_XEN=$(WITH_XEN)$(if $(filter 1,$(FUZZ)), FUZZ=1)
KNOBS_STAMP := $(B)/.knobs
$(shell mkdir -p $(B) && { [ "$$(cat $(KNOBS_STAMP) 2>/dev/null)" = "$(KNOBS)" ] || \
	echo "$(KNOBS)" > $(KNOBS_STAMP); })

# ---- build dependencies (Debian packages only) ------------------------------------------
DEB_PKGS := libev-dev libprotobuf-c-dev protobuf-c-compiler libinih-dev libpng-dev pkg-config
DEPS_OK := $(B)/.deps-ok
$(DEPS_OK):
	@missing=""; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v protoc-c >/dev/null || missing="$$missing protobuf-c-compiler"; \
	[ -f /usr/include/ev.h ] || missing="$$missing libev-dev"; \
	pkg-config --exists libprotobuf-c 2>/dev/null || missing="$$missing libprotobuf-c-dev"; \
	pkg-config --exists inih 2>/dev/null || missing="$$missing libinih-dev"; \
	pkg-config --exists libpng 2>/dev/null || missing="$$missing libpng-dev"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing build dependencies:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) || exit 1; \
		else \
			echo "missing build dependencies:$$missing"; \
			echo "run: sudo apt-get install $(DEB_PKGS)"; exit 1; \
		fi; \
	fi
	@mkdir -p $(@D) && touch $@

# ---- sources ---------------------------------------------------------------------------
PROTO_SRC   := $(wildcard protocol/*.c)
COMMON_SRC  := $(wildcard common/*.c)
# The daemon's config code (loading, checking, reloading): part of hyperbufd, and linked on its
# own by test_unit_config and the demo, as by any program that loads a config.
CONFIG_SRC  := $(wildcard daemon/config*.c)
# Each backend has a host side (linked into hyperbufd) and a guest side (into libhyperbuf),
# behind backends/backend.h. backends/xen: ring.c and desc.c need no Xen library and are always
# built (unit tests use them); the rest only WITH_XEN=1, the library getting none.c otherwise.
KVM_HOST    := backends/kvm/host.c backends/kvm/policy.c backends/kvm/ivshmem.c backends/kvm/restore.c \
	backends/kvm/ivshmem_ids.c backends/kvm/ivshmem_listen.c \
	backends/kvm/pool.c backends/kvm/slots.c
KVM_GUEST   := backends/kvm/guest.c backends/kvm/attach.c backends/kvm/ivshmem_client.c \
	backends/kvm/bars.c backends/kvm/dmabuf.c \
	backends/kvm/port.c backends/kvm/pool_window.c backends/kvm/doorbell.c
XEN_PURE    := backends/xen/ring.c backends/xen/desc.c
XEN_HOST    := backends/xen/host.c backends/xen/vchan.c
XEN_GUEST   := backends/xen/grants.c backends/xen/vchan_client.c
LIB_SRC     := $(wildcard libclient/*.c) $(KVM_GUEST)
DAEMON_SRC  := $(wildcard daemon/*.c) $(KVM_HOST)
ifeq ($(WITH_XEN),1)
LIB_SRC     += $(XEN_GUEST) $(XEN_PURE)
DAEMON_SRC  += $(XEN_HOST) $(XEN_PURE)
else
LIB_SRC     += backends/xen/none.c
endif
GEN_C       := $(B)/gen/protocol/hyperbuf.pb-c.c
GEN_H       := $(B)/gen/protocol/hyperbuf.pb-c.h
# The daemon's restart state (daemon/state.proto): hyperbufd's alone.
STATE_GEN_C := $(B)/gen/daemon/state.pb-c.c
STATE_GEN_H := $(B)/gen/daemon/state.pb-c.h

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
PROTO_OBJ  := $(call obj,$(PROTO_SRC)) $(B)/obj/gen/protocol/hyperbuf.pb-c.o
COMMON_OBJ := $(call obj,$(COMMON_SRC))
LIB_OBJ    := $(call obj,$(LIB_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC)) $(B)/obj/gen/daemon/state.pb-c.o
# hyperbufd without its main(): what runs the daemon in another program's process (the fuzz
# target tests/fuzz/fuzz_daemon.c).
DAEMON_CORE_OBJ := $(filter-out $(B)/obj/daemon/main.o,$(DAEMON_OBJ))

# The config loader, linked by hyperbufd and also by the demo and test_unit_config.
DAEMON_CONFIG_OBJ := $(call obj,$(CONFIG_SRC))

LIBSO      := $(B)/libhyperbuf.so.$(VERSION)
LIBA       := $(B)/libhyperbuf.a
PROGS      := $(B)/hyperbufd $(B)/hyperbufctl $(B)/hyperbuf-demo

all: $(PROGS) $(LIBSO) $(B)/libhyperbuf.so $(LIBA) $(B)/hyperbuf.pc $(B)/man3/.stamp gst-plugin

$(GEN_C) $(GEN_H): protocol/hyperbuf.proto | $(DEPS_OK)
	@mkdir -p $(B)/gen
	protoc-c --proto_path=. --c_out=$(B)/gen protocol/hyperbuf.proto

$(STATE_GEN_C) $(STATE_GEN_H): daemon/state.proto protocol/hyperbuf.proto | $(DEPS_OK)
	@mkdir -p $(B)/gen
	protoc-c --proto_path=. --c_out=$(B)/gen daemon/state.proto

$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Wno-error -c $< -o $@

$(B)/obj/%.o: %.c $(GEN_H) $(STATE_GEN_H) $(KNOBS_STAMP) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(B)/obj $(B)/kvm/obj $(B)/kvm/pic -name '*.d' 2>/dev/null)

$(LIBSO): $(LIB_OBJ) $(PROTO_OBJ) $(COMMON_OBJ) libclient/libhyperbuf.map
	$(CC) $(LDSAN) -shared -Wl,-soname,libhyperbuf.so.$(SOMAJOR) \
		-Wl,--version-script=libclient/libhyperbuf.map -o $@ $(LIB_OBJ) $(PROTO_OBJ) $(COMMON_OBJ) \
		$(DEPS_LIBS_LIB) $(XEN_LIBS_LIB) $(LDFLAGS)
$(B)/libhyperbuf.so: $(LIBSO)
	ln -sf libhyperbuf.so.$(VERSION) $(B)/libhyperbuf.so.$(SOMAJOR)
	ln -sf libhyperbuf.so.$(VERSION) $@
# The static library is one relocatable object whose hidden symbols are made local: like the
# shared one, it gives a program hb_* and nothing else to clash with.
$(B)/libhyperbuf.o: $(LIB_OBJ) $(PROTO_OBJ) $(COMMON_OBJ)
	$(CC) $(LDSAN) -r -nostdlib -o $@.tmp $^
	objcopy --localize-hidden $@.tmp $@
	rm -f $@.tmp
$(LIBA): $(B)/libhyperbuf.o
	rm -f $@ && ar rcs $@ $^

$(B)/hyperbufd: $(DAEMON_OBJ) $(PROTO_OBJ) $(COMMON_OBJ)
	$(CC) $(LDSAN) -o $@ $^ -lev $(shell pkg-config --libs inih libprotobuf-c) $(XEN_LIBS_DAEMON) \
		$(LDFLAGS)
CTL_SRC := tools/hyperbufctl.c tools/hyperbufctl_conn.c tools/hyperbufctl_list.c \
	tools/hyperbufctl_print.c tools/hyperbufctl_watch.c
$(B)/hyperbufctl: $(call obj,$(CTL_SRC)) $(PROTO_OBJ) $(COMMON_OBJ)
	$(CC) $(LDSAN) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) $(LDFLAGS)
# The demo reads the daemon's config with the daemon's own loader.
DEMO_SRC := tools/demo.c tools/demo_consumer.c tools/demo_producer.c tools/demo_report.c \
	tools/pattern.c tools/png.c tools/spawn.c
$(B)/hyperbuf-demo: $(call obj,$(DEMO_SRC)) $(DAEMON_CONFIG_OBJ) $(COMMON_OBJ) $(LIBA)
	$(CC) $(LDSAN) -o $@ $^ $(shell pkg-config --libs inih libprotobuf-c libpng) $(XEN_LIBS_LIB) \
		$(LDFLAGS)

# ---- the GStreamer plugin (gst/, docs/GSTREAMER.md) -------------------------------------
# Built when GStreamer's development packages are installed; without them only the plugin is
# skipped, and the build says so. It links the static library: the plugin is self-contained.
GST_PKGS  := gstreamer-1.0 gstreamer-base-1.0 gstreamer-video-1.0
ifeq ($(origin WITH_GST),undefined)
WITH_GST := $(shell pkg-config --exists $(GST_PKGS) 2>/dev/null && echo 1 || echo 0)
endif
GST_PLUGINDIR ?= $(shell pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null || \
	echo $(LIBDIR)/gstreamer-1.0)
GST_SRC    := $(wildcard gst/*.c)
GST_PLUGIN := $(B)/gst/libgsthyperbuf.so
GST_RUNNER := $(B)/tests/gst/hbgst-run
# The GStreamer suite links the system plugins it needs from GStreamer's own folder.
$(call obj,tests/test_it_gst.c): ALL_CFLAGS += -DHB_GST_PLUGINDIR='"$(GST_PLUGINDIR)"'
ifeq ($(WITH_GST),1)
# GStreamer's headers are system headers: our warnings are not theirs.
GST_CFLAGS = $(shell pkg-config --cflags $(GST_PKGS) | sed 's/-I/-isystem /g')
GST_LIBS   = $(shell pkg-config --libs $(GST_PKGS))
$(call obj,$(GST_SRC) tests/gst/run.c): ALL_CFLAGS += $(GST_CFLAGS)
$(GST_PLUGIN): $(call obj,$(GST_SRC)) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -shared -Wl,--exclude-libs,ALL -o $@ $^ $(GST_LIBS) \
		$(shell pkg-config --libs libprotobuf-c) $(XEN_LIBS_LIB) -lpthread $(LDFLAGS)
$(GST_RUNNER): $(call obj,tests/gst/run.c)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $^ $(GST_LIBS) $(LDFLAGS)
gst-plugin: $(GST_PLUGIN)
gst-tests: $(GST_PLUGIN) $(GST_RUNNER)
else
gst-tests:
gst-plugin:
	@echo "GStreamer development packages not found: skipping the hyperbuf GStreamer plugin" \
		"(apt-get install libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)"
endif

# Section-3 pages, one per group of calls, from the header's comments (tools/man3.sh).
$(B)/man3/.stamp: include/hyperbuf.h tools/man3.sh
	sh tools/man3.sh include/hyperbuf.h $(@D) $(VERSION)
	@touch $@

# The paths in hyperbuf.pc are install-time ones: `make install PREFIX=X` writes its own from
# hyperbuf.pc.in, whatever PREFIX the build had.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	-e 's|@XEN_REQUIRES@|$(XEN_PC_REQUIRES)|'
$(B)/hyperbuf.pc: hyperbuf.pc.in Makefile $(KNOBS_STAMP)
	@mkdir -p $(@D)
	$(PC_SED) $< > $@

# ---- tests -----------------------------------------------------------------------------
# test_unit_*: protocol/ and daemon units, no daemon process. test_it_*: the real daemon and
# library, emulated VMs. Each links only what it needs so parts can be built on their own.
UNIT_SRC   := $(wildcard tests/test_unit_*.c)
IT_SRC     := $(wildcard tests/test_it_*.c)
VM_SRC     := $(wildcard tests/test_vm_*.c)
UNIT_BINS  := $(patsubst tests/%.c,$(B)/tests/%,$(UNIT_SRC))
IT_BINS    := $(patsubst tests/%.c,$(B)/tests/%,$(IT_SRC))
VM_BINS    := $(patsubst tests/%.c,$(B)/tests/%,$(VM_SRC))
SH_BINS    := $(patsubst tests/%.sh,$(B)/tests/%,$(wildcard tests/test_sh_*.sh))
TEST_BINS  := $(UNIT_BINS) $(IT_BINS) $(VM_BINS) $(SH_BINS)
UNIT_LIBS_test_unit_config := -linih

$(UNIT_BINS): $(B)/tests/%: $(call obj,tests/%.c) $(call obj,tests/harness.c) $(PROTO_OBJ) \
		$(COMMON_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $^ $(UNIT_LIBS_$*) \
		$(shell pkg-config --libs libprotobuf-c) $(LDFLAGS)
$(B)/tests/test_unit_config: $(DAEMON_CONFIG_OBJ)
$(B)/tests/test_unit_xen: $(call obj,$(XEN_PURE))
$(B)/tests/test_unit_state: $(call obj,daemon/journal.c daemon/state_read.c) \
	$(B)/obj/gen/daemon/state.pb-c.o

# What every integration and VM suite links: the harness, the daemon launcher and the helpers of
# tests/it_common.h. Tests that speak the protocol themselves (hostile frames) link protocol/ and
# common/ on their own: the library's copies are local to it.
IT_SUPPORT := $(call obj,tests/harness.c tests/util.c tests/it_common.c tests/raw_wire.c \
	tools/pattern.c tools/spawn.c) $(PROTO_OBJ) $(COMMON_OBJ)
# Objects a suite adds below come after the archive in $^: they are linked before it.
$(IT_BINS) $(VM_BINS): $(B)/tests/%: $(call obj,tests/%.c) $(IT_SUPPORT) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $(filter-out $(LIBA),$^) $(LIBA) $(shell pkg-config --libs libprotobuf-c) \
		$(XEN_LIBS_LIB) -lpthread $(LDFLAGS)
# The VM suites boot their guests with tests/vm_common.c.
$(VM_BINS): $(call obj,tests/vm_common.c)
# The fence suites add the agent and the fence helpers (tests/fence_common.h); two of them the
# ported stress selftests (tests/fence_stress.h) too.
FENCE_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_it_fence_*.c))
$(FENCE_BINS): $(call obj,tests/fence_common.c)
$(B)/tests/test_it_fence_selftests $(B)/tests/test_it_fence_stress: $(call obj,tests/fence_stress.c)

# The conformance suite (tests/conform/, docs/TESTING.md): cases written once as roles, run by
# a runner per target: test_it_conform (emulated VMs), test_vm_conform (QEMU guests, whose
# program hbconform is the same cases built static into the image $(B)/kvm/conform/).
CONFORM_SRC := $(filter-out tests/conform/hub.c,$(wildcard tests/conform/*.c)) tests/raw_wire.c
$(B)/tests/test_it_conform $(B)/tests/test_vm_conform: $(call obj,$(CONFORM_SRC) tests/conform/hub.c)

# The program the Xen cases run in dom0 and in the domUs: the public API only, as any user's
# program would be (tests/xen/README.md).
XEN_PEER := $(B)/tests/xen/hb-xen-peer
$(XEN_PEER): $(call obj,tests/xen/peer.c tools/pattern.c) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) $(XEN_LIBS_LIB) -lpthread \
		$(LDFLAGS)

# The conformance suite's Xen target (docs/TESTING.md): the hub in dom0 (its daemon, dom0's
# server) and the cases' server in each domU, over a vchan stream each (tests/xen/cf_stream.c,
# libxenvchan). Both are the sanitized build, as everything the Xen cases boot.
XEN_CONFORM_DOM0 := $(B)/tests/xen/hb-xen-conform-dom0
XEN_CONFORM_DOMU := $(B)/tests/xen/hb-xen-conform
XEN_CONFORM_OBJ  := $(call obj,tests/xen/cf_stream.c $(CONFORM_SRC))
$(XEN_CONFORM_DOM0): $(call obj,tests/xen/conform_dom0.c tests/conform/hub.c) $(XEN_CONFORM_OBJ) \
		$(IT_SUPPORT) $(LIBA)
# The domUs' raw streams (tests/xen/cf_raw.c) claim a vchan as the library does: its
# transport and the protocol's objects are linked on their own (the archive's are local to it).
$(XEN_CONFORM_DOMU): $(call obj,tests/xen/conform_domU.c tools/pattern.c tests/xen/cf_raw.c \
		backends/xen/vchan_client.c backends/xen/ring.c) $(XEN_CONFORM_OBJ) $(PROTO_OBJ) \
		$(COMMON_OBJ) $(LIBA)
$(XEN_CONFORM_DOM0) $(XEN_CONFORM_DOMU):
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $(filter-out $(LIBA),$^) $(LIBA) $(shell pkg-config --libs libprotobuf-c) \
		$(shell pkg-config --libs xenvchan) $(XEN_LIBS_LIB) -lpthread $(LDFLAGS)
ifeq ($(WITH_XEN),1)
XEN_CONFORM := $(XEN_CONFORM_DOM0) $(XEN_CONFORM_DOMU)
endif

# The VM suite's guest: a static program (libhyperbuf, libprotobuf-c.a from Debian) in a busybox
# initramfs with the kernel's virtio modules. It runs in the guest, so it is never sanitized:
# its objects are built apart, into $(B)/kvm/. Without busybox-static, cpio or a kernel the
# script writes $(B)/kvm/missing instead and the VM cases skip, saying why.
GUEST_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -DHB_VERSION_STRING='"$(VERSION)"' \
	-DHB_SYSCONFDIR='"$(SYSCONFDIR)"' -Iinclude -iquote $(B)/gen -iquote . $(DEPS_CFLAGS)
# A KVM guest has no Xen: its library gets the Xen-less client whatever WITH_XEN says.
GUEST_LIB_SRC := tests/kvm/report.c tools/pattern.c $(PROTO_SRC) $(COMMON_SRC) \
	$(filter-out $(XEN_GUEST) $(XEN_PURE) backends/xen/none.c,$(LIB_SRC)) backends/xen/none.c
kvm_obj    = $(patsubst %.c,$(B)/kvm/obj/%.o,$(1)) $(B)/kvm/obj/gen/protocol/hyperbuf.pb-c.o
GUEST_OBJ  := $(call kvm_obj,tests/kvm/guest.c $(GUEST_LIB_SRC))
$(B)/kvm/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -Wno-error -c $< -o $@
$(B)/kvm/obj/%.o: %.c $(GEN_H) $(STATE_GEN_H) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@
$(B)/kvm/hbguest: $(GUEST_OBJ)
	$(CC) -static -o $@ $^ -lprotobuf-c -lpthread
$(B)/kvm/initramfs.cpio.gz: $(B)/kvm/hbguest tests/kvm/init tests/kvm/mkinitramfs.sh
	sh tests/kvm/mkinitramfs.sh $(B)/kvm $(B)/kvm/hbguest tests/kvm/init
# The dma-buf image (docs/DMABUF.md, tests/test_vm_dmabuf.c): the same busybox guest with vgem,
# hyperbuf.ko and udmabuf.ko built against the kernel's headers (tests/kvm/mkmodules.sh), a
# static hyperbufd and hyperbufctl (its udmabuf case runs the daemon and its clients inside the
# guest) and the dma-buf guest program. Without the headers or linux-source-6.1, $(B)/kvm/dmabuf/missing says
# so and those cases skip.
DMABUF_GUEST_OBJ := $(call kvm_obj,$(wildcard tests/kvm/dmabuf*.c) $(GUEST_LIB_SRC))
$(B)/kvm/hbdmabuf: $(DMABUF_GUEST_OBJ)
	$(CC) -static -o $@ $^ -lprotobuf-c -lpthread
$(B)/kvm/hyperbufd: $(call kvm_obj,$(wildcard daemon/*.c) $(KVM_HOST) $(PROTO_SRC) $(COMMON_SRC)) \
		$(B)/kvm/obj/gen/daemon/state.pb-c.o
	$(CC) -static -o $@ $^ -lev -linih -lprotobuf-c -lm
$(B)/kvm/hyperbufctl: $(call kvm_obj,$(CTL_SRC) $(PROTO_SRC) $(COMMON_SRC))
	$(CC) -static -o $@ $^ -lprotobuf-c
KMOD_SRC := $(wildcard kmod/*.c kmod/*.h) kmod/Kbuild tests/kvm/mkmodules.sh tests/kvm/udmabuf_shim.h
$(B)/kvm/dmabuf/initramfs.cpio.gz: $(B)/kvm/hbdmabuf $(B)/kvm/hyperbufd $(B)/kvm/hyperbufctl \
		tests/kvm/init tests/kvm/mkinitramfs.sh $(KMOD_SRC)
	HB_VM_MODULES=vgem HB_VM_FILES="$(B)/kvm/hyperbufd $(B)/kvm/hyperbufctl" HB_VM_KMODS=1 \
		sh tests/kvm/mkinitramfs.sh $(B)/kvm/dmabuf $(B)/kvm/hbdmabuf tests/kvm/init
$(VM_BINS): | $(B)/kvm/initramfs.cpio.gz $(B)/kvm/dmabuf/initramfs.cpio.gz
# The conformance suite's image (tests/test_vm_conform.c): the same busybox guest, its program
# the cases of tests/conform/ (tests/kvm/conform.c).
$(B)/kvm/hbconform: $(call kvm_obj,tests/kvm/conform.c $(CONFORM_SRC) $(GUEST_LIB_SRC))
	$(CC) -static -o $@ $^ -lprotobuf-c -lpthread
$(B)/kvm/conform/initramfs.cpio.gz: $(B)/kvm/hbconform tests/kvm/init tests/kvm/mkinitramfs.sh
	sh tests/kvm/mkinitramfs.sh $(B)/kvm/conform $(B)/kvm/hbconform tests/kvm/init
$(VM_BINS): | $(B)/kvm/conform/initramfs.cpio.gz

# hbholder plays systemd's part for a service (notify socket, fd store, Restart=on-failure) where
# there is no systemd: tests, benchmarks, make run (docs/RESTART.md). hbholder-svc is the fake
# service its suite, test_sh_holder, runs under it. Neither is a test case: no test_ name.
HOLDER_BINS := $(B)/tests/hbholder $(B)/tests/hbholder-svc
$(B)/tests/hbholder: $(call obj,tests/holder.c)
$(B)/tests/hbholder-svc: $(call obj,tests/test_holder_svc.c)
$(HOLDER_BINS):
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $^ $(LDFLAGS)

# The VM suite's GStreamer guests (vm_gst_*, docs/GSTREAMER.md): a second initramfs with
# GStreamer's libraries, two of its plugins, ours and the pipeline runner, only for those cases.
# Built apart as the guest program is, never sanitized, position-independent for the plugin.
ifeq ($(WITH_GST),1)
KVM_GST_SRC := $(filter-out tests/kvm/report.c tools/pattern.c,$(GUEST_LIB_SRC)) $(GST_SRC)
KVM_GST_OBJ := $(patsubst %.c,$(B)/kvm/pic/%.o,$(KVM_GST_SRC)) \
	$(B)/kvm/pic/gen/protocol/hyperbuf.pb-c.o
KVM_GST_CFLAGS = $(GUEST_CFLAGS) -fPIC -fvisibility=hidden $(GST_CFLAGS)
$(B)/kvm/pic/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(KVM_GST_CFLAGS) -Wno-error -c $< -o $@
$(B)/kvm/pic/%.o: %.c $(GEN_H) $(STATE_GEN_H) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(KVM_GST_CFLAGS) -MMD -MP -c $< -o $@
$(B)/kvm/gstbin/libgsthyperbuf.so: $(KVM_GST_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,--exclude-libs,ALL -o $@ $^ $(GST_LIBS) -lprotobuf-c -lpthread
$(B)/kvm/gstbin/hbgst-run: $(B)/kvm/pic/tests/gst/run.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(GST_LIBS)
# The image goes to $(B)/kvm/gst/ (vm_need("gst") in tests/vm_common.c), its programs first
# to $(B)/kvm/gstbin/.
$(B)/kvm/gst/initramfs.cpio.gz: $(B)/kvm/hbguest $(B)/kvm/gstbin/libgsthyperbuf.so \
		$(B)/kvm/gstbin/hbgst-run tests/kvm/init tests/kvm/gst-case.sh tests/kvm/mkinitramfs.sh
	HB_VM_GST=$(B)/kvm/gstbin GST_PLUGINDIR=$(GST_PLUGINDIR) \
		sh tests/kvm/mkinitramfs.sh $(B)/kvm/gst $(B)/kvm/hbguest tests/kvm/init
gst-tests: $(B)/kvm/gst/initramfs.cpio.gz
$(VM_BINS): | $(B)/kvm/gst/initramfs.cpio.gz
endif

$(SH_BINS): $(B)/tests/%: tests/%.sh
	@mkdir -p $(@D)
	cp $< $@ && chmod +x $@
# test_sh_xen's helpers, next to it as in the tree.
XEN_SCRIPTS := $(patsubst tests/%,$(B)/tests/%,$(wildcard tests/xen/*.sh))
$(XEN_SCRIPTS): $(B)/tests/xen/%: tests/xen/%
	@mkdir -p $(@D)
	cp $< $@

tests: all $(TEST_BINS) $(HOLDER_BINS) $(B)/bench $(B)/bench-vm $(XEN_PEER) $(XEN_CONFORM) \
	$(XEN_SCRIPTS) \
	$(B)/kvm/initramfs.cpio.gz $(B)/kvm/conform/initramfs.cpio.gz gst-tests fuzz-targets-if-clang

# The house checks, before anything is built: the floors (every include goes down or stays in its
# folder) and the sizes (no product file over 600 lines, no function over 100).
house:
	sh tools/check-layers.sh
	sh tools/check-size.sh

# make check: the house checks, the sanitized build in build/asan, every suite, one closing line.
check: house
	$(MAKE) SAN=1 B=build/asan tests
	sh tests/run-tests.sh build/asan

check-unit:
	$(MAKE) SAN=1 B=build/asan tests
	sh tests/run-tests.sh build/asan 'test_unit_*'

check-kvm:
	$(MAKE) SAN=1 B=build/asan tests
	sh tests/run-tests.sh build/asan 'test_vm_*'

# The conformance suite alone (tests/conform/, docs/TESTING.md): every case on each target, the
# emulated VMs, the QEMU guests and the Xen domUs (which skip, with the reason, without QEMU
# or the Xen packages).
check-conform:
	$(MAKE) SAN=1 B=build/asan tests
	sh tests/run-tests.sh build/asan 'test_*_conform'

# The Xen cases alone, the conformance suite's Xen target among them, in one boot (they skip,
# with the reason, when the Xen or QEMU packages are missing).
check-xen:
	$(MAKE) SAN=1 B=build/asan tests
	sh tests/run-tests.sh build/asan 'test_sh_xen*'

# ---- fuzzing (docs/FUZZING.md) ------------------------------------------------------------
# One libFuzzer target per subject: tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/NAME/,
# saved crashes in tests/fuzz/regress/NAME/. They are built by a make of their own (FUZZ=1,
# clang, WITH_XEN=0: the Xen host backend needs a hypervisor; its pure checks are a target) into
# $(B)/fuzz, whenever clang and its libFuzzer runtime are installed (tests/fuzz/have-clang.sh).
FUZZ_TARGETS := frame refdir config desc daemon
FUZZ_SECONDS ?= 10
FUZZ_BINS    := $(patsubst %,$(B)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_MAKE     = $(MAKE) --no-print-directory FUZZ=1 SAN=0 WITH_XEN=0 CC=clang B=$(B)/fuzz \
	fuzz-targets

$(FUZZ_BINS): $(B)/fuzz_%: $(call obj,tests/fuzz/fuzz_%.c) $(PROTO_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFUZZ) -o $@ $^ $(FUZZ_LIBS_$*) $(shell pkg-config --libs libprotobuf-c) $(LDFLAGS)
$(B)/fuzz_config: $(DAEMON_CONFIG_OBJ)
$(B)/fuzz_desc: $(call obj,$(XEN_PURE))
$(B)/fuzz_daemon: $(call obj,tests/fuzz/daemon_rig.c) $(DAEMON_CORE_OBJ)
FUZZ_LIBS_config := -linih
FUZZ_LIBS_daemon := -lev -linih

ifeq ($(FUZZ),1)
fuzz-targets: $(FUZZ_BINS)
else
fuzz-targets:
	@echo "fuzz-targets is the FUZZ=1 build of make fuzz: run make fuzz"; exit 2
endif

fuzz-targets-if-clang:
	+@if reason=$$(sh tests/fuzz/have-clang.sh); then $(FUZZ_MAKE); \
	else echo "fuzz targets not built: $$reason"; fi

# Each target for FUZZ_SECONDS from a copy of its corpus and saved crashes; a crash, leak or
# timeout fails it, naming the input that did it.
fuzz:
	@reason=$$(sh tests/fuzz/have-clang.sh) || { echo "make fuzz: $$reason"; exit 1; }
	+@$(FUZZ_MAKE)
	sh tests/fuzz/run.sh fuzz $(B)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# No fuzzing: every seed and saved crash once through its target (tests/test_sh_fuzz.sh does the
# same for make check).
fuzz-regress:
	+@if reason=$$(sh tests/fuzz/have-clang.sh); then $(FUZZ_MAKE) && \
		sh tests/fuzz/run.sh regress $(B)/fuzz $(FUZZ_TARGETS); \
	else echo "SKIP: fuzz-regress: $$reason"; fi

# Rewrites the generated seeds in tests/fuzz/corpus/ (and copies the shipped configs there):
# after a protocol change, then commit what changed.
$(B)/tests/fuzz/gen_corpus: $(call obj,tests/fuzz/gen_corpus.c tests/fuzz/gen_client.c \
		tests/fuzz/gen_daemon.c) $(PROTO_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) $(LDFLAGS)
fuzz-corpus: $(B)/tests/fuzz/gen_corpus
	$(B)/tests/fuzz/gen_corpus tests/fuzz/corpus
	cp configs/*.conf tests/fuzz/corpus/config/

# ---- run and bench ---------------------------------------------------------------------
run: all
	$(B)/hyperbuf-demo --daemon $(B)/hyperbufd --config configs/local.conf

$(B)/bench: $(call obj,tests/bench.c tests/bench_relay.c tests/bench_restart.c tests/bench_scale.c tests/bench_fps.c tests/bench_util.c tools/pattern.c tools/spawn.c) $(LIBA)
	$(CC) $(LDSAN) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) $(XEN_LIBS_LIB) $(LDFLAGS)
# A guest's read bandwidth through hyperbuf.ko's cached mapping against sysfs's resource2 and
# resource2_wc, in one QEMU guest (tests/bench_vm.c; it skips, saying why, without QEMU).
$(B)/bench-vm: $(call obj,tests/bench_vm.c tests/vm_common.c) $(IT_SUPPORT) $(LIBA) \
		| $(B)/kvm/dmabuf/initramfs.cpio.gz
	$(CC) $(LDSAN) -o $@ $(filter-out $(LIBA),$^) $(LIBA) $(shell pkg-config --libs libprotobuf-c) \
		$(XEN_LIBS_LIB) -lpthread $(LDFLAGS)

# (d) restarts against cold starts (under tests/hbholder); bench-vm: a guest's read bandwidth
# through hyperbuf.ko; bench.sh: hyperbufsink ! hyperbufsrc next to shmsink ! shmsrc and tcp.
bench: all $(B)/bench $(B)/bench-vm $(HOLDER_BINS) gst-tests
	$(B)/bench --daemon $(B)/hyperbufd --holder $(B)/tests/hbholder
	HB_BUILD=$(abspath $(B)) $(B)/bench-vm vm_guest_read_bandwidth || [ $$? -eq 77 ]
	HB_BUILD=$(abspath $(B)) $(B)/bench-vm vm_fence_vs_doorbell || [ $$? -eq 77 ]
	sh tests/gst/bench.sh $(B)

# ---- install ---------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(DATADIR)/hyperbuf
	install -m 755 $(B)/hyperbufd $(DESTDIR)$(SBINDIR)/hyperbufd
	install -m 755 $(B)/hyperbufctl $(DESTDIR)$(BINDIR)/hyperbufctl
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/libhyperbuf.so.$(VERSION)
	ln -sf libhyperbuf.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhyperbuf.so.$(SOMAJOR)
	ln -sf libhyperbuf.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhyperbuf.so
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/libhyperbuf.a
	install -m 644 include/hyperbuf.h $(DESTDIR)$(INCLUDEDIR)/hyperbuf.h
	$(PC_SED) hyperbuf.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/hyperbuf.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/hyperbuf.pc
	sed 's|/usr/local/sbin/hyperbufd|$(SBINDIR)/hyperbufd|' configs/hyperbufd.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/hyperbufd.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/hyperbufd.service
	install -m 644 configs/hyperbufd.sysusers $(DESTDIR)$(SYSUSERSDIR)/hyperbuf.conf
	install -m 644 configs/hyperbufd-xen.conf $(DESTDIR)$(DATADIR)/hyperbuf/hyperbufd-xen.conf
	install -m 644 docs/hyperbufctl.1 $(DESTDIR)$(MANDIR)/man1/hyperbufctl.1
	install -m 644 docs/hyperbuf.conf.5 $(DESTDIR)$(MANDIR)/man5/hyperbuf.conf.5
	install -m 644 docs/hyperbufd.8 $(DESTDIR)$(MANDIR)/man8/hyperbufd.8
	install -m 644 $(B)/man3/*.3 $(DESTDIR)$(MANDIR)/man3/
ifeq ($(WITH_GST),1)
	install -d $(DESTDIR)$(GST_PLUGINDIR)
	install -m 755 $(GST_PLUGIN) $(DESTDIR)$(GST_PLUGINDIR)/libgsthyperbuf.so
endif

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/hyperbufd $(DESTDIR)$(BINDIR)/hyperbufctl \
		$(DESTDIR)$(LIBDIR)/libhyperbuf.so* $(DESTDIR)$(LIBDIR)/libhyperbuf.a \
		$(DESTDIR)$(INCLUDEDIR)/hyperbuf.h $(DESTDIR)$(LIBDIR)/pkgconfig/hyperbuf.pc \
		$(DESTDIR)$(MANDIR)/man1/hyperbufctl.1 $(DESTDIR)$(MANDIR)/man5/hyperbuf.conf.5 \
		$(DESTDIR)$(MANDIR)/man8/hyperbufd.8 $(DESTDIR)$(GST_PLUGINDIR)/libgsthyperbuf.so \
		$(DESTDIR)$(SYSTEMDUNITDIR)/hyperbufd.service $(DESTDIR)$(SYSUSERSDIR)/hyperbuf.conf \
		$(DESTDIR)$(DATADIR)/hyperbuf/hyperbufd-xen.conf $(DESTDIR)$(MANDIR)/man3/hb_*.3

# libhyperbuf's ABI baseline (tools/abi-check.sh): make check fails on a break of it.
abi-baseline: $(LIBSO)
	sh tools/abi-check.sh --write $(LIBSO)

# kmod/ is kernel code, in the kernel's style.
format:
	clang-format -i $$(git ls-files '*.c' '*.h' ':!kmod')

clean:
	rm -rf build

.PHONY: gst-plugin gst-tests all house tests check check-unit check-kvm check-conform check-xen run bench \
	install uninstall format clean fuzz fuzz-regress fuzz-targets fuzz-targets-if-clang \
	fuzz-corpus abi-baseline

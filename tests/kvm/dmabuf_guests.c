/*
 * The guests case (docs/DMABUF.md, "KVM guests"): two KVM guests with hyperbuf.ko loaded,
 * nothing else changed. vm1 renders a 1080p frame through its buffer's dma-buf, attaches its
 * write fence and shares the buffer with vm2; vm2 makes a dma-buf of its import, vgem imports
 * it and shows the frame, and sync_files follow vm1's timeline T:
 *
 *   (T,1)  pending while the dma-buf's reservation makes readers wait; vm1 signals: 1
 *   (T,2)  vm1 fails it with EIO: the sync_file's status is -EIO
 *   (T,3)  the host test kills vm1's QEMU while vm2 polls: -EPIPE, nobody hangs
 *
 * vm2 paces vm1 with a timeline U of its own, whose id travels in an export's metadata. Then
 * vm2 runs the hostile ioctls and unloads the module.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/kvm/dmabuf.h"
#include "tools/pattern.h"

#define FRAME_NO 7
/* The library signals a sync_file as soon as it hears; the module's own timeout must not
 * race a slow TCG guest. */
#define MODULE_PARAMS "fence_timeout_ms=120000"

struct meta {
	uint64_t timeline;
	uint32_t ready; /* vm1: the fence is attached */
};

/* The library maps the pool through hyperbuf.ko's node, not sysfs. */
static void check_cached_window(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	GCHECK(f != NULL);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "/dev/hyperbuf/pool-") != NULL;
	fclose(f);
	GCHECK(found);
}

/* vm1 renders the frame through a writable dma-buf of its own buffer. */
static void render_through_dmabuf(struct hb_buffer *b)
{
	int fd = hb_buffer_dmabuf(b, 0);
	void *p;

	GCHECK(fd >= 0);
	p = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	GCHECK(p != MAP_FAILED);
	tool_pattern_frame(p, FRAME_W, FRAME_H, FRAME_STRIDE, FRAME_NO);
	munmap(p, FRAME_BYTES);
	close(fd);
	GCHECK(tool_pattern_frame_check(hb_buffer_data(b), FRAME_W, FRAME_H, FRAME_STRIDE,
					FRAME_NO) < 0);
}

/* Before hyperbuf.ko: the pools are mapped through sysfs, and there is no dma-buf. */
static void without_module(void)
{
	struct hb_client *c = connect_default();
	struct hb_buffer *b = hb_buffer_alloc(c, 2, PAGE, 0);

	GCHECK(b != NULL);
	GCHECK_ERR(hb_buffer_dmabuf(b, 0), ENODEV);
	hb_buffer_free(b);
	hb_disconnect(c);
	say("HBVM-STEP vm1: no hyperbuf.ko, no dma-buf: ENODEV");
}

static void wait_fence(struct hb_client *c, uint64_t timeline, uint64_t value)
{
	struct hb_fence f = {.timeline = timeline, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);

	GCHECK(s != NULL);
	GCHECK(hb_sync_wait(s, HBVM_WAIT_MS) == 0 && hb_sync_status(s) == 1);
	hb_sync_close(s);
}

static int vm1(void)
{
	struct hb_client *c;
	struct hb_timeline *t;
	struct hb_buffer *b;
	struct hb_import *ack;
	struct hb_event ev;
	struct meta m = {0};
	struct hb_fence f;
	uint64_t u;
	struct hb_id id;

	without_module();
	load_module("hyperbuf", MODULE_PARAMS);
	c = connect_default();
	check_cached_window();
	t = hb_timeline_create(c);
	b = hb_buffer_alloc(c, 2, FRAME_BYTES, 0);
	GCHECK(t && b);
	render_through_dmabuf(b);
	m.timeline = hb_timeline_id(t);
	GCHECK(hb_export(b, &m, sizeof(m), 0, &id) == 0);
	f = (struct hb_fence){.timeline = m.timeline, .value = 1};
	GCHECK(hb_attach_fence(c, &id, &f, HB_ACCESS_WRITE) == 0);
	m.ready = 1;
	export_until_imported(c, b, &m, sizeof(m), &id);
	say("HBVM-STEP vm1: frame rendered through a dma-buf, shared with its write fence pending");

	/* vm2's pacing timeline. */
	wait_event(c, HB_EVENT_EXPORTED, 2, &ev);
	GCHECK(ev.meta_len == sizeof(u));
	memcpy(&u, ev.meta, sizeof(u));
	ack = hb_import(c, &ev.id, 0);
	GCHECK(ack != NULL);
	wait_fence(c, u, 1);
	GCHECK(hb_timeline_signal(t, 1) == 0);
	wait_fence(c, u, 2);
	GCHECK(hb_timeline_fail(t, 2, -EIO) == 0);
	wait_fence(c, u, 3);
	/* The host test kills this VM now; (T,3) is never signalled. */
	for (;;)
		pause();
}

/* vm2's half of (T,1): the reservation and a sync_file wait for vm1's writer. */
static void first_fence(struct hb_client *c, struct hb_timeline *u, int dfd, uint64_t timeline)
{
	struct hb_fence f = {.timeline = timeline, .value = 1};
	struct hb_sync *s = hb_sync_open(c, &f);
	int es = export_sync_file(dfd, false), sf;

	GCHECK(s != NULL);
	GCHECK(!readable(es) && sync_file_status(es) == 0);
	sf = hb_sync_file(s);
	GCHECK(sf >= 0 && sync_file_status(sf) == 0);
	/* Closing the handle does not cancel the sync_file. */
	hb_sync_close(s);
	GCHECK(hb_timeline_signal(u, 1) == 0);
	wait_sync_file(c, sf, HBVM_WAIT_MS);
	GCHECK(sync_file_status(sf) == 1);
	wait_sync_file(c, es, HBVM_WAIT_MS);
	GCHECK(sync_file_status(es) == 1);
	close(sf);
	close(es);
	say("HBVM-STEP (T,1): sync_file and the dma-buf's reservation signalled");
}

/* A sync_file of (timeline, value) once vm1 was told to go on with step `step`. */
static int fence_file(struct hb_client *c, struct hb_timeline *u, uint64_t timeline, uint64_t value,
		      struct hb_sync **s)
{
	struct hb_fence f = {.timeline = timeline, .value = value};
	int sf;

	*s = hb_sync_open(c, &f);
	GCHECK(*s != NULL);
	sf = hb_sync_file(*s);
	GCHECK(sf >= 0);
	GCHECK(hb_timeline_signal(u, value) == 0);
	return sf;
}

static void later_fences(struct hb_client *c, struct hb_timeline *u, uint64_t timeline)
{
	struct hb_sync *s;
	uint64_t t0;
	int sf;

	sf = fence_file(c, u, timeline, 2, &s);
	wait_sync_file(c, sf, HBVM_WAIT_MS);
	GCHECK(sync_file_status(sf) == -EIO && hb_sync_status(s) == -EIO);
	close(sf);
	hb_sync_close(s);
	say("HBVM-STEP (T,2): failed with EIO, the sync_file says -EIO");

	sf = fence_file(c, u, timeline, 3, &s);
	/* Pending until the kill, not because of anything before it. */
	hb_dispatch(c, 0);
	GCHECK(sync_file_status(sf) == 0 && hb_sync_status(s) == 0);
	say("HBVM-READY kill vm1");
	t0 = now_us();
	wait_sync_file(c, sf, HBVM_WAIT_MS);
	GCHECK(sync_file_status(sf) == -EPIPE && hb_sync_status(s) == -EPIPE);
	say("HBVM-INFO sync_file_error_after_kill_ms=%llu",
	    (unsigned long long)((now_us() - t0) / 1000));
	close(sf);
	hb_sync_close(s);
	say("HBVM-STEP (T,3): vm1 killed mid-wait, the sync_file says -EPIPE");
}

static int vm2(void)
{
	struct hb_client *c;
	struct hb_timeline *u;
	struct hb_buffer *ack;
	struct hb_import *im;
	struct hb_event ev;
	struct meta m;
	struct hb_id ack_id;
	uint64_t uid;
	uint32_t handle;
	int vgem, dfd;

	load_module("hyperbuf", MODULE_PARAMS);
	c = connect_default();
	check_cached_window();
	do {
		wait_event(c, HB_EVENT_EXPORTED, 1, &ev);
		memcpy(&m, ev.meta, sizeof(m));
	} while (ev.meta_len != sizeof(m) || !m.ready);
	im = hb_import(c, &ev.id, 0);
	GCHECK(im != NULL);
	dfd = hb_import_dmabuf(im, 0);
	GCHECK(dfd >= 0);
	vgem = vgem_open();
	handle = check_dmabuf_frame(vgem, dfd, FRAME_NO, false, false);
	say("HBVM-STEP vm2: vgem imported the dma-buf of vm1's frame, every byte right");

	u = hb_timeline_create(c);
	ack = hb_buffer_alloc(c, 1, PAGE, 0);
	GCHECK(u && ack);
	/* Its id travels in metadata: vm1 must be let see it (docs/SECURITY.md, timelines). */
	GCHECK(hb_timeline_share(u, 1) == 0);
	uid = hb_timeline_id(u);
	export_until_imported(c, ack, &uid, sizeof(uid), &ack_id);
	first_fence(c, u, dfd, m.timeline);
	/* vgem gives the same handle for the same dma-buf. */
	GCHECK(check_dmabuf_frame(vgem, dfd, FRAME_NO, false, true) == handle);
	vgem_fence_round_trip(vgem, handle, dfd);
	say("HBVM-STEP vgem's own write fence in the dma-buf's reservation: readers wait for it");
	later_fences(c, u, m.timeline);

	vgem_close(vgem, handle);
	close(vgem);
	close(dfd);
	hb_import_release(im);
	hb_buffer_free(ack);
	hb_timeline_destroy(u);
	hb_disconnect(c);
	hostile_ioctls();
	unload_refused_while_used();
	check_dmesg();
	return 0;
}

int guests_case(int role)
{
	return role == 1 ? vm1() : vm2();
}

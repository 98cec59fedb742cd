/*
 * The bells cases (docs/DMABUF.md, "Doorbells"; issue 12's goal 2): two KVM guests with
 * hyperbuf.ko ring each other through their vv pool device, the Doorbell register one way and
 * an MSI-X vector into an eventfd the other, with nothing of hyperbufd on the path.
 *
 *   bells      the ioctls' rules (hostile arguments, one file per vector, a closed file lets
 *              go), 50 ping-pongs, and a clean kernel log (test_vm_dmabuf)
 *              and 40 fenced ping-pongs through the library's fence slots, rung through the
 *              Doorbell register, with no frame from the daemon; then 130 with lazy records
 *              (hb_timeline_set_lazy), where one signal in 64 reaches the daemon
 *   bellbench  the same, then 2000 doorbell ping-pongs and 300 fenced ping-pongs through the
 *              library (timeline signal -> hb_sync_wait, each way) between the same two guests,
 *              through slots, with lazy records, and on watches alone; vm1 says the medians
 *              (HBVM-INFO) for bench-vm
 *
 * The two guests learn each other's peer id and timeline through a buffer vm1 shares with vm2
 * writable.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmod/hyperbuf_kmod.h"
#include "tests/kvm/dmabuf.h"

/* Fence runs: through fence slots, with lazy records, then (bellbench) on watches alone. */
enum { RUN_SLOTS, RUN_LAZY, RUN_WATCHED, RUNS };

struct board {
	volatile uint32_t peer[3]; /* [role]: ivshmem peer id + 1, once its vector is attached */
	volatile uint64_t timeline[RUNS][3]; /* [run][role] */
	volatile uint32_t done[RUNS][3];
};

struct bell {
	int node, efd;
	uint32_t peer; /* ours */
};

/* The pool node whose header names the group (every guest here has two BARs of one size). */
static int open_group_node(const char *group, int flags)
{
	DIR *d = opendir("/dev/hyperbuf");
	struct dirent *e;
	int found = -1;

	GCHECK(d != NULL);
	while (found < 0 && (e = readdir(d))) {
		char path[300];
		const struct hyperbuf_pool_header *h;
		int fd;

		if (strncmp(e->d_name, "pool-", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/hyperbuf/%s", e->d_name);
		fd = open(path, flags | O_CLOEXEC);
		GCHECK(fd >= 0);
		h = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
		GCHECK(h != MAP_FAILED);
		if (strncmp(h->name, group, sizeof(h->name)) == 0)
			found = fd;
		else
			close(fd);
		munmap((void *)h, PAGE);
	}
	closedir(d);
	if (found < 0)
		fail(__LINE__, "no /dev/hyperbuf/pool-* of group %s", group);
	return found;
}

static int irqfd(int node, int fd, uint32_t vector)
{
	struct hyperbuf_pool_irqfd a = {.fd = fd, .vector = vector};

	return ioctl(node, HYPERBUF_IOC_POOL_IRQFD, &a);
}

static int ring(int node, uint32_t peer, uint32_t vector)
{
	struct hyperbuf_pool_ring a = {.peer = peer, .vector = vector};

	return ioctl(node, HYPERBUF_IOC_POOL_RING, &a);
}

/* What the kernel counted on the pool devices' vectors, for a failure's message. */
static void say_interrupts(void)
{
	char line[256];
	FILE *f = fopen("/proc/interrupts", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "hyperbuf"))
			say("HBVM-STEP /proc/interrupts: %s", line);
	if (f)
		fclose(f);
}

static void bell_open(struct bell *b)
{
	struct hyperbuf_pool_bell_info info;

	b->node = open_group_node("vv", O_RDWR);
	GCHECK(ioctl(b->node, HYPERBUF_IOC_POOL_BELL_INFO, &info) == 0);
	if (info.vectors < 1)
		fail(__LINE__, "the vv device has no doorbells (vectors %u)", info.vectors);
	b->peer = info.peer;
	b->efd = eventfd(0, EFD_CLOEXEC);
	GCHECK(b->efd >= 0);
	GCHECK(irqfd(b->node, b->efd, 0) == 0);
}

static void bell_wait(const struct bell *b)
{
	struct pollfd p = {.fd = b->efd, .events = POLLIN};
	uint64_t n;

	if (poll(&p, 1, HBVM_WAIT_MS / 4) != 1) {
		say_interrupts();
		fail(__LINE__, "no doorbell within %d ms", HBVM_WAIT_MS / 4);
	}
	GCHECK(read(b->efd, &n, sizeof(n)) == sizeof(n) && n >= 1);
}

/* Every rule of the three ioctls, on this guest's own device; then closes b->node, and the
 * vector it held is free for another file. */
static void hostile_bells(struct bell *b)
{
	struct hyperbuf_pool_irqfd bad = {.fd = b->efd, .vector = 0, .flags = 1};
	int ro = open_group_node("vv", O_RDONLY), other = open_group_node("vv", O_RDWR);
	int efd2 = eventfd(0, EFD_CLOEXEC);

	GCHECK(efd2 >= 0);
	GCHECK_ERR(irqfd(b->node, b->efd, 64), EINVAL);
	GCHECK_ERR(irqfd(b->node, -2, 0), EINVAL);
	GCHECK_ERR(ioctl(b->node, HYPERBUF_IOC_POOL_IRQFD, &bad), EINVAL);
	GCHECK_ERR(irqfd(b->node, b->node, 0), EINVAL); /* not an eventfd */
	GCHECK_ERR(irqfd(b->node, 1000, 0), EBADF);
	GCHECK_ERR(irqfd(other, efd2, 0), EBUSY); /* b->node holds vector 0 */
	GCHECK_ERR(irqfd(other, -1, 0), EBUSY);
	GCHECK_ERR(ring(b->node, 65536, 0), EINVAL);
	GCHECK_ERR(ring(b->node, 1, 65536), EINVAL);
	GCHECK_ERR(ring(ro, b->peer, 0), EBADF);
	/* The same file may replace its eventfd, and detach it. */
	GCHECK(irqfd(b->node, efd2, 0) == 0);
	GCHECK(irqfd(b->node, -1, 0) == 0);
	GCHECK(irqfd(b->node, b->efd, 0) == 0);
	/* A file that goes lets go of its vector. */
	close(b->node);
	b->node = -1;
	GCHECK(irqfd(other, efd2, 0) == 0);
	GCHECK(irqfd(ro, -1, 0) == -1 && errno == EBUSY);
	close(other);
	close(ro);
	close(efd2);
	say("HBVM-STEP bells: hostile ioctls refused");
}

/* vm1 shares the board with vm2, writable. */
static struct board *board_share(struct hb_client *c, int role, struct hb_buffer **b,
				 struct hb_import **im)
{
	struct hb_event ev;
	struct hb_id id;

	if (role == 1) {
		*b = hb_buffer_alloc(c, 2, PAGE, HB_BUFFER_PEER_WRITABLE);
		GCHECK(*b != NULL);
		export_until_imported(c, *b, "board", 5, &id);
		return hb_buffer_data(*b);
	}
	wait_event(c, HB_EVENT_EXPORTED, 1, &ev);
	*im = hb_import(c, &ev.id, HB_IMPORT_WRITE);
	GCHECK(*im != NULL);
	return hb_import_data(*im);
}

static void board_await(volatile uint32_t *v)
{
	uint64_t end = now_us() + HBVM_WAIT_MS * 1000ull;

	while (!__atomic_load_n(v, __ATOMIC_ACQUIRE)) {
		if (now_us() > end)
			fail(__LINE__, "the peer never wrote the board");
		sleep_ms(5);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double median_us(uint64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[n / 2];
}

/* Rounds of ring -> wake -> ring back -> wake; vm1 times them. */
static double bell_ping_pong(const struct bell *b, uint32_t other, int role, unsigned rounds)
{
	uint64_t *rtt = calloc(rounds, sizeof(*rtt));

	GCHECK(rtt != NULL);
	for (unsigned i = 0; i < rounds; i++) {
		uint64_t t0 = now_us();

		if (role == 1) {
			GCHECK(ring(b->node, other, 0) == 0);
			bell_wait(b);
		} else {
			bell_wait(b);
			GCHECK(ring(b->node, other, 0) == 0);
		}
		rtt[i] = now_us() - t0;
	}
	double m = median_us(rtt, rounds);
	free(rtt);
	return m;
}

static void fence_wait(struct hb_client *c, uint64_t timeline, uint64_t value)
{
	struct hb_fence f = {.timeline = timeline, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);

	GCHECK(s != NULL);
	GCHECK(hb_sync_wait(s, HBVM_WAIT_MS) == 0);
	GCHECK(hb_sync_status(s) == 1);
	hb_sync_close(s);
}

/* The same rounds through hyperbuf's fences: signal, the peer's wait wakes and signals back.
 * *used: what c's library did in every round but the first (which opens the watch). */
static double fence_ping_pong(struct hb_client *c, struct board *bd, int run, int role,
			      unsigned rounds, struct hb_counters *used)
{
	struct hb_timeline *t = hb_timeline_create(c);
	uint64_t *rtt = calloc(rounds, sizeof(*rtt));
	int other = 3 - role;
	struct hb_counters n0 = {0}, n1;

	GCHECK(t != NULL && rtt != NULL);
	GCHECK(hb_timeline_share(t, (uint32_t)other) == 0);
	GCHECK(hb_timeline_set_lazy(t, run == RUN_LAZY) == 0);
	__atomic_store_n(&bd->timeline[run][role], hb_timeline_id(t), __ATOMIC_RELEASE);
	board_await((volatile uint32_t *)&bd->timeline[run][other]);
	for (unsigned i = 1; i <= rounds; i++) {
		uint64_t t0 = now_us();

		if (i == 2)
			GCHECK(hb_counters(c, &n0) == 0);
		if (role == 1) {
			GCHECK(hb_timeline_signal(t, i) == 0);
			fence_wait(c, bd->timeline[run][other], i);
		} else {
			fence_wait(c, bd->timeline[run][other], i);
			GCHECK(hb_timeline_signal(t, i) == 0);
		}
		rtt[i - 1] = now_us() - t0;
	}
	GCHECK(hb_counters(c, &n1) == 0);
	*used = (struct hb_counters){
	    .recvs = n1.recvs - n0.recvs,
	    .sends = n1.sends - n0.sends,
	    .polls = n1.polls - n0.polls,
	    .wakes = n1.wakes - n0.wakes,
	    .frames_in = n1.frames_in - n0.frames_in,
	    .frames_out = n1.frames_out - n0.frames_out,
	};
	/* Neither destroys its timeline while the other may still wait on it. */
	__atomic_store_n(&bd->done[run][role], 1, __ATOMIC_RELEASE);
	board_await(&bd->done[run][other]);
	hb_timeline_destroy(t);
	double m = median_us(rtt, rounds);
	free(rtt);
	return m;
}

/* Fence slots between guests (docs/PROTOCOL.md §3 "Fence slots"): after the first round the
 * daemon sends neither side a frame (a missed doorbell would end in a WatchArm a wait slice
 * later, a frame out and one in), each side's only frames out are its signals, and the owner
 * rang the waiter by id through the Doorbell register (its wakes). */
static double slot_rounds(struct hb_client *c, struct board *bd, int role, unsigned rounds)
{
	struct hb_counters used;
	double m = fence_ping_pong(c, bd, RUN_SLOTS, role, rounds, &used);

	say("HBVM-STEP slots: %u rounds: %llu frames in, %llu out, %llu rings, %llu polls", rounds,
	    (unsigned long long)used.frames_in, (unsigned long long)used.frames_out,
	    (unsigned long long)used.wakes, (unsigned long long)used.polls);
	if (used.frames_in > (rounds - 1) / 64 + 1)
		fail(__LINE__, "%llu frames from the daemon in %u rounds: not through the slots",
		     (unsigned long long)used.frames_in, rounds - 1);
	if (used.frames_out != rounds - 1)
		fail(__LINE__, "%llu frames out in %u rounds: a wait asked the daemon",
		     (unsigned long long)used.frames_out, rounds - 1);
	if (used.wakes < 1)
		fail(__LINE__, "the owner never rang its peer's doorbell");
	return m;
}

/* Lazy records (docs/PROTOCOL.md §3): the same, but the signals stay in the slots. Each
 * side's first signal asks, the daemon answers, and from then on one signal in 64 leaves the
 * guest (the 64th, and one that found unread news from the daemon). */
static double lazy_rounds(struct hb_client *c, struct board *bd, int role, unsigned rounds)
{
	struct hb_counters used;
	double m = fence_ping_pong(c, bd, RUN_LAZY, role, rounds, &used);

	say("HBVM-STEP lazy: %u rounds: %llu frames in, %llu out, %llu rings", rounds,
	    (unsigned long long)used.frames_in, (unsigned long long)used.frames_out,
	    (unsigned long long)used.wakes);
	if (used.frames_out > (rounds - 1) / 64 + 2)
		fail(__LINE__, "%llu frames out in %u lazy rounds: signals not kept",
		     (unsigned long long)used.frames_out, rounds - 1);
	if (used.frames_in > 2)
		fail(__LINE__, "%llu frames from the daemon in %u lazy rounds",
		     (unsigned long long)used.frames_in, rounds - 1);
	if (used.wakes < rounds / 2)
		fail(__LINE__, "%llu rings in %u lazy rounds: the owner did not ring",
		     (unsigned long long)used.wakes, rounds - 1);
	return m;
}

/* The rounds again on watches alone (the path before slots), with a client of their own. */
static double watched_rounds(struct board *bd, int role, unsigned rounds)
{
	struct hb_counters used;
	struct hb_client *c;
	double m;

	setenv("HYPERBUF_SIGNALS", "watched", 1);
	c = connect_default();
	unsetenv("HYPERBUF_SIGNALS");
	m = fence_ping_pong(c, bd, RUN_WATCHED, role, rounds, &used);
	hb_disconnect(c);
	return m;
}

static int bells(int role, bool bench)
{
	struct hb_buffer *buf = NULL;
	struct hb_import *im = NULL;
	struct hb_client *c;
	struct board *bd;
	struct bell b;
	uint32_t other;
	double bell_us, fence_us, lazy_us, watched_us;

	/* The library's trace of every message would be most of the console, and of the time. */
	setenv("HYPERBUF_DEBUG", "0", 1);
	load_module("hyperbuf", NULL);
	c = connect_default();
	bd = board_share(c, role, &buf, &im);
	bell_open(&b);
	__atomic_store_n(&bd->peer[role], b.peer + 1, __ATOMIC_RELEASE);
	board_await(&bd->peer[3 - role]);
	other = bd->peer[3 - role] - 1;
	say("HBVM-STEP bells: peer %u rings peer %u", b.peer, other);
	bell_us = bell_ping_pong(&b, other, role, bench ? 2000 : 50);
	say("HBVM-STEP bells: ping-pongs done");
	/* Frees vector 0: the library takes it for its fence slots. */
	hostile_bells(&b);
	close(b.efd);
	fence_us = slot_rounds(c, bd, role, bench ? 300 : 40);
	lazy_us = lazy_rounds(c, bd, role, bench ? 300 : 130);
	if (bench) {
		watched_us = watched_rounds(bd, role, 300);
		if (role == 1)
			say("HBVM-INFO doorbell_rtt_us=%.1f fence_rtt_us=%.1f lazy_rtt_us=%.1f "
			    "watched_rtt_us=%.1f",
			    bell_us, fence_us, lazy_us, watched_us);
	}
	hb_buffer_free(buf);
	hb_import_release(im);
	hb_disconnect(c);
	check_dmesg();
	return 0;
}

int bells_case(int role)
{
	return bells(role, false);
}

int bellbench_case(int role)
{
	return bells(role, true);
}

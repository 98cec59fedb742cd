/*
 * hb-xen-peer: the program the Xen cases run in dom0 and in the domUs. It uses the public API
 * only and connects with hb_connect(NULL), so the same binary runs unchanged in a Xen domain
 * (default address xen:), a KVM guest and as an emulated VM ($HYPERBUF_ADDRESS). Every
 * subcommand prints what it did and exits 0 on success, 1 on a failed check, 77 when what it
 * tests is not in this build.
 *
 *   probe                          connect, print the domain, disconnect
 *   export PEER SIZE [opts]        allocate, fill, export to PEER, then per the options
 *   import FROM [opts]             wait for an export from domain FROM, import, check
 *   alloc-fail PEER SIZE ERRNO     hb_buffer_alloc must fail with ERRNO (a number)
 *   fence-ping PEER / fence-pong FROM   a fenced ping-pong (needs the fence API)
 *
 * export options: --seed N (pattern), --frame (a 1920x1080 XRGB test frame, size 8294400),
 *   --writable, --meta TEXT, --wait-release (until the peer imported and released),
 *   --reexport TEXT (after the first import, export again with this metadata),
 *   --unexport (unexport after the release), --expect-byte N (after the release, the first
 *   byte must be N: the peer wrote it), --hold (stay until killed or the domain dies)
 * import options: --seed N / --frame (check every byte), --size N, --meta TEXT,
 *   --readonly (a write must fault, HB_IMPORT_WRITE must fail EACCES), --write N (import
 *   writable, write N to the first byte), --events (expect a re-export's EXPORTED with
 *   --meta2 TEXT, then UNEXPORTED), --twice-enospc (a second import must fail ENOSPC: the
 *   maptrack budget), --until-gone (keep the import until DOMAIN_GONE, then check it is a
 *   private copy with the same bytes and no grant mapping is left), --ready-file PATH
 *   (created once connected, so the exporter can start)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tools/pattern.h"

#define WAIT_MS    60000
#define FRAME_W    1920u
#define FRAME_H    1080u
#define FRAME_SIZE (FRAME_W * FRAME_H * 4u)

struct opts {
	uint64_t seed;
	int frame;
	int writable;
	const char *meta, *meta2, *reexport;
	int wait_release, unexport, hold;
	int expect_byte;
	uint64_t size;
	int readonly, write_byte, events, twice_enospc, until_gone;
	const char *ready_file;
	uint64_t rounds, pace_ms; /* fence-ping/pong: how many, and a pause between rounds */
};

/* Says why and exits 1 at once: what a failed check leaves allocated is no leak to report,
 * and the reason stays the last line of the output. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	_exit(1);
}

static const char *event_name(int t)
{
	static const char *n[] = {"?",        "EXPORTED",    "UNEXPORTED", "IMPORTED",
				  "RELEASED", "DOMAIN_GONE", "FENCE",      "OVERFLOW"};
	return t >= 1 && t <= 7 ? n[t] : "?";
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Dispatches until an event of type (from domain `from`, or any if -1) arrives; prints every
 * event seen. 0 with *ev, or -1 on timeout or a broken connection. */
static int wait_event(struct hb_client *c, int type, long from, struct hb_event *ev, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		while (hb_next_event(c, ev) == 0) {
			printf("event %s from %u (size %llu, meta %u bytes)\n",
			       event_name(ev->type), ev->domain, (unsigned long long)ev->size,
			       ev->meta_len);
			if ((int)ev->type == type && (from < 0 || ev->domain == (uint32_t)from))
				return 0;
		}
		if (errno != EAGAIN) {
			printf("hb_next_event: %s\n", strerror(errno));
			return -1;
		}
		uint64_t now = now_ms();
		if (now >= end)
			return -1;
		if (hb_dispatch(c, (int)(end - now)) < 0) {
			printf("hb_dispatch: %s\n", strerror(errno));
			return -1;
		}
	}
}

static void fill(void *p, size_t size, const struct opts *o)
{
	if (o->frame)
		tool_pattern_frame(p, FRAME_W, FRAME_H, FRAME_W * 4, o->seed);
	else
		tool_pattern_fill(p, size, o->seed);
}

/* 0 if p holds exactly what fill() wrote. */
static int check(const void *p, size_t size, const struct opts *o)
{
	if (o->frame) {
		long bad = tool_pattern_frame_check(p, FRAME_W, FRAME_H, FRAME_W * 4, o->seed);
		if (bad >= 0)
			return fail("frame: first wrong pixel %ld", bad);
		printf("frame %ux%u checked: every byte right\n", FRAME_W, FRAME_H);
		return 0;
	}
	size_t at = tool_pattern_check(p, size, o->seed);
	if (at != size)
		return fail("first wrong byte at %zu of %zu", at, size);
	printf("%zu bytes checked: every byte right\n", size);
	return 0;
}

static struct hb_client *connect_or_die(void)
{
	struct hb_client *c = hb_connect(NULL);

	if (!c)
		fail("hb_connect: %s", strerror(errno));
	printf("connected as domain %u\n", hb_self_domain(c));
	return c;
}

static int cmd_probe(void)
{
	struct hb_client *c = connect_or_die();

	hb_disconnect(c);
	return 0;
}

static int cmd_export(uint32_t peer, uint64_t size, const struct opts *o)
{
	struct hb_client *c = connect_or_die();
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id, id2;
	char text[33];
	const char *meta = o->meta ? o->meta : "hb-xen-peer";
	uint64_t t0 = now_ms();
	int r = 0;

	b = hb_buffer_alloc(c, peer, size, o->writable ? HB_BUFFER_PEER_WRITABLE : 0);
	if (!b)
		return fail("hb_buffer_alloc(%u, %llu): %s", peer, (unsigned long long)size,
			    strerror(errno));
	printf("allocated %llu bytes for domain %u in %llu ms\n", (unsigned long long)size, peer,
	       (unsigned long long)(now_ms() - t0));
	fill(hb_buffer_data(b), size, o);
	if (hb_export(b, meta, strlen(meta), 0, &id) < 0)
		return fail("hb_export: %s", strerror(errno));
	hb_id_format(&id, text);
	printf("exported %s\n", text);

	if (o->hold) {
		/* Until the daemon or the domain goes. */
		for (;;)
			if (hb_dispatch(c, -1) < 0)
				break;
		return 0;
	}
	if (o->wait_release || o->reexport) {
		if (wait_event(c, HB_EVENT_IMPORTED, peer, &ev, WAIT_MS) < 0)
			return fail("no IMPORTED from domain %u", peer);
		if (!hb_id_equal(&ev.id, &id))
			return fail("IMPORTED names another buffer");
	}
	if (o->reexport) {
		if (hb_export(b, o->reexport, strlen(o->reexport), 0, &id2) < 0)
			return fail("re-export: %s", strerror(errno));
		if (!hb_id_equal(&id, &id2))
			return fail("a re-export changed the id");
		printf("re-exported with new metadata, same id\n");
	}
	if (o->wait_release || o->reexport) {
		if (wait_event(c, HB_EVENT_RELEASED, peer, &ev, WAIT_MS) < 0)
			return fail("no RELEASED from domain %u", peer);
		printf("released by domain %u\n", ev.domain);
	}
	if (o->expect_byte >= 0) {
		int got = ((volatile uint8_t *)hb_buffer_data(b))[0];
		if (got != o->expect_byte)
			return fail("first byte %d, the peer should have written %d", got,
				    o->expect_byte);
		printf("the peer's write is here: %d\n", got);
	}
	if (o->unexport && hb_unexport(c, &id, 0) < 0)
		r = fail("hb_unexport: %s", strerror(errno));
	hb_buffer_free(b);
	hb_disconnect(c);
	return r;
}

/* How many lines of /proc/self/maps name the gntdev device: the grant mappings we hold. */
static int gntdev_mappings(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/dev/xen/gntdev"))
			n++;
	fclose(f);
	return n;
}

static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
	siglongjmp(fault_jmp, sig);
}

/*
 * A write to p must fault, here in this process (a child would prove nothing: in a PV domain
 * grant mappings are not inherited, so any address of them faults there). And the kernel
 * must refuse to write there on our behalf as well: read() into it fails with EFAULT.
 */
static int write_faults(void *p)
{
	struct sigaction sa = {.sa_handler = on_fault}, old_segv, old_bus;
	int fds[2], sig;
	ssize_t n;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	sig = sigsetjmp(fault_jmp, 1);
	if (sig == 0)
		((volatile uint8_t *)p)[0] = 0x42;
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	if (sig == 0)
		return fail("a write to the read-only import did not fault");
	printf("a write to the read-only import faults (signal %d)\n", sig);

	if (pipe(fds) < 0 || write(fds[1], "x", 1) != 1)
		return fail("pipe: %s", strerror(errno));
	n = read(fds[0], p, 1);
	sig = errno;
	close(fds[0]);
	close(fds[1]);
	if (n >= 0 || sig != EFAULT)
		return fail("read() into the read-only import: %zd (%s), not EFAULT", n,
			    strerror(sig));
	printf("the kernel cannot write into it either (EFAULT)\n");
	return 0;
}

static int cmd_import(uint32_t from, const struct opts *o)
{
	struct hb_client *c = connect_or_die();
	struct hb_import *im, *im2;
	struct hb_event ev;
	struct hb_info info;
	char meta[HB_META_MAX];
	uint64_t t0;
	ssize_t ml;
	int r;

	if (o->ready_file) {
		int fd = open(o->ready_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
	if (wait_event(c, HB_EVENT_EXPORTED, from, &ev, WAIT_MS) < 0)
		return fail("no EXPORTED from domain %u", from);
	if (o->meta && (ev.meta_len != strlen(o->meta) || memcmp(ev.meta, o->meta, ev.meta_len)))
		return fail("EXPORTED metadata is not '%s'", o->meta);
	if (o->readonly) {
		errno = 0;
		if (hb_import(c, &ev.id, HB_IMPORT_WRITE) || errno != EACCES)
			return fail("a writable import of a read-only buffer: %s, not EACCES",
				    strerror(errno));
		printf("writable import refused: EACCES\n");
	}
	t0 = now_ms();
	im = hb_import(c, &ev.id, o->write_byte >= 0 ? HB_IMPORT_WRITE : 0);
	if (!im)
		return fail("hb_import: %s", strerror(errno));
	printf("imported %zu bytes from domain %u in %llu ms\n", hb_import_size(im), from,
	       (unsigned long long)(now_ms() - t0));
	if (o->size && hb_import_size(im) != o->size)
		return fail("size %zu, expected %llu", hb_import_size(im),
			    (unsigned long long)o->size);
	if (hb_query(c, &ev.id, &info) < 0)
		return fail("hb_query: %s", strerror(errno));
	printf("query: exporter %u peer %u pages %u importers %u (directory depth %d)\n",
	       info.exporter, info.peer, info.pages, info.importers,
	       info.pages <= 1024          ? 1
	       : info.pages <= 1024 * 1024 ? 2
					   : 3);
	ml = hb_import_metadata(im, meta, sizeof(meta));
	if (o->meta && (ml != (ssize_t)strlen(o->meta) || memcmp(meta, o->meta, (size_t)ml)))
		return fail("import metadata is not '%s'", o->meta);
	if (check(hb_import_data(im), hb_import_size(im), o))
		return 1;
	if (o->readonly && write_faults(hb_import_data(im)))
		return 1;
	if (o->write_byte >= 0) {
		((volatile uint8_t *)hb_import_data(im))[0] = (uint8_t)o->write_byte;
		printf("wrote %d into the writable import\n", o->write_byte);
		/* gntdev's dma-bufs need CONFIG_XEN_GNTDEV_DMABUF and a PVH/HVM domain: Debian
		 * 12's PV domUs have neither, and must say so (docs/DMABUF.md). */
		r = hb_import_dmabuf(im, 0);
		if (r < 0 && errno != ENODEV)
			return fail("hb_import_dmabuf: %s, not ENODEV", strerror(errno));
		printf("dma-buf of the import: %s\n", r >= 0 ? "made (this gntdev makes them)"
							     : "ENODEV (this gntdev makes none)");
		if (r >= 0)
			close(r);
	}
	if (o->twice_enospc) {
		errno = 0;
		im2 = hb_import(c, &ev.id, 0);
		if (im2 || errno != ENOSPC)
			return fail("a second import over the maptrack budget: %s, not ENOSPC",
				    im2 ? "it worked" : strerror(errno));
		printf("second import refused: ENOSPC (maptrack budget)\n");
	}
	if (o->events) {
		if (wait_event(c, HB_EVENT_EXPORTED, from, &ev, WAIT_MS) < 0)
			return fail("no EXPORTED for the re-export");
		if (!o->meta2 || ev.meta_len != strlen(o->meta2) ||
		    memcmp(ev.meta, o->meta2, ev.meta_len))
			return fail("re-export metadata is not '%s'", o->meta2 ? o->meta2 : "");
		printf("re-export seen with its new metadata\n");
	}
	if (o->until_gone) {
		int before = gntdev_mappings();

		if (wait_event(c, HB_EVENT_DOMAIN_GONE, from, &ev, WAIT_MS) < 0)
			return fail("no DOMAIN_GONE for domain %u", from);
		r = gntdev_mappings();
		printf("grant mappings: %d before, %d after DOMAIN_GONE\n", before, r);
		if (before < 1 || r != 0)
			return fail("grant mappings from the dead domain are left");
		if (check(hb_import_data(im), hb_import_size(im), o))
			return fail("the import's last contents are not kept");
		printf("the import is a private copy of the last contents\n");
	}
	hb_import_release(im);
	if (o->events) {
		if (wait_event(c, HB_EVENT_UNEXPORTED, from, &ev, WAIT_MS) < 0)
			return fail("no UNEXPORTED");
	}
	hb_disconnect(c);
	return 0;
}

static int cmd_alloc_fail(uint32_t peer, uint64_t size, int want)
{
	struct hb_client *c = connect_or_die();
	struct hb_buffer *b;

	errno = 0;
	b = hb_buffer_alloc(c, peer, size, 0);
	if (b || errno != want)
		return fail("hb_buffer_alloc(%llu): %s, wanted %s", (unsigned long long)size,
			    b ? "it worked" : strerror(errno), strerror(want));
	printf("hb_buffer_alloc(%llu bytes): %s, as it should\n", (unsigned long long)size,
	       strerror(want));
	hb_disconnect(c);
	return 0;
}

/*
 * The fenced ping-pong across domains. ping exports a peer-writable buffer whose metadata
 * carries its timeline id; pong imports it writable and exports a small buffer back carrying
 * its own timeline id. Each round, one side writes the round number, signals its timeline, and
 * the other waits on that fence and checks the byte before answering. At the end ping signals
 * rounds + 1, "done": pong keeps its timeline until then, so ping's last wait finds it. With
 * --pace, a pause between rounds makes the run last while the daemon is killed under it
 * (case daemon_restarts): it counts the restarts it went through.
 */
#define ROUNDS 20

static int fence_wait(struct hb_client *c, uint64_t timeline, uint64_t value)
{
	struct hb_fence f = {.timeline = timeline, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);
	int r;

	if (!s)
		return fail("hb_sync_open: %s", strerror(errno));
	r = hb_sync_wait(s, WAIT_MS);
	if (r < 0)
		r = fail("hb_sync_wait(%llu): %s", (unsigned long long)value, strerror(errno));
	else if (hb_sync_status(s) != 1)
		r = fail("fence %llu completed with %d", (unsigned long long)value,
			 hb_sync_status(s));
	hb_sync_close(s);
	return r;
}

static int cmd_fence(int ping, uint32_t other, const struct opts *o)
{
	uint64_t rounds = o->rounds ? o->rounds : ROUNDS, restarts = 0;
	struct hb_client *c = connect_or_die();
	struct hb_timeline *t = hb_timeline_create(c);
	struct hb_buffer *b;
	struct hb_import *im = NULL;
	struct hb_event ev;
	struct hb_id id;
	uint64_t mine, theirs = 0, next = 0, end = now_ms() + WAIT_MS;
	volatile uint8_t *shared;
	int imported = 0;

	if (!t)
		return fail("hb_timeline_create: %s", strerror(errno));
	/* Its fences travel in the shared buffer, so the other side must be let see them. */
	if (hb_timeline_share(t, other) < 0)
		return fail("hb_timeline_share(dom%u): %s", other, strerror(errno));
	mine = hb_timeline_id(t);
	b = hb_buffer_alloc(c, other, 4096, HB_BUFFER_PEER_WRITABLE);
	if (!b)
		return fail("hb_buffer_alloc: %s", strerror(errno));
	/* Whoever connects first exports before the other can hear it: export again every
	 * half second until each side has imported the other's buffer. */
	while (!im || !imported) {
		if (now_ms() >= end)
			return fail("no handshake with domain %u", other);
		if (now_ms() >= next) {
			if (hb_export(b, &mine, sizeof(mine), 0, &id) < 0)
				return fail("hb_export: %s", strerror(errno));
			next = now_ms() + 500;
		}
		if (hb_dispatch(c, 100) < 0)
			return fail("hb_dispatch: %s", strerror(errno));
		while (hb_next_event(c, &ev) == 0) {
			restarts += ev.type == HB_EVENT_RESTARTED;
			if (ev.type == HB_EVENT_EXPORTED && ev.domain == other && !im &&
			    ev.meta_len == sizeof(theirs)) {
				memcpy(&theirs, ev.meta, sizeof(theirs));
				im = hb_import(c, &ev.id, HB_IMPORT_WRITE);
				if (!im)
					return fail("hb_import: %s", strerror(errno));
			} else if (ev.type == HB_EVENT_IMPORTED && ev.domain == other) {
				imported = 1;
			}
		}
	}
	/* ping writes into pong's buffer and pong into ping's: each reads its own. */
	shared = hb_import_data(im);
	for (uint64_t i = 1; i <= rounds; i++) {
		if (!ping || i > 1) {
			uint64_t want = ping ? i - 1 : i;
			uint8_t got;

			if (fence_wait(c, theirs, want))
				return 1;
			got = ((volatile uint8_t *)hb_buffer_data(b))[0];
			if (got != (uint8_t)want)
				return fail("round %llu: read %u", (unsigned long long)i, got);
		}
		shared[0] = (uint8_t)i;
		if (hb_timeline_signal(t, i) < 0)
			return fail("hb_timeline_signal: %s", strerror(errno));
		if (o->pace_ms)
			usleep((useconds_t)o->pace_ms * 1000u);
		while (hb_next_event(c, &ev) == 0)
			restarts += ev.type == HB_EVENT_RESTARTED;
	}
	if (ping && fence_wait(c, theirs, rounds))
		return 1;
	if (ping && hb_timeline_signal(t, rounds + 1) < 0)
		return fail("hb_timeline_signal: %s", strerror(errno));
	if (!ping && fence_wait(c, theirs, rounds + 1))
		return 1;
	printf("%llu fenced rounds with domain %u, %llu daemon restarts gone through\n",
	       (unsigned long long)rounds, other, (unsigned long long)restarts);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_timeline_destroy(t);
	hb_disconnect(c);
	return 0;
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	if (end == s || *end) {
		fprintf(stderr, "not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {.seed = 1, .expect_byte = -1, .write_byte = -1};
	const char *cmd;
	int i, npos = 0;
	const char *pos[3] = {0};

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fprintf(stderr, "usage: hb-xen-peer probe|export|import|alloc-fail|fence-ping|"
				"fence-pong ... (see tests/xen/peer.c)\n");
		return 2;
	}
	cmd = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define OPTV(name) (strcmp(a, name) == 0 && v && ++i)
		if (OPTV("--seed"))
			o.seed = num(v);
		else if (strcmp(a, "--frame") == 0)
			o.frame = 1;
		else if (strcmp(a, "--writable") == 0)
			o.writable = 1;
		else if (OPTV("--meta"))
			o.meta = v;
		else if (OPTV("--meta2"))
			o.meta2 = v;
		else if (OPTV("--reexport"))
			o.reexport = v;
		else if (strcmp(a, "--wait-release") == 0)
			o.wait_release = 1;
		else if (strcmp(a, "--unexport") == 0)
			o.unexport = 1;
		else if (strcmp(a, "--hold") == 0)
			o.hold = 1;
		else if (OPTV("--expect-byte"))
			o.expect_byte = (int)num(v);
		else if (OPTV("--size"))
			o.size = num(v);
		else if (strcmp(a, "--readonly") == 0)
			o.readonly = 1;
		else if (OPTV("--write"))
			o.write_byte = (int)num(v);
		else if (strcmp(a, "--events") == 0)
			o.events = 1;
		else if (strcmp(a, "--twice-enospc") == 0)
			o.twice_enospc = 1;
		else if (strcmp(a, "--until-gone") == 0)
			o.until_gone = 1;
		else if (OPTV("--ready-file"))
			o.ready_file = v;
		else if (OPTV("--rounds"))
			o.rounds = num(v);
		else if (OPTV("--pace"))
			o.pace_ms = num(v);
		else if (a[0] != '-' && npos < 3)
			pos[npos++] = a;
		else {
			fprintf(stderr, "bad argument: %s\n", a);
			return 2;
		}
#undef OPTV
	}
	if (strcmp(cmd, "probe") == 0)
		return cmd_probe();
	if (strcmp(cmd, "export") == 0 && npos == 2) {
		uint64_t size = num(pos[1]);
		if (o.frame && size != FRAME_SIZE)
			return fail("--frame needs size %u", FRAME_SIZE);
		return cmd_export((uint32_t)num(pos[0]), size, &o);
	}
	if (strcmp(cmd, "import") == 0 && npos == 1)
		return cmd_import((uint32_t)num(pos[0]), &o);
	if (strcmp(cmd, "alloc-fail") == 0 && npos == 3)
		return cmd_alloc_fail((uint32_t)num(pos[0]), num(pos[1]), (int)num(pos[2]));
	if (strcmp(cmd, "fence-ping") == 0 && npos == 1)
		return cmd_fence(1, (uint32_t)num(pos[0]), &o);
	if (strcmp(cmd, "fence-pong") == 0 && npos == 1)
		return cmd_fence(0, (uint32_t)num(pos[0]), &o);
	fprintf(stderr, "bad command line (see tests/xen/peer.c)\n");
	return 2;
}

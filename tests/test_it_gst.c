/*
 * The GStreamer elements (docs/GSTREAMER.md) between emulated VMs and the host: each side is a
 * pipeline run by tests/gst/run.c in its own process, as gst-launch would run it, against the
 * real daemon. Every frame's hash of visible pixels must match the producer's, nothing may be
 * copied (frames-copied 0 in both elements, bytes_copied 0 in the daemon), a consumer that
 * stops reading must hold the producer at its pool, and either side's death must end the
 * other cleanly. A hostile producer (this process, through the public API) sends descriptions
 * that do not fit: the consumer must stop with an error that says so, never crash.
 */
#include <sys/prctl.h>

#include "gst/wire.h"
#include "tests/it_common.h"

#define RUN_MS    120000 /* one pipeline, sanitized, 300 frames of 1080p */
#define OUT_MAX   (256 * 1024)
#define XR24      0x34325258u
#define NV12      0x3231564eu
#define FRAME_SZ  (1920u * 1080 * 4)
#define BGRX_1080 "video/x-raw,format=BGRx,width=1920,height=1080"

struct proc {
	pid_t pid;
	char out[320];
};

static struct proc *live[4];

static void kill_live(void)
{
	for (int i = 0; i < 4; i++)
		if (live[i] && live[i]->pid > 0)
			kill(live[i]->pid, SIGKILL);
}

static const char *runner(void)
{
	return hbt_prog("tests/gst/hbgst-run");
}

/* A folder of links to the few system plugins the pipelines use: the registry is built in the
 * (sanitized) runner itself, and scanning every installed plugin there would be slow. */
static const char *plugin_dir(const struct hbt_daemon *d)
{
	static const char *const wanted[] = {"libgstcoreelements.so", "libgstvideotestsrc.so"};
	static char dir[320];
	char from[512], to[700];

	snprintf(dir, sizeof(dir), "%s/gst-plugins", d->dir);
	mkdir(dir, 0755);
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", HB_GST_PLUGINDIR, wanted[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, wanted[i]);
		if (access(from, R_OK) != 0)
			SKIP("no %s (apt-get install gstreamer1.0-plugins-base)", from);
		if (symlink(from, to) < 0 && errno != EEXIST)
			CHECK(!"symlink");
	}
	return dir;
}

static void need_gst(void)
{
	char plugin[320];

	snprintf(plugin, sizeof(plugin), "%s/gst/libgsthyperbuf.so", hbt_build_dir());
	if (access(runner(), X_OK) != 0 || access(plugin, R_OK) != 0)
		SKIP("the GStreamer plugin is not built (apt-get install libgstreamer1.0-dev "
		     "libgstreamer-plugins-base1.0-dev, then make)");
	hbt_cleanup_extra = kill_live;
}

/* Starts `hbgst-run ARGS` (split at spaces) as a client of address; output in p->out. */
static void start(struct proc *p, const struct hbt_daemon *d, const char *name, const char *address,
		  const char *args)
{
	char *argv[64], copy[2048], plugins[700], registry[320];
	int argc = 0;

	snprintf(p->out, sizeof(p->out), "%s/%s.out", d->dir, name);
	snprintf(plugins, sizeof(plugins), "%s/gst", hbt_build_dir());
	snprintf(registry, sizeof(registry), "%s/gst-registry-%s.bin", d->dir, name);
	snprintf(copy, sizeof(copy), "%s", args);
	argv[argc++] = (char *)runner();
	for (char *s = strtok(copy, " "); s && argc < 63; s = strtok(NULL, " "))
		argv[argc++] = s;
	argv[argc] = NULL;
	const char *sys = plugin_dir(d);
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	CHECK(p->pid >= 0);
	if (p->pid == 0) {
		int fd = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		setenv("HYPERBUF_ADDRESS", address, 1);
		setenv("GST_PLUGIN_PATH", plugins, 1);
		setenv("GST_PLUGIN_SYSTEM_PATH", sys, 1);
		setenv("GST_REGISTRY", registry, 1);
		/* GLib keeps its type system to the end: no leak report for that. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 4; i++)
		if (!live[i]) {
			live[i] = p;
			break;
		}
}

static void forget(struct proc *p)
{
	for (int i = 0; i < 4; i++)
		if (live[i] == p)
			live[i] = NULL;
	p->pid = 0;
}

static char *slurp(const char *path)
{
	static char bufs[2][OUT_MAX];
	static int n;
	char *b = bufs[n++ % 2];
	FILE *f = fopen(path, "r");
	size_t len = 0;

	b[0] = '\0';
	if (f) {
		len = fread(b, 1, OUT_MAX - 1, f);
		fclose(f);
	}
	b[len] = '\0';
	return b;
}

/* Waits for p to exit within ms: its exit code, or -1 (then it is still running). */
static int wait_exit(struct proc *p, int ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)ms;
	int status;

	while (hbt_now_ms() < end) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			forget(p);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		it_sleep_ms(20);
	}
	return -1;
}

static void finish(struct proc *p, int want)
{
	int code = wait_exit(p, RUN_MS);

	if (code != want)
		hbt_fail(__FILE__, __LINE__, "%s: exit %d, wanted %d; output:\n%s", p->out, code,
			 want, slurp(p->out));
}

/* The "frame N HASH ..." lines of an output, in order. */
static void frame_lines(const char *out, char *lines, size_t len)
{
	size_t n = 0;

	lines[0] = '\0';
	for (const char *s = out; (s = strstr(s, "frame ")) != NULL; s++) {
		size_t l = strcspn(s, "\n") + 1;

		if ((s == out || s[-1] == '\n') && n + l < len) {
			memcpy(lines + n, s, l);
			n += l;
			lines[n] = '\0';
		}
	}
}

/* Both outputs hold the same frames, n of them, and neither element copied one. */
static void same_frames(const struct proc *prod, const struct proc *cons, size_t n)
{
	static char a[OUT_MAX], b[OUT_MAX];
	const char *po = slurp(prod->out), *co = slurp(cons->out);

	frame_lines(po, a, sizeof(a));
	frame_lines(co, b, sizeof(b));
	if (strcmp(a, b) != 0 || hbt_count_substr(a, "frame ") != n)
		hbt_fail(__FILE__, __LINE__,
			 "frames differ or miss (want %zu)\nproducer:\n%.2000s\n"
			 "consumer:\n%.2000s",
			 n, a, b);
	CHECK(strstr(po, "frames-copied: 0\n") && strstr(co, "frames-copied: 0\n"));
	CHECK(strstr(po, "result: eos") && strstr(co, "result: eos"));
}

/* A producer and a consumer, the consumer first (the producer waits for its hello either way). */
static void pair(const struct hbt_daemon *d, const char *prod_addr, const char *prod,
		 const char *cons_addr, const char *cons, size_t frames)
{
	struct proc p, c;

	start(&c, d, "consumer", cons_addr, cons);
	start(&p, d, "producer", prod_addr, prod);
	finish(&p, 0);
	finish(&c, 0);
	same_frames(&p, &c, frames);
}

TEST(gst_vm_to_vm_1080p_bgrx)
{
	struct hbt_daemon d;

	need_gst();
	hbt_daemon_start(&d, NULL);
	pair(&d, hbt_addr_vm(&d, 1),
	     "videotestsrc num-buffers=300 ! " BGRX_1080
	     " ! identity name=sum ! hyperbufsink peer=2",
	     hbt_addr_vm(&d, 2), "hyperbufsrc peer=1 ! identity name=sum ! fakesink", 300);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}

/* NV12 at an odd size: GStreamer's strides (1920) are not the width, chroma rows are half. */
TEST(gst_host_to_vm_nv12_odd_width)
{
	struct hbt_daemon d;

	need_gst();
	hbt_daemon_start(&d, NULL);
	pair(&d, hbt_addr_host(&d),
	     "videotestsrc num-buffers=30 ! video/x-raw,format=NV12,width=1917,height=1079 ! "
	     "identity name=sum ! hyperbufsink peer=1",
	     hbt_addr_vm(&d, 1), "hyperbufsrc peer=0 ! identity name=sum ! fakesink", 30);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_STOP(&d);
}

TEST(gst_vm_to_host_i420_and_yuy2_odd)
{
	struct hbt_daemon d;

	need_gst();
	hbt_daemon_start(&d, NULL);
	pair(&d, hbt_addr_vm(&d, 1),
	     "videotestsrc num-buffers=20 ! video/x-raw,format=I420,width=641,height=479 ! "
	     "identity name=sum ! hyperbufsink peer=0",
	     hbt_addr_host(&d), "hyperbufsrc peer=1 ! identity name=sum ! fakesink", 20);
	pair(&d, hbt_addr_vm(&d, 1),
	     "videotestsrc num-buffers=20 ! video/x-raw,format=YUY2,width=33,height=17 ! "
	     "identity name=sum ! hyperbufsink peer=0",
	     hbt_addr_host(&d), "hyperbufsrc peer=1 ! identity name=sum ! fakesink", 20);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_STOP(&d);
}

/* Upstream that will not draw into the sink's pool (the query dropped): one copy, counted. */
TEST(gst_foreign_memory_copied_once_and_counted)
{
	struct hbt_daemon d;
	struct proc p, c;

	need_gst();
	hbt_daemon_start(&d, NULL);
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity name=sum ! fakesink");
	start(&p, &d, "producer", hbt_addr_vm(&d, 1),
	      "videotestsrc num-buffers=25 ! video/x-raw,format=BGRx,width=320,height=240 ! "
	      "identity name=sum drop-allocation=true ! hyperbufsink peer=2");
	finish(&p, 0);
	finish(&c, 0);
	CHECK(strstr(slurp(p.out), "frames-copied: 25\n"));
	CHECK(strstr(slurp(c.out), "frames-copied: 0\n"));
	CHECK_EQ(hbt_count_substr(slurp(c.out), "\nframe "), 25 - 1); /* the first has no \n */
	IT_STOP(&d);
}

/*
 * A producer that is done before a slow consumer looked at its frames: the sink stops (and
 * frees its buffers) right after EOS, so it must not reach EOS before the consumer mapped
 * every frame in flight. Three frames in three buffers, a consumer at 0.4 s per frame: all
 * three arrive.
 */
TEST(gst_eos_waits_until_the_consumer_mapped_every_frame)
{
	struct hbt_daemon d;

	need_gst();
	hbt_daemon_start(&d, NULL);
	pair(&d, hbt_addr_vm(&d, 1),
	     "videotestsrc num-buffers=3 ! video/x-raw,format=BGRx,width=640,height=480 ! "
	     "identity name=sum ! hyperbufsink peer=2",
	     hbt_addr_vm(&d, 2),
	     "hyperbufsrc peer=1 ! identity sleep-time=400000 ! identity name=sum ! fakesink", 3);
	IT_STOP(&d);
}

/* Exports of the producer's domain 1 that hyperbufctl lists. */
static size_t exports_of_vm1(const struct hbt_daemon *d)
{
	static char out[OUT_MAX];
	size_t n = 0;

	CHECK_EQ(hbt_ctl(d, out, sizeof(out), "--json exports"), 0);
	for (const char *s = out; (s = strstr(s, "\"exporter\":1,")) != NULL; s++)
		n++;
	return n;
}

/*
 * A consumer that stops reading (3 s per frame) holds the producer at its pool: the producer's
 * frames and its exports stop at `buffers` (3) while time passes. Killing the consumer then
 * ends the producer with EOS.
 */
TEST(gst_stalled_consumer_throttles_then_dies)
{
	struct hbt_daemon d;
	struct proc p, c;
	size_t early, late;

	need_gst();
	hbt_daemon_start(&d, NULL);
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity sleep-time=3000000 ! fakesink");
	start(&p, &d, "producer", hbt_addr_vm(&d, 1),
	      "videotestsrc num-buffers=200 ! " BGRX_1080 " ! identity name=sum ! "
	      "hyperbufsink peer=2 buffers=3");
	it_sleep_ms(2500);
	early = hbt_count_substr(slurp(p.out), "frame ");
	it_sleep_ms(1500);
	late = hbt_count_substr(slurp(p.out), "frame ");
	fprintf(stderr, "producer frames after 2.5 s: %zu, after 4 s: %zu\n", early, late);
	CHECK(early >= 3 && late <= 5);
	CHECK_EQ(exports_of_vm1(&d), 3);
	CHECK(IT_STAT(&d, "pool.b.pages_used") <= 3 * (long long)it_buffer_pages(FRAME_SZ) + 8);
	kill(c.pid, SIGKILL);
	CHECK_EQ(wait_exit(&c, 5000), 128 + SIGKILL);
	finish(&p, 0);
	CHECK(strstr(slurp(p.out), "result: eos"));
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}

/* The producer killed mid-stream: the consumer ends with EOS, its mappings still valid. */
TEST(gst_producer_killed_consumer_ends)
{
	struct hbt_daemon d;
	struct proc p, c;
	uint64_t end;

	need_gst();
	hbt_daemon_start(&d, NULL);
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity name=sum ! fakesink");
	start(&p, &d, "producer", hbt_addr_vm(&d, 1),
	      "videotestsrc is-live=true ! video/x-raw,format=BGRx,width=320,height=240,"
	      "framerate=100/1 ! hyperbufsink peer=2");
	end = hbt_now_ms() + 60000;
	while (hbt_count_substr(slurp(c.out), "frame ") < 10 && hbt_now_ms() < end)
		it_sleep_ms(50);
	CHECK(hbt_count_substr(slurp(c.out), "frame ") >= 10);
	kill(p.pid, SIGKILL);
	CHECK_EQ(wait_exit(&p, 5000), 128 + SIGKILL);
	CHECK_EQ(wait_exit(&c, 10000), 0);
	CHECK(strstr(slurp(c.out), "result: eos"));
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}

/*
 * The daemon restarts under a running pair. The library does not reconnect yet (the connection
 * error is sticky): both elements must stop with an error that says what happened, not hang or
 * crash. (When the library reconnects, this case is where the pair goes on instead.)
 */
TEST(gst_daemon_restart_is_a_clean_error)
{
	struct hbt_daemon d;
	struct proc p, c;
	uint64_t end;

	need_gst();
	hbt_daemon_start(&d, NULL);
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity name=sum ! fakesink");
	start(&p, &d, "producer", hbt_addr_vm(&d, 1),
	      "videotestsrc is-live=true ! video/x-raw,format=BGRx,width=320,height=240,"
	      "framerate=100/1 ! hyperbufsink peer=2");
	end = hbt_now_ms() + 60000;
	while (hbt_count_substr(slurp(c.out), "frame ") < 10 && hbt_now_ms() < end)
		it_sleep_ms(50);
	CHECK_EQ(hbt_daemon_restart(&d), 0);
	CHECK_EQ(wait_exit(&c, 10000), 1);
	CHECK_EQ(wait_exit(&p, 10000), 1);
	CHECK(strstr(slurp(c.out), "result: error: lost the connection to hyperbufd"));
	CHECK(strstr(slurp(p.out), "result: error: lost the connection to hyperbufd"));
	IT_STOP(&d);
}

/* ---- a hostile producer: this process ------------------------------------------------------ */

/* Waits for a consumer's hello in domain 1 and returns its timeline. */
static uint64_t hello_of(struct hb_client *c)
{
	struct hb_event ev;
	uint64_t tl = 0;

	while (!tl) {
		IT_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
		tl = hbg_hello_unpack(ev.meta, ev.meta_len);
	}
	return tl;
}

/* Exports b with the description img (unchecked: as a hostile peer could) for consumer tl. */
static void send_raw(struct hb_buffer *b, const struct hb_image *img, uint64_t tl)
{
	struct hbg_frame_extra x = {.fps_n = 0, .fps_d = 1, .par_n = 1, .par_d = 1, .consumer = tl};
	uint8_t meta[HB_IMAGE_WIRE_SIZE + HBG_FRAME_EXTRA];
	struct hb_id id;

	CHECK_EQ(hb_image_encode(img, meta, sizeof(meta)), HB_IMAGE_WIRE_SIZE);
	hbg_extra_pack(&x, meta + HB_IMAGE_WIRE_SIZE);
	IT_EXPORT(b, meta, sizeof(meta), &id);
}

TEST(gst_bad_description_is_an_error)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct hb_image img;
	struct proc c;
	uint64_t tl;

	need_gst();
	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity name=sum ! fakesink");
	tl = hello_of(v1);
	CHECK(hb_image_init(&img, XR24, 64, 64, 0) == 64 * 64 * 4);
	b = IT_ALLOC(v1, 2, 64 * 64 * 4, 0);
	img.height = 65; /* one row more than the buffer holds */
	send_raw(b, &img, tl);
	finish(&c, 1);
	CHECK(strstr(slurp(c.out), "result: error: a bad image description from domain 1"));
	hb_buffer_free(b);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/*
 * The description changes (BGRx 64x64, then NV12 32x16 in another buffer): the consumer
 * renegotiates. The first buffer is withdrawn while the consumer may still map it (fakesink
 * keeps the last buffer): nothing breaks. Then the end.
 */
TEST(gst_caps_change_and_withdrawn_buffer)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b1, *b2;
	struct hb_image img;
	struct hb_event ev;
	struct proc c;
	uint64_t tl;
	const char *out;

	need_gst();
	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	start(&c, &d, "consumer", hbt_addr_vm(&d, 2),
	      "hyperbufsrc peer=1 ! identity name=sum ! fakesink");
	tl = hello_of(v1);
	b1 = IT_ALLOC(v1, 2, hb_image_init(&img, XR24, 64, 64, 0), 0);
	send_raw(b1, &img, tl);
	b2 = IT_ALLOC(v1, 2, hb_image_init(&img, NV12, 32, 16, 0), 0);
	img.sequence = 1;
	send_raw(b2, &img, tl);
	IT_WAIT_EVENT(v1, HB_EVENT_IMPORTED, &ev); /* b1 is mapped: now withdraw it */
	hb_buffer_free(b1);
	img.sequence = 2;
	img.flags = HB_IMAGE_EOS;
	send_raw(b2, &img, tl);
	finish(&c, 0);
	out = slurp(c.out);
	CHECK(strstr(out, "frame 0 ") && strstr(out, " 64x64 BGRx\n"));
	CHECK(strstr(out, "frame 1 ") && strstr(out, " 32x16 NV12\n"));
	CHECK(strstr(out, "result: eos"));
	hb_buffer_free(b2);
	hb_disconnect(v1);
	IT_STOP(&d);
}

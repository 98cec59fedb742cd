/*
 * Writes the generated seeds of the fuzz targets, tests/fuzz/corpus/TARGET/NAME (make
 * fuzz-corpus, which then copies the configs/ files into corpus/config/). Seeds are small inputs
 * that reach deep: a frame of every ClientMsg and ServerMsg body, daemon sessions that share,
 * import, fence and misbehave (gen_daemon.c), directories of each depth (tests/fuzz/formats.h),
 * the descriptors a Xen client sends, configs. Run it again after a protocol change and commit
 * what changed; what the fuzzer finds on its own stays out of the tree (docs/FUZZING.md).
 *
 * usage: gen_corpus CORPUS_DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hyperbuf.h"
#include "protocol/frame.h"
#include "protocol/limits.h"
#include "protocol/refdir.h"
#include "protocol/resync.h"
#include "tests/fuzz/formats.h"
#include "tests/fuzz/gen_corpus.h"

static const char *top;

void hbt_put_file(const char *target, const char *name, const void *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", top, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

void hbt_append(struct hbp_bytes *b, const void *data, size_t len)
{
	if (hbp_bytes_reserve(b, len) < 0)
		exit(1);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void hbt_append_u8(struct hbp_bytes *b, uint8_t v)
{
	hbt_append(b, &v, 1);
}

void hbt_append_u16(struct hbp_bytes *b, uint16_t v)
{
	uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	hbt_append(b, le, 2);
}

/* ---- fuzz_frame: one ServerMsg of each body, and a stream ------------------------------- */

static uint8_t a_hid[16] = {2, 0, 0, 0, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9};

static void put_server(const char *name, ServerMsg *m, struct hbp_bytes *stream)
{
	struct hbp_bytes b = {0};
	ServerMsg *valid;
	char file[64];

	/* A seed the library would refuse reaches less than it could. */
	if (hbp_frame_put_server(&b, m, HBP_FRAME_MAX) < 0 ||
	    !(valid = hbp_frame_get_server(b.data + 4, b.len - 4))) {
		fprintf(stderr, "server-%s: not a valid frame\n", name);
		exit(1);
	}
	server_msg__free_unpacked(valid, NULL);
	snprintf(file, sizeof(file), "server-%s", name);
	hbt_put_file("frame", file, b.data, b.len);
	hbt_append(stream, b.data, b.len);
	hbp_bytes_free(&b);
}

static void gen_server_control(struct hbp_bytes *stream)
{
	ServerMsg m = SERVER_MSG__INIT;
	ControlReply c = CONTROL_REPLY__INIT;
	CtlDomain dom = CTL_DOMAIN__INIT, *doms[] = {&dom};
	CtlExport ex = CTL_EXPORT__INIT, *exs[] = {&ex};
	CtlImport im = CTL_IMPORT__INIT, *ims[] = {&im};
	CtlStat st = CTL_STAT__INIT, *sts[] = {&st};
	CtlTimeline tl = CTL_TIMELINE__INIT, *tls[] = {&tl};

	dom.name = "vm1";
	dom.id = 1;
	ex.hid = (ProtobufCBinaryData){16, a_hid};
	ex.state = "exported";
	im.hid = ex.hid;
	st.key = "sessions";
	st.value = 3;
	tl.id = 7;
	tl.owner_session = "host#1";
	c.version = "0.1.0";
	c.backend = "kvm";
	c.domains = doms, c.n_domains = 1;
	c.exports = exs, c.n_exports = 1;
	c.imports = ims, c.n_imports = 1;
	c.stats = sts, c.n_stats = 1;
	c.timelines = tls, c.n_timelines = 1;
	m.id = 9;
	m.body_case = SERVER_MSG__BODY_CONTROL;
	m.control = &c;
	put_server("control", &m, stream);
}

static void gen_server_frames(void)
{
	struct hbp_bytes stream = {0};
	ServerMsg m = SERVER_MSG__INIT;
	Welcome w = WELCOME__INIT;
	GroupInfo g = GROUP_INFO__INIT, *gs[] = {&g};
	uint32_t members[] = {0, 1};
	BufferDesc desc = BUFFER_DESC__INIT;
	AllocReply ar = ALLOC_REPLY__INIT;
	ExportReply er = EXPORT_REPLY__INIT;
	ImportReply ir = IMPORT_REPLY__INIT;
	QueryReply qr = QUERY_REPLY__INIT;
	Event ev = EVENT__INIT;
	TimelineReply tr = TIMELINE_REPLY__INIT;
	SyncReply sr = SYNC_REPLY__INIT;
	FencePoint fp = FENCE_POINT__INIT, *fps[] = {&fp};
	CpuAccessReply cr = CPU_ACCESS_REPLY__INIT;
	FenceDone fd = FENCE_DONE__INIT;

	g.id = 1, g.name = "a", g.pool_size = 1 << 20, g.members = members, g.n_members = 2;
	g.ivshmem_path = "/run/hyperbuf/a.sock", g.pool_instance = 77;
	w.version = 1, w.domain = 1, w.domain_name = "vm1", w.meta_max = 1024;
	w.event_queue = 256, w.frame_max = HBP_FRAME_MAX, w.groups = gs, w.n_groups = 1;
	m.id = 1, m.body_case = SERVER_MSG__BODY_WELCOME, m.welcome = &w;
	put_server("welcome", &m, &stream);
	m.id = 2, m.body_case = SERVER_MSG__BODY__NOT_SET, m.error = EPROTO;
	put_server("error", &m, &stream);
	m.error = 0;
	desc.group = 1, desc.root_ref = 5, desc.depth = 1, desc.pages = 3, desc.size = 10000;
	ar.buffer = 1, ar.desc = &desc;
	m.id = 3, m.body_case = SERVER_MSG__BODY_ALLOC, m.alloc = &ar;
	put_server("alloc", &m, &stream);
	er.hid = (ProtobufCBinaryData){16, a_hid};
	m.id = 4, m.body_case = SERVER_MSG__BODY_EXPORT, m.export = &er;
	put_server("export", &m, &stream);
	ir.import = 2, ir.desc = &desc, ir.exporter = 0, ir.meta = (ProtobufCBinaryData){1, a_hid};
	m.id = 5, m.body_case = SERVER_MSG__BODY_IMPORT, m.import = &ir;
	put_server("import", &m, &stream);
	qr.exporter = 0, qr.peer = 1, qr.size = 10000, qr.pages = 3, qr.importers = 1;
	m.id = 6, m.body_case = SERVER_MSG__BODY_QUERY, m.query = &qr;
	put_server("query", &m, &stream);
	ev.type = HB_EVENT_EXPORTED, ev.hid = er.hid, ev.domain = 0, ev.size = 10000;
	m.id = 0, m.body_case = SERVER_MSG__BODY_EVENT, m.event = &ev;
	put_server("event", &m, &stream);
	tr.timeline = (uint64_t)HBT_TIMELINE_EPOCH << 32 | 1;
	m.id = 7, m.body_case = SERVER_MSG__BODY_TIMELINE, m.timeline = &tr;
	put_server("timeline", &m, &stream);
	sr.wait = 3, sr.status = 0, sr.owner = 0;
	m.id = 8, m.body_case = SERVER_MSG__BODY_SYNC, m.sync = &sr;
	put_server("sync", &m, &stream);
	fp.timeline = tr.timeline, fp.value = 4;
	cr.fences = fps, cr.n_fences = 1;
	m.id = 10, m.body_case = SERVER_MSG__BODY_CPU_ACCESS, m.cpu_access = &cr;
	put_server("cpu_access", &m, &stream);
	fd.wait = 3, fd.timeline = tr.timeline, fd.value = 4, fd.status = -EIO;
	m.id = 0, m.body_case = SERVER_MSG__BODY_FENCE, m.fence = &fd;
	put_server("fence", &m, &stream);
	gen_server_control(&stream);
	hbt_put_file("frame", "stream", stream.data, stream.len);
	hbp_bytes_free(&stream);
}

static void gen_markers(void)
{
	struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION};
	uint8_t out[HBP_RESYNC_LEN + 3] = {0x89, 'H', 'B'};

	memset(m.nonce, 0x5a, sizeof(m.nonce));
	hbp_resync_pack(out + 3, &m);
	hbt_put_file("frame", "marker-after-a-cut", out, sizeof(out));
	hbt_put_file("frame", "marker-prefix", out, 6);
}

/* ---- fuzz_refdir ------------------------------------------------------------------------- */

struct dir_seed {
	struct hbt_refdir_header h;
	const uint32_t *bodies[4];
	unsigned lens[4]; /* entries */
};

static void put_dir(const char *name, const struct dir_seed *s, const uint8_t *desc,
		    size_t desc_len)
{
	struct hbp_bytes b = {0};

	hbt_append(&b, &s->h, sizeof(s->h));
	if (s->h.flags & HBT_REFDIR_DESC) {
		hbt_append_u8(&b, (uint8_t)desc_len);
		hbt_append(&b, desc, desc_len);
	}
	for (unsigned i = 0; i < 4 && s->bodies[i]; i++) {
		hbt_append_u16(&b, (uint16_t)(4 * s->lens[i]));
		hbt_append(&b, s->bodies[i], 4 * s->lens[i]);
	}
	hbt_put_file("refdir", name, b.data, b.len);
	hbp_bytes_free(&b);
}

static void gen_refdirs(void)
{
	static const uint32_t data3[] = {200, 201, 202}, two[] = {5000, 101}, one[] = {102},
			      last[] = {9}, self[] = {100, 100}, slack[] = {200, 201, 202, 0, 7};
	struct dir_seed s = {.h = {.root = 100, .depth = 1, .pages = 3, .base = 100}};
	BufferDesc bd = BUFFER_DESC__INIT;
	uint8_t packed_desc[64];
	uint64_t size;

	s.h.size_lo = 3 * 4096 - 100;
	s.bodies[0] = data3, s.lens[0] = 3;
	put_dir("depth1", &s, NULL, 0);
	s.h.flags = HBT_REFDIR_MANY;
	put_dir("depth1-batched", &s, NULL, 0);
	s.h.flags = HBT_REFDIR_SHORT, s.h.root = 101, s.h.base = 101;
	put_dir("short-page", &s, NULL, 0);
	s.h.flags = 0, s.h.root = 100, s.h.base = 100, s.bodies[0] = slack, s.lens[0] = 5;
	put_dir("slack", &s, NULL, 0);
	/* Depth 2 and 3: the root and the last page of each level from the input, the full
	 * pages made up (HBT_REFDIR_SYNTH). */
	s = (struct dir_seed){.h = {.flags = HBT_REFDIR_SYNTH, .fill = 1024, .root = 100}};
	s.h.base = 100, s.h.depth = 2, s.h.pages = 1025, s.h.size_lo = 1025 * 4096;
	s.bodies[0] = two, s.lens[0] = 2, s.bodies[1] = last, s.lens[1] = 1;
	put_dir("depth2-made-up", &s, NULL, 0);
	s.h.flags |= HBT_REFDIR_MANY;
	put_dir("depth2-made-up-batched", &s, NULL, 0);
	size = ((1ull << 20) + 1) * 4096;
	s.h.flags = HBT_REFDIR_SYNTH, s.h.depth = 3, s.h.pages = (1u << 20) + 1;
	s.h.size_lo = (uint32_t)size, s.h.size_hi = (uint32_t)(size >> 32);
	s.bodies[1] = one, s.bodies[2] = last, s.lens[2] = 1;
	put_dir("depth3-made-up", &s, NULL, 0);
	s = (struct dir_seed){.h = {.root = 100, .depth = 2, .pages = 1025, .base = 100}};
	s.h.size_lo = 1025 * 4096, s.bodies[0] = self, s.lens[0] = 2;
	put_dir("loop", &s, NULL, 0);
	bd.root_ref = 100, bd.depth = 1, bd.pages = 3, bd.first_offset = 12,
	bd.size = 3 * 4096 - 12;
	s = (struct dir_seed){.h = {.flags = HBT_REFDIR_DESC, .base = 100}};
	s.bodies[0] = data3, s.lens[0] = 3;
	put_dir("from-desc", &s, packed_desc, buffer_desc__pack(&bd, packed_desc));
	/* Depth 0: the refs in the descriptor, no directory page to map. */
	bd.root_ref = 0, bd.depth = 0, bd.n_refs = 3, bd.refs = (uint32_t *)data3;
	put_dir("inline-from-desc", &s, packed_desc, buffer_desc__pack(&bd, packed_desc));
}

/* ---- fuzz_desc --------------------------------------------------------------------------- */

static void put_desc(const char *name, uint32_t root, uint32_t off, uint64_t size)
{
	uint64_t pages = hbp_refdir_span(size, off);
	struct {
		uint32_t root, depth, pages, first_offset;
		uint64_t size, reserved;
	} __attribute__((packed))
	f = {root, (uint32_t)hbp_refdir_depth(pages), (uint32_t)pages, off, size, size};
	BufferDesc bd = BUFFER_DESC__INIT;
	uint8_t out[sizeof(f) + 64];
	size_t n;

	bd.root_ref = root, bd.depth = f.depth, bd.pages = f.pages, bd.first_offset = off;
	bd.size = size;
	memcpy(out, &f, sizeof(f));
	n = buffer_desc__pack(&bd, out + sizeof(f));
	hbt_put_file("desc", name, out, sizeof(f) + n);
}

/* A descriptor with its refs inline (depth 0): the header part says nothing about it. */
static void put_inline_desc(void)
{
	static const uint32_t refs[] = {10, 11, 12};
	uint8_t out[32 + 64] = {0}; /* fuzz_desc.c: 32 bytes of fields, then the wire form */
	BufferDesc bd = BUFFER_DESC__INIT;
	size_t n;

	bd.pages = 3, bd.size = 3 * 4096 - 7, bd.n_refs = 3, bd.refs = (uint32_t *)refs;
	n = buffer_desc__pack(&bd, out + 32);
	hbt_put_file("desc", "inline", out, 32 + n);
}

static void gen_descs(void)
{
	put_desc("one-page", 8, 0, 4096);
	put_desc("offset", 9, 100, 8000);
	put_desc("depth2", 1000, 0, 1025ull * 4096);
	put_desc("depth3", 1 << 20, 4095, (1ull << 30) * 4096 - 4095);
	put_desc("reserved-root", 7, 0, 1);
	put_inline_desc();
}

/* ---- fuzz_config: the shipped configs are copied by make fuzz-corpus --------------------- */

static void gen_configs(void)
{
	static const char topo[] =
	    "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"
	    "[limits]\nexports_per_domain = 4\nsessions_per_domain = 2\n\n"
	    "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 3\n\n"
	    "[vm vm2]\nid = 2\nchannel = vm2.sock\n\n"
	    "[group a]\nmembers = host, vm1\nsize = 64M\nivshmem = group-a.sock\n\n"
	    "[group b]\nmembers = vm1, vm2\nsize = 128K\nivshmem = b-{vm}.sock\nvectors = 4\n";
	static const char xen[] = "[daemon]\nbackend = xen\n[xen]\ndomains = 1, 2, 7\n"
				  "grant_budget = 1000\nmaptrack_budget = 0\n";
	static const char reload[] = "[daemon]\nsocket = /run/a.sock\n[limits]\nmeta_max = 2048\n"
				     "\0[daemon]\nsocket = /run/b.sock\nlog = warn\n[limits]\n"
				     "event_queue = 16\n";

	hbt_put_file("config", "topology", topo, sizeof(topo) - 1);
	hbt_put_file("config", "xen", xen, sizeof(xen) - 1);
	hbt_put_file("config", "reload", reload, sizeof(reload) - 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	top = argv[1];
	if (mkdir(top, 0755) < 0 && errno != EEXIST) {
		perror(top);
		return 1;
	}
	hbt_gen_daemon();
	gen_server_frames();
	gen_markers();
	gen_refdirs();
	gen_descs();
	gen_configs();
	return 0;
}

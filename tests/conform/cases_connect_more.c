/*
 * Conformance cases: addresses, the hid's text form, reconnects and the library's words
 * (ported from test_it_connect; docs/TESTING.md lists them). What an application sees in every
 * domain: the library's parsing and its errors are the same code in a guest, and a guest's
 * default address, its port or its vchan, must take the same reconnects as a socket. Written
 * once for every target (tests/conform/conform.h).
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/conform/conform.h"

#define HAS(text, needle)                                                                          \
	do {                                                                                       \
		const char *cf_t = (text);                                                         \
		if (!strstr(cf_t, (needle)))                                                       \
			cf_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", cf_t, (needle));        \
	} while (0)

/* The domain after this one: every two domains share a group in the topology. */
static uint32_t next_domain(void)
{
	return (cf_domain() + 1) % 3;
}

/* The explicit address of this role's default: in a guest "xen:" or "kvm:", what
 * HYPERBUF_ADDRESS would name there. */
static const char *explicit_address(void)
{
	char type[16] = "";
	FILE *f;

	if (cf_address())
		return cf_address();
	f = fopen("/sys/hypervisor/type", "r");
	if (f) {
		if (!fgets(type, sizeof(type), f))
			type[0] = '\0';
		fclose(f);
	}
	return strncmp(type, "xen", 3) == 0 ? "xen:" : "kvm:";
}

/* ---- connect_bad_address (test_it_connect) --------------------------------------------------
 * Every malformed address is EINVAL, and a path that cannot fit a sockaddr_un too, before any
 * transport is tried: in a guest as on the host. */
static void bad_address_role(void)
{
	static const char *const bad[] = {
	    "",        "bogus",       "unix",   "unix:",   "vm:", "tcp:1.2.3.4:5",
	    "UNIX:/x", "file:/tmp/x", "xen:/x", "kvm:port"};
	char longaddr[400];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (hb_connect(bad[i]) != NULL)
			cf_fail(__FILE__, __LINE__, "hb_connect(\"%s\") succeeded", bad[i]);
		if (errno != EINVAL)
			cf_fail(__FILE__, __LINE__,
				"hb_connect(\"%s\"): errno %d (%s), want EINVAL", bad[i], errno,
				strerror(errno));
	}
	snprintf(longaddr, sizeof(longaddr), "unix:/tmp/%0300d", 7);
	errno = 0;
	CHECK(hb_connect(longaddr) == NULL);
	CHECK(errno == EINVAL || errno == ENAMETOOLONG);
	snprintf(longaddr, sizeof(longaddr), "vm:/tmp/%0300d", 7);
	errno = 0;
	CHECK(hb_connect(longaddr) == NULL);
	CHECK(errno == EINVAL || errno == ENAMETOOLONG);
}

CF_CASE(connect_bad_address, {0, bad_address_role}, {1, bad_address_role}, {2, bad_address_role})

/* ---- connect_no_daemon (test_it_connect) ----------------------------------------------------
 * A socket address nobody serves: ENOENT for a missing file, ECONNREFUSED for a socket nobody
 * listens on or a stale one, whatever domain the application runs in. */
static void no_daemon_role(void)
{
	char dir[] = "/tmp/hbcf.XXXXXX", path[200], addr[220];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ENOENT);
	snprintf(addr, sizeof(addr), "vm:%s", path);
	CHECK_ERR(hb_connect(addr), ENOENT);

	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	strcpy(sa.sun_path, path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	snprintf(addr, sizeof(addr), "vm:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	close(fd);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	unlink(path);
	rmdir(dir);
}

CF_CASE(connect_no_daemon, {0, no_daemon_role}, {1, no_daemon_role}, {2, no_daemon_role})

/* ---- connect_env_address (test_it_connect) --------------------------------------------------
 * hb_connect(NULL) takes $HYPERBUF_ADDRESS: a bad one fails as that address would, and the
 * domain's own address (a guest's "kvm:" or "xen:") reaches the daemon as that domain. */
static void env_address_role(void)
{
	struct hb_client *c;
	char addr[300];

	setenv("HYPERBUF_ADDRESS", "unix:/nonexistent-hyperbuf-dir/x.sock", 1);
	CHECK_ERR(hb_connect(NULL), ENOENT);
	setenv("HYPERBUF_ADDRESS", "nonsense", 1);
	CHECK_ERR(hb_connect(NULL), EINVAL);
	snprintf(addr, sizeof(addr), "%s", explicit_address());
	setenv("HYPERBUF_ADDRESS", addr, 1);
	c = hb_connect(NULL);
	if (!c)
		cf_fail(__FILE__, __LINE__, "hb_connect(NULL) with HYPERBUF_ADDRESS=%s: %s", addr,
			strerror(errno));
	CHECK_EQ(hb_self_domain(c), cf_domain());
	hb_disconnect(c);
	unsetenv("HYPERBUF_ADDRESS");
}

CF_CASE(connect_env_address, {0, env_address_role}, {1, env_address_role}, {2, env_address_role})

/* ---- id_format_parse_equal (test_it_connect) ------------------------------------------------
 * The hid's text form: 32 lower-case hex digits out, either case in, nothing else accepted;
 * equality over all 128 bits. The library's code, checked in each domain's build. */
static void random_id(struct hb_id *id, uint64_t *seed)
{
	for (int i = 0; i < 16; i++) {
		*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
		id->bytes[i] = (uint8_t)(*seed >> 56);
	}
}

static void id_text_round_trips(void)
{
	struct hb_id a, b;
	char text[33], upper[33];
	uint64_t seed = 0x1234 + cf_domain();

	for (int i = 0; i < 16; i++)
		a.bytes[i] = (uint8_t)(i * 17 + 10);
	CHECK_EQ(hb_id_format(&a, text), 0);
	CHECK(strcmp(text, "0a1b2c3d4e5f708192a3b4c5d6e7f809") == 0);
	memset(&b, 0, sizeof(b));
	CHECK_EQ(hb_id_parse(text, &b), 0);
	CHECK_EQ(hb_id_equal(&a, &b), 1);
	for (int i = 0; i < 33; i++)
		upper[i] = (char)(text[i] >= 'a' && text[i] <= 'f' ? text[i] - 32 : text[i]);
	memset(&b, 0, sizeof(b));
	CHECK_EQ(hb_id_parse(upper, &b), 0);
	CHECK_EQ(hb_id_equal(&a, &b), 1);
	for (int i = 0; i < 200; i++) {
		random_id(&a, &seed);
		CHECK_EQ(hb_id_format(&a, text), 0);
		for (int k = 0; k < 32; k++)
			CHECK((text[k] >= '0' && text[k] <= '9') ||
			      (text[k] >= 'a' && text[k] <= 'f'));
		CHECK_EQ(hb_id_parse(text, &b), 0);
		CHECK_EQ(hb_id_equal(&a, &b), 1);
	}
}

static void id_role(void)
{
	static const char *const bad[] = {"",
					  "0a1b2c3d4e5f708192a3b4c5d6e7f80",   /* 31 digits */
					  "0a1b2c3d4e5f708192a3b4c5d6e7f8090", /* 33 */
					  "0a1b2c3d4e5f708192a3b4c5d6e7f80g",  /* not hex */
					  " 0a1b2c3d4e5f708192a3b4c5d6e7f80",
					  "0a1b2c3d4e5f708192a3b4c5d6e7f80 ",
					  "0x1b2c3d4e5f708192a3b4c5d6e7f809",
					  "-a1b2c3d4e5f708192a3b4c5d6e7f809",
					  "0a1b2c3d-4e5f-7081-92a3-b4c5d6e7",
					  "0a1b2c3d4e5f708192a3b4c5d6e7f8\xc3\xa9"};
	struct hb_id a = {{0}}, z = {{0}}, b;
	char text[33];

	id_text_round_trips();
	CHECK_ERR(hb_id_parse(NULL, &b), EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (hb_id_parse(bad[i], &b) != -1 || errno != EINVAL)
			cf_fail(__FILE__, __LINE__, "hb_id_parse(\"%s\") was not EINVAL", bad[i]);
	}
	CHECK_ERR(hb_id_format(NULL, text), EINVAL);
	CHECK_ERR(hb_id_format(&a, NULL), EINVAL);
	b = z;
	CHECK_EQ(hb_id_equal(&z, &b), 1);
	for (int i = 0; i < 128; i++) {
		b = z;
		b.bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_EQ(hb_id_equal(&z, &b), 0);
		CHECK_EQ(hb_id_equal(&b, &z), 0);
	}
}

CF_CASE(id_format_parse_equal, {0, id_role}, {1, id_role}, {2, id_role})

/* ---- vm_reconnects_200_times (test_it_connect vm_reconnects_1000_times) ---------------------
 * A guest process that reopens its session as fast as it can: every connect works, and every
 * tenth shares with the host, so the domain's pool (KVM) or grants (Xen) are really in use.
 * 200 rounds, not 1000: each is a handshake over the guest's port or vchan under TCG. */
#define RECONNECTS 200

static void reconnect_host(void)
{
	cf_connect();
	cf_barrier("done");
}

static void reconnect_vm(void)
{
	int failures = 0, first_errno = 0;

	for (int i = 0; i < RECONNECTS; i++) {
		struct hb_client *c = hb_connect(cf_address());

		if (!c) {
			if (!failures++)
				first_errno = errno;
			continue;
		}
		if (i % 10 == 0) {
			struct hb_buffer *b = hb_buffer_alloc(c, 0, 4096, 0);

			if (!b)
				cf_fail(__FILE__, __LINE__, "round %d: alloc: %s", i,
					strerror(errno));
			hb_buffer_free(b);
		}
		hb_disconnect(c);
	}
	if (failures)
		cf_fail(__FILE__, __LINE__, "%d of %d connects failed, the first with %s", failures,
			RECONNECTS, strerror(first_errno));
	cf_barrier("done");
}

CF_CASE(vm_reconnects_200_times, {0, reconnect_host}, {1, reconnect_vm})

/* ---- connect_explains (test_it_connect) -----------------------------------------------------
 * A failed hb_connect says which address and what to check; words kept for another errno are
 * never shown for this one. (Its half on the host's control socket stays host-side.) */
static void explains_role(void)
{
	CHECK_ERR(hb_connect("unix:/nonexistent-hyperbuf-dir/x.sock"), ENOENT);
	HAS(hb_strerror(NULL), "unix:/nonexistent-hyperbuf-dir/x.sock");
	HAS(hb_strerror(NULL), "is hyperbufd running");
	CHECK_ERR(hb_connect("bogus"), EINVAL);
	HAS(hb_strerror(NULL), "'bogus' is not a hyperbuf address");
	errno = EAGAIN;
	CHECK(strcmp(hb_strerror(NULL), strerror(EAGAIN)) == 0);
}

CF_CASE(connect_explains, {0, explains_role}, {1, explains_role}, {2, explains_role})

/* ---- calls_explain (test_it_connect) --------------------------------------------------------
 * A refused request carries the daemon's words (a domain that does not exist, and the domains
 * the config does have, on Xen as on KVM); the library's own refusal names its limit; the next call
 * that succeeds leaves no words behind. (The daemon's meta_max words need a daemon with a smaller
 * meta_max: the original's.) */
static void calls_explain_role(void)
{
	static uint8_t meta[HB_META_MAX + 1];
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_id id;

	errno = 0;
	CHECK(hb_buffer_alloc(c, 9, 4096, 0) == NULL);
	CHECK_EQ(errno, ENODEV);
	HAS(hb_strerror(c), "no domain 9");
	HAS(hb_strerror(c), "(1), "); /* the domains the config does have: */
	HAS(hb_strerror(c), "(2)");   /* "vm1 (1), vm2 (2)" on KVM, "dom1 (1)..." on Xen */
	b = CF_ALLOC(c, next_domain(), 4096, 0);
	CHECK_EQ(hb_export(b, meta, sizeof(meta), 0, &id), -1);
	CHECK_EQ(errno, EMSGSIZE);
	HAS(hb_strerror(c), "metadata of 4097 bytes");
	HAS(hb_strerror(c), "of 4096 bytes");
	CF_EXPORT(b, meta, 16, &id);
	errno = EMSGSIZE;
	CHECK(strcmp(hb_strerror(c), strerror(EMSGSIZE)) == 0);
	cf_barrier("exported");
	hb_buffer_free(b);
}

CF_CASE(calls_explain, {0, calls_explain_role}, {1, calls_explain_role}, {2, calls_explain_role})

/* ---- debug_traces_messages (test_it_connect) ------------------------------------------------
 * HYPERBUF_DEBUG=1 traces every frame by its message's name on stderr, in a guest as on the
 * host. The library reads the variable at a process's first hb_connect: a role is a fresh
 * child of its server, which never connects itself. */
static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void trace_role(void)
{
	static const char *const lines[] = {"-> Hello #",      "<- Welcome #", "-> Alloc #",
					    "<- AllocReply #", "-> Export #",  "<- ExportReply #"};
	char path[] = "/tmp/hbcf-trace.XXXXXX";
	struct hb_client *c;
	struct hb_buffer *b = NULL;
	struct hb_id id;
	int fd, saved, exported = -1;

	fd = mkstemp(path);
	CHECK(fd >= 0);
	saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	setenv("HYPERBUF_DEBUG", "1", 1);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	c = cf_connect();
	b = hb_buffer_alloc(c, next_domain(), 4096, 0);
	if (b)
		exported = hb_export(b, "m", 1, 0, &id);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	unsetenv("HYPERBUF_DEBUG");
	CHECK(b != NULL && exported == 0);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!file_has(path, lines[i]))
			cf_fail(__FILE__, __LINE__, "the trace lacks \"%s\"", lines[i]);
	unlink(path);
	cf_barrier("traced");
	hb_buffer_free(b);
}

CF_CASE(debug_traces_messages, {0, trace_role}, {1, trace_role}, {2, trace_role})

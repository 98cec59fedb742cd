/*
 * hyperbufctl (DAEMON.md "hyperbufctl"): every command in text and --json, the statistics
 * moving as they should (bytes_copied never), a clean failure without a daemon, and listings
 * too long for one reply cut short, saying so.
 */
#include "tests/it_common.h"

#define OUT_LEN (256 * 1024)

static const char *const stat_keys[] = {
    "sessions",          "buffers",
    "exports",           "imports",
    "pages_used",        "messages_in",
    "messages_out",      "events_sent",
    "events_dropped",    "errors_protocol",
    "errors_request",    "bytes_mapped",
    "bytes_copied",      "pages_punched",
    "pool.a.pages_used", "pool.a.pages_total",
    "pool.b.pages_used", "pool.b.pages_total",
    "pool.c.pages_used", "pool.c.pages_total",
    "loop_turns",        "write_waits",
    "socket_calls",      "timeline_signals",
    "lazy_changes",
};

struct share {
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id;
	char hid[33];
};

static void share_open(struct share *s, const struct hbt_daemon *d)
{
	s->v1 = IT_CONNECT(hbt_addr_vm(d, 1));
	s->v2 = IT_CONNECT(hbt_addr_vm(d, 2));
	s->b = IT_ALLOC(s->v1, 2, 10000, 0);
	it_fill(s->b, 1);
	IT_EXPORT(s->b, "m", 1, &s->id);
	s->im = IT_IMPORT(s->v2, &s->id, 0);
	IT_CHECK_IMPORT(s->im, 10000, 1);
	CHECK_EQ(hb_id_format(&s->id, s->hid), 0);
}

static void share_close(struct share *s)
{
	hb_import_release(s->im);
	hb_buffer_free(s->b);
	it_drain(s->v1);
	it_drain(s->v2);
	hb_disconnect(s->v1);
	hb_disconnect(s->v2);
}

static void ctl_ok(const struct hbt_daemon *d, char *out, const char *args)
{
	int code = hbt_ctl(d, out, OUT_LEN, args);

	if (code != 0)
		hbt_fail(__FILE__, __LINE__, "hyperbufctl %s: exit %d, output:\n%s", args, code,
			 out);
}

static void must_contain(const char *out, const char *what, const char *cmd)
{
	if (!strstr(out, what))
		hbt_fail(__FILE__, __LINE__, "hyperbufctl %s: no \"%s\" in:\n%s", cmd, what, out);
}

TEST(ctl_text_commands)
{
	struct hbt_daemon d;
	struct share s;
	char *out = malloc(OUT_LEN);
	size_t i;

	CHECK(out != NULL);
	hbt_daemon_start(&d, NULL);
	share_open(&s, &d);

	ctl_ok(&d, out, "status");
	must_contain(out, HB_VERSION_STRING, "status");
	must_contain(out, "kvm", "status");

	ctl_ok(&d, out, "domains");
	must_contain(out, "host", "domains");
	must_contain(out, "vm1", "domains");
	must_contain(out, "vm2", "domains");
	must_contain(out, "vm3", "domains");

	ctl_ok(&d, out, "exports");
	must_contain(out, s.hid, "exports");
	must_contain(out, "10000", "exports");

	ctl_ok(&d, out, "imports");
	must_contain(out, s.hid, "imports");

	ctl_ok(&d, out, "timelines");

	ctl_ok(&d, out, "stats");
	for (i = 0; i < sizeof(stat_keys) / sizeof(stat_keys[0]); i++) {
		if (it_kv(out, stat_keys[i]) < 0)
			hbt_fail(__FILE__, __LINE__, "stats has no \"%s: N\" line:\n%s",
				 stat_keys[i], out);
	}
	CHECK_EQ(it_kv(out, "buffers"), 1);
	CHECK_EQ(it_kv(out, "exports"), 1);
	CHECK_EQ(it_kv(out, "imports"), 1);
	CHECK_EQ(it_kv(out, "pages_used"), it_buffer_pages(10000));
	CHECK_EQ(it_kv(out, "pool.b.pages_used"), it_buffer_pages(10000));
	CHECK_EQ(it_kv(out, "pool.a.pages_used"), 0);
	CHECK_EQ(it_kv(out, "bytes_copied"), 0);
	CHECK(it_kv(out, "bytes_mapped") >= 10000);
	CHECK(it_kv(out, "messages_in") > 0);
	CHECK(it_kv(out, "messages_out") > 0);
	CHECK(it_kv(out, "events_sent") >= 2); /* EXPORTED, IMPORTED */
	CHECK_EQ(it_kv(out, "errors_protocol"), 0);

	/* Unexported and free: the views empty out. */
	share_close(&s);
	IT_CHECK_STAT(&d, "exports", 0);
	ctl_ok(&d, out, "exports");
	CHECK(strstr(out, s.hid) == NULL);
	ctl_ok(&d, out, "imports");
	CHECK(strstr(out, s.hid) == NULL);
	free(out);
	IT_STOP(&d);
}

TEST(ctl_json)
{
	static const char *const cmds[] = {"--json status",  "--json domains", "--json exports",
					   "--json imports", "--json stats",   "--json timelines"};
	struct hbt_daemon d;
	struct share s;
	char *out = malloc(OUT_LEN);
	char quoted[40];
	size_t i;

	CHECK(out != NULL);
	hbt_daemon_start(&d, NULL);
	share_open(&s, &d);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		ctl_ok(&d, out, cmds[i]);
		if (!it_json_ok(out))
			hbt_fail(__FILE__, __LINE__, "hyperbufctl %s: not one JSON object:\n%s",
				 cmds[i], out);
	}
	ctl_ok(&d, out, "--json status");
	must_contain(out, "\"version\"", "--json status");
	must_contain(out, "\"" HB_VERSION_STRING "\"", "--json status");
	ctl_ok(&d, out, "--json domains");
	must_contain(out, "\"vm2\"", "--json domains");
	snprintf(quoted, sizeof(quoted), "\"%s\"", s.hid);
	ctl_ok(&d, out, "--json exports");
	must_contain(out, quoted, "--json exports");
	ctl_ok(&d, out, "--json imports");
	must_contain(out, quoted, "--json imports");
	ctl_ok(&d, out, "--json stats");
	for (i = 0; i < sizeof(stat_keys) / sizeof(stat_keys[0]); i++) {
		snprintf(quoted, sizeof(quoted), "\"%s\"", stat_keys[i]);
		must_contain(out, quoted, "--json stats");
	}
	share_close(&s);
	free(out);
	IT_STOP(&d);
}

TEST(ctl_without_daemon)
{
	char out[4096];
	char *argv[] = {(char *)hbt_prog("hyperbufctl"), "-s", "/nonexistent-hyperbuf/x.sock",
			"stats", NULL};
	char *argv_json[] = {(char *)hbt_prog("hyperbufctl"),
			     "-s",
			     "/nonexistent-hyperbuf/x.sock",
			     "--json",
			     "status",
			     NULL};

	CHECK_EQ(it_run(out, sizeof(out), argv), 1);
	CHECK(strlen(out) > 0);
	CHECK_EQ(it_run(out, sizeof(out), argv_json), 1);
	CHECK(strlen(out) > 0);
}

TEST(ctl_bad_usage)
{
	struct hbt_daemon d;
	char *out = malloc(OUT_LEN);
	char buf[4096];
	char *argv[] = {(char *)hbt_prog("hyperbufctl"), "-s", NULL, "no-such-command", NULL};

	CHECK(out != NULL);
	hbt_daemon_start(&d, NULL);
	argv[2] = d.socket;
	CHECK_EQ(it_run(buf, sizeof(buf), argv), 1);
	CHECK(strlen(buf) > 0);
	/* The daemon is unaffected. */
	ctl_ok(&d, out, "status");
	free(out);
	IT_STOP(&d);
}

/* Counters move with traffic; bytes_copied never does. */
TEST(ctl_stats_move)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id, bad;
	long long in0, out0, ev0, req0, calls0;
	uint64_t seed = 1;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	in0 = IT_STAT(&d, "messages_in");
	out0 = IT_STAT(&d, "messages_out");
	ev0 = IT_STAT(&d, "events_sent");
	req0 = IT_STAT(&d, "errors_request");
	calls0 = IT_STAT(&d, "socket_calls");

	b = IT_ALLOC(v1, 2, 4u << 20, 0);
	it_fill(b, 2);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v2, &id, 0);
	IT_CHECK_IMPORT(im, 4u << 20, 2);
	it_random_id(&bad, &seed);
	CHECK_ERR(hb_import(v2, &bad, 0), ENOENT);

	CHECK(IT_STAT(&d, "messages_in") >= in0 + 4);   /* alloc, export, import, import */
	CHECK(IT_STAT(&d, "messages_out") >= out0 + 6); /* their replies, EXPORTED, IMPORTED */
	CHECK(IT_STAT(&d, "events_sent") >= ev0 + 2);
	CHECK(IT_STAT(&d, "errors_request") >= req0 + 1);
	/* Each of the four requests waited for its reply: a recv for each and a send for each
	 * reply at least (the control sessions of the IT_STATs in between count too). */
	CHECK(IT_STAT(&d, "socket_calls") >= calls0 + 4 + 4);
	CHECK(IT_STAT(&d, "bytes_mapped") >= 4 << 20);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);
	hb_import_release(im);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "bytes_mapped", 0);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	it_drain(v1);
	it_drain(v2);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/*
 * Control listings are bounded, and every request gets its reply: with 1600 exports and 1600
 * imports every unpaged view still answers, cut at 1500 entries and saying so, and the largest
 * reply fits a frame; hyperbufctl pages and shows every row. (The daemon's EMSGSIZE fallback for a
 * reply it cannot frame stays out of reach from outside once listings are bounded: nothing else is
 * that big.)
 */
TEST(reply_too_big_gets_error_not_silence)
{
	enum { N = 1600, LIST_MAX = 1500, NCTL = 4 };
	static const uint32_t what[NCTL] = {HBP_CTL_STATS, HBP_CTL_EXPORTS, HBP_CTL_IMPORTS,
					    HBP_CTL_DOMAINS};
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct it_raw r;
	struct hb_id id;
	size_t outlen = 1 << 20, len = 0, biggest = 0;
	uint8_t frames[1024];
	char *out;
	int i;

	hbt_daemon_start(&d, "[limits]\nexports_per_domain = 4000\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	/* Both listings over the bound: the largest control reply there can be. */
	for (i = 0; i < N; i++) {
		struct hb_buffer *b = IT_ALLOC(v1, 2, 64, 0);

		IT_EXPORT(b, NULL, 0, &id);
		IT_IMPORT(v2, &id, 0);
	}
	out = malloc(outlen);
	CHECK(out != NULL);

	/* The unpaged reply (status) was cut, and says so; hyperbufctl's listings page. */
	CHECK_EQ(hbt_ctl(&d, out, outlen, "status"), 0);
	CHECK_EQ(hbt_ctl(&d, out, outlen, "stats"), 0);
	CHECK_EQ(it_kv(out, "exports"), N);
	CHECK_EQ(it_kv(out, "ctl_list_truncated"), 1);
	CHECK_EQ(hbt_ctl(&d, out, outlen, "exports"), 0);
	CHECK_EQ(count_lines(out), 1 + N); /* the header, then every row */
	CHECK_EQ(hbt_ctl(&d, out, outlen, "--json exports"), 0);
	CHECK(it_json_ok(out));
	CHECK_EQ(hbt_count_substr(out, "\"hid\":"), N);
	CHECK_EQ(hbt_ctl(&d, out, outlen, "imports"), 0);
	CHECK_EQ(count_lines(out), 1 + N);

	/* Control requests pipelined in one write: exactly one reply each, in order. */
	hbt_raw_session(&r, d.socket, HBP_ROLE_CONTROL);
	for (i = 0; i < NCTL; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;

		ctl.what = what[i];
		IT_MSG(m, CONTROL, control, &ctl);
		m.id = 100 + (uint32_t)i;
		hbt_put_frame(frames, sizeof(frames), &len, &m);
	}
	CHECK_EQ(it_send_all(r.fd, frames, len), 0);
	for (i = 0; i < NCTL; i++) {
		int why = 1;
		ServerMsg *s = it_raw_recv(&r, IT_WAIT_MS, &why);
		bool truncated = false;
		size_t k;

		if (!s)
			hbt_fail(__FILE__, __LINE__, "no reply to control request %d (why %d)", i,
				 why);
		CHECK_EQ(s->id, 100 + i);
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_CONTROL);
		CHECK_EQ(s->control->n_exports, LIST_MAX);
		CHECK_EQ(s->control->n_imports, LIST_MAX);
		if (server_msg__get_packed_size(s) > biggest)
			biggest = server_msg__get_packed_size(s);
		for (k = 0; k < s->control->n_stats; k++) {
			if (strcmp(s->control->stats[k]->key, "ctl_list_truncated") == 0)
				truncated = s->control->stats[k]->value == 1;
		}
		CHECK(truncated);
		server_msg__free_unpacked(s, NULL);
	}
	CHECK(it_raw_recv(&r, 300, NULL) == NULL); /* nothing more */
	it_raw_close(&r);
	printf("largest control reply: %zu bytes of %u\n", biggest, HBP_FRAME_MAX);

	/* Below the bound the listing is whole again. */
	hb_disconnect(v2);
	hb_disconnect(v1);
	IT_CHECK_STAT(&d, "exports", 0);
	IT_CHECK_STAT(&d, "ctl_list_truncated", 0);
	free(out);
	IT_STOP(&d);
}

/* The value of the JSON member "next" in out, or "" (none). */
static void json_next(const char *out, char *next, size_t len)
{
	const char *p = strstr(out, "\"next\":\"");
	size_t n = 0;

	next[0] = '\0';
	if (!p)
		return;
	for (p += 8; *p && *p != '"' && n + 1 < len; p++)
		next[n++] = *p;
	next[n] = '\0';
}

/* The hids of an exports table (text), in order: each row's first cell. */
static size_t table_hids(char *out, char (*hids)[33], size_t max)
{
	char *line, *save = NULL;
	size_t n = 0;

	line = strtok_r(out, "\n", &save); /* the header */
	for (line = strtok_r(NULL, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		memcpy(hids[n], line, 32);
		hids[n++][32] = '\0';
	}
	return n;
}

/*
 * Listings page through any number of rows (PROTOCOL.md §3 Control, paging): 3200 exports are
 * three pages for hyperbufctl, each row once, in the order of the hids; --limit/--after walk
 * them in steps of 1000 and meet the same rows; a bad --after is refused before anything is
 * asked; the raw protocol pages domains one at a time, in the order of their ids, and refuses
 * a key of the wrong length.
 */
TEST(ctl_paging_crosses_pages)
{
	enum { N = 3200, STEP = 1000 };
	static char all[N][33], part[N][33];
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_id id;
	struct it_raw r;
	size_t outlen = 1 << 20, n, got = 0, i;
	char *out, args[128], next[64];
	int pages = 0;

	hbt_daemon_start(&d, "[limits]\nexports_per_domain = 4000\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (i = 0; i < N; i++) {
		struct hb_buffer *b = IT_ALLOC(v1, 2, 64, 0);

		IT_EXPORT(b, NULL, 0, &id);
	}
	out = malloc(outlen);
	CHECK(out != NULL);

	CHECK_EQ(hbt_ctl(&d, out, outlen, "exports"), 0);
	n = table_hids(out, all, N);
	CHECK_EQ(n, N);
	for (i = 1; i < n; i++)
		if (strcmp(all[i - 1], all[i]) >= 0)
			hbt_fail(__FILE__, __LINE__, "row %zu (%s) not after row %zu (%s)", i,
				 all[i], i - 1, all[i - 1]);

	/* By hand: --limit rows at a time, from the key the last page gave. */
	snprintf(args, sizeof(args), "--json --limit %d exports", STEP);
	for (;;) {
		CHECK_EQ(hbt_ctl(&d, out, outlen, args), 0);
		CHECK(it_json_ok(out));
		json_next(out, next, sizeof(next));
		pages++;
		n = hbt_count_substr(out, "\"hid\":");
		CHECK(n <= STEP);
		CHECK_EQ(hbt_ctl(&d, out, outlen, strchr(args, '-') + 7),
			 0); /* the same, in text */
		CHECK_EQ(table_hids(out, part + got, N - got), n);
		got += n;
		if (!next[0])
			break;
		CHECK_EQ(strlen(next), 32);
		CHECK(strcmp(next, part[got - 1]) == 0); /* the key is the last row's hid */
		snprintf(args, sizeof(args), "--json --limit %d --after %s exports", STEP, next);
	}
	CHECK_EQ(pages, (N + STEP - 1) / STEP);
	CHECK_EQ(got, N);
	for (i = 0; i < N; i++)
		CHECK(strcmp(all[i], part[i]) == 0);

	CHECK(hbt_ctl(&d, out, outlen, "--after xyz exports") != 0);
	CHECK(hbt_ctl(&d, out, outlen, "--limit 0 exports") != 0);
	CHECK(hbt_ctl(&d, out, outlen, "--limit 5 stats") != 0);

	/* The protocol itself: domains one per page (host, vm1, vm2: ids 0, 1, 2). */
	hbt_raw_session(&r, d.socket, HBP_ROLE_CONTROL);
	{
		ProtobufCBinaryData after = {0};
		uint8_t key[4];
		uint32_t want = 0, reqid = 10, last = 0;

		for (;;) {
			ClientMsg m = CLIENT_MSG__INIT;
			Control ctl = CONTROL__INIT;
			ServerMsg *s;
			int why = 1;

			ctl.what = HBP_CTL_DOMAINS;
			ctl.limit = 1;
			ctl.after = after;
			IT_MSG(m, CONTROL, control, &ctl);
			m.id = reqid++;
			CHECK_EQ(it_raw_send(&r, &m), 0);
			s = it_raw_recv(&r, IT_WAIT_MS, &why);
			CHECK(s != NULL);
			CHECK_EQ(s->error, 0);
			CHECK(s->control->n_limits > 0);
			CHECK_EQ(s->control->n_exports, 0); /* only the listing asked for */
			CHECK_EQ(s->control->n_domains, 1);
			/* In the order of their ids, each once. */
			if (want)
				CHECK(s->control->domains[0]->id > last);
			last = s->control->domains[0]->id;
			want++;
			if (!s->control->next.len) {
				server_msg__free_unpacked(s, NULL);
				break;
			}
			CHECK_EQ(s->control->next.len, 4);
			memcpy(key, s->control->next.data, 4);
			after = (ProtobufCBinaryData){.len = 4, .data = key};
			server_msg__free_unpacked(s, NULL);
		}
		CHECK(want >= 3); /* the host and the VMs of the standard topology */
	}
	{
		ClientMsg m = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;
		uint8_t key[3] = {0};
		ServerMsg *s;
		int why = 1;

		ctl.what = HBP_CTL_DOMAINS;
		ctl.limit = 10;
		ctl.after = (ProtobufCBinaryData){.len = 3, .data = key};
		IT_MSG(m, CONTROL, control, &ctl);
		m.id = 99;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		s = it_raw_recv(&r, IT_WAIT_MS, &why);
		CHECK(s != NULL);
		CHECK_EQ(s->error, EINVAL);
		server_msg__free_unpacked(s, NULL);
	}
	it_raw_close(&r);
	free(out);
	it_drain(v1);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/*
 * The limits in force are in hyperbufctl status (text and JSON); a VM's channel socket given
 * to hyperbufctl says it is one instead of a bare EPERM.
 */
TEST(ctl_status_limits_and_vm_socket)
{
	struct hbt_daemon d;
	char *out = malloc(OUT_LEN);
	char vm_sock[256];
	int code;

	CHECK(out != NULL);
	hbt_daemon_start(&d, "[limits]\nevent_queue = 512\n");
	ctl_ok(&d, out, "status");
	must_contain(out, "limits:", "status");
	CHECK_EQ(it_kv(out, "meta_max"), HB_META_MAX);
	CHECK_EQ(it_kv(out, "event_queue"), 512);
	ctl_ok(&d, out, "--json status");
	CHECK(it_json_ok(out));
	must_contain(out, "\"meta_max\":4096", "--json status");

	/* hyperbufctl -s on vm1's socket: its message names the socket as a VM's. */
	snprintf(vm_sock, sizeof(vm_sock), "%s", hbt_addr_vm(&d, 1) + 3);
	{
		char *argv[] = {(char *)hbt_prog("hyperbufctl"), "-s", vm_sock, "status", NULL};

		code = it_run(out, OUT_LEN, argv);
	}
	CHECK_EQ(code, 1);
	must_contain(out, "VM's channel socket", "hyperbufctl -s VM socket");
	free(out);
	IT_STOP(&d);
}

/*
 * hyperbufctl events streams what the daemon does, one JSON object per line, from the moment
 * it says it subscribed; hyperbufctl watch redraws counts, rates and domains.
 */
TEST(ctl_events_and_watch)
{
	struct hbt_daemon d;
	struct share s;
	char outp[300], errp[300], *out = malloc(OUT_LEN);
	pid_t pid;
	int status, i;

	CHECK(out != NULL);
	hbt_daemon_start(&d, NULL);
	snprintf(outp, sizeof(outp), "%s/events.out", d.dir);
	snprintf(errp, sizeof(errp), "%s/events.err", d.dir);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, STDOUT_FILENO);
		dup2(e, STDERR_FILENO);
		execl(hbt_prog("hyperbufctl"), "hyperbufctl", "-s", d.socket, "--json", "--count",
		      "4", "events", (char *)NULL);
		_exit(127);
	}
	/* Ready when it says so (not a timing assertion: a wait for a line, 20 s at most). */
	for (i = 0; i < 2000 && !it_file_has(errp, "subscribed"); i++)
		usleep(10000);
	CHECK(it_file_has(errp, "subscribed"));

	share_open(&s, &d); /* two sessions, an export, an import: four events */
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(it_file_has(outp, "\"what\":\"session\""));
	CHECK(it_file_has(outp, "\"what\":\"export\""));
	CHECK(it_file_has(outp, "\"what\":\"import\""));
	CHECK(it_file_has(outp, s.hid));
	CHECK(it_file_has(outp, "\"seq\":\"4\""));
	CHECK(it_file_has(outp, "\"size\":10000"));

	/* watch: two screens, not a terminal, so no escape sequences. */
	ctl_ok(&d, out, "watch --count 2 --interval 100");
	CHECK_EQ(hbt_count_substr(out, "messages_in"), 2);
	must_contain(out, "exports_total", "watch");
	must_contain(out, "vm2", "watch");
	CHECK(strchr(out, '\033') == NULL);
	share_close(&s);
	free(out);
	IT_STOP(&d);
}

/* The metrics endpoint: off by default; on a socket and in a file when configured, in
 * Prometheus's text format, with the counters, the pools as labels and the limits. */
TEST(metrics_socket_and_file)
{
	struct hbt_daemon d;
	struct share s;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[300], file[300], cfg[4096];
	static char text[256 * 1024];
	size_t len = 0;
	ssize_t n;
	int fd, i;

	/* Off by default: the standard daemon has no metrics socket beside its others. */
	hbt_daemon_start(&d, NULL);
	CHECK(access(hbt_path(&d, "metrics.sock"), F_OK) < 0);
	IT_STOP(&d);

	/* The standard topology, its [daemon] section with the metrics keys. */
	{
		const char *topo = IT_TOPOLOGY, *cut = strstr(topo, "log = debug\n");

		CHECK(cut != NULL);
		cut += strlen("log = debug\n");
		snprintf(cfg, sizeof(cfg),
			 "%.*smetrics_socket = metrics.sock\nmetrics_file = metrics.prom\n"
			 "metrics_interval_ms = 1000\n%s",
			 (int)(cut - topo), topo, cut);
	}
	hbt_daemon_start_config(&d, cfg);
	share_open(&s, &d);
	snprintf(path, sizeof(path), "%s/metrics.sock", d.dir);
	snprintf(file, sizeof(file), "%s/metrics.prom", d.dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	while ((n = read(fd, text + len, sizeof(text) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	text[len] = '\0';
	must_contain(text, "# TYPE hyperbuf_exports gauge\nhyperbuf_exports 1\n", "metrics");
	must_contain(text, "# TYPE hyperbuf_exports_total counter\n", "metrics");
	must_contain(text, "hyperbuf_pool_pages_used{pool=\"a\"} ", "metrics");
	must_contain(text, "hyperbuf_limit{name=\"meta_max\"} 4096\n", "metrics");
	must_contain(text, "hyperbuf_info{version=\"" HB_VERSION_STRING "\",backend=\"kvm\"} 1",
		     "metrics");
	/* Each metric's lines together, one TYPE each. */
	CHECK_EQ(hbt_count_substr(text, "# TYPE hyperbuf_pool_pages_used "), 1);

	/* The file: written at start, then every interval (a wait for it, 20 s at most). */
	for (i = 0; i < 2000 && !it_file_has(file, "hyperbuf_exports 1"); i++)
		usleep(10000);
	CHECK(it_file_has(file, "hyperbuf_exports 1\n"));
	share_close(&s);
	IT_STOP(&d);
}

/*
 * hyperbufd's command line and configuration (DAEMON.md "Running", "Config"): -v, -n on good
 * and bad configs, and SIGHUP reloads that apply a valid config and refuse an invalid one.
 */
#include "tests/it_common.h"

/* A private folder for configs that no daemon runs on. */
struct scratch {
	char dir[64];
	char file[128];
};

static void scratch_open(struct scratch *s)
{
	snprintf(s->dir, sizeof(s->dir), "/tmp/hbit.XXXXXX");
	CHECK(mkdtemp(s->dir) != NULL);
	snprintf(s->file, sizeof(s->file), "%s/hyperbufd.conf", s->dir);
}

static void scratch_close(struct scratch *s)
{
	unlink(s->file);
	CHECK(rmdir(s->dir) == 0); /* -n left nothing behind: no socket, no pool */
}

static int check_config(struct scratch *s, const char *text, char *out, size_t outlen)
{
	char *argv[] = {(char *)hbt_prog("hyperbufd"), "-n", "-c", s->file, NULL};

	it_write_file(s->file, text);
	return it_run(out, outlen, argv);
}

TEST(daemon_version)
{
	char out[1024];
	char *argv[] = {(char *)hbt_prog("hyperbufd"), "-v", NULL};

	CHECK_EQ(it_run(out, sizeof(out), argv), 0);
	if (!strstr(out, HB_VERSION_STRING))
		hbt_fail(__FILE__, __LINE__, "hyperbufd -v printed \"%s\", want %s in it", out,
			 HB_VERSION_STRING);
}

/* -V/--version and -h/--help as hyperbufctl has them; a usage mistake says what it was. */
TEST(daemon_help_and_version)
{
	static const char *const version[] = {"-V", "--version"};
	static const char *const help[] = {"-h", "--help"};
	char out[4096];
	char *argv[] = {(char *)hbt_prog("hyperbufd"), NULL, NULL};
	size_t i;

	for (i = 0; i < 2; i++) {
		argv[1] = (char *)version[i];
		CHECK_EQ(it_run(out, sizeof(out), argv), 0);
		CHECK(strstr(out, "hyperbufd " HB_VERSION_STRING " (protocol ") == out);
		argv[1] = (char *)help[i];
		CHECK_EQ(it_run(out, sizeof(out), argv), 0);
		CHECK(strstr(out, "usage: hyperbufd") != NULL);
		CHECK(strstr(out, "--version") != NULL);
	}
	argv[1] = "--bogus";
	CHECK_EQ(it_run(out, sizeof(out), argv), 2);
	CHECK(strstr(out, "hyperbufd: unknown option --bogus") != NULL);
	argv[1] = "-c";
	CHECK_EQ(it_run(out, sizeof(out), argv), 2);
	CHECK(strstr(out, "needs an argument: -c") != NULL);
	/* hyperbufctl's -V says the same version. */
	{
		char ctl[512];
		char *cargv[] = {(char *)hbt_prog("hyperbufctl"), "-V", NULL};

		argv[1] = "-V";
		CHECK_EQ(it_run(out, sizeof(out), argv), 0);
		CHECK_EQ(it_run(ctl, sizeof(ctl), cargv), 0);
		CHECK(strcmp(strchr(out, ' '), strchr(ctl, ' ')) == 0);
	}
}

TEST(config_check_valid)
{
	struct scratch s;
	char out[4096];
	int code;

	scratch_open(&s);
	code = check_config(&s, IT_TOPOLOGY, out, sizeof(out));
	if (code != 0)
		hbt_fail(__FILE__, __LINE__, "hyperbufd -n: exit %d:\n%s", code, out);
	code =
	    check_config(&s,
			 IT_TOPOLOGY "[limits]\nexports_per_domain = 10\npages_per_domain = 100\n"
				     "event_queue = 16\nmeta_max = 4096\n",
			 out, sizeof(out));
	if (code != 0)
		hbt_fail(__FILE__, __LINE__, "hyperbufd -n (limits): exit %d:\n%s", code, out);
	scratch_close(&s);
}

TEST(config_check_invalid)
{
	static const char *const bad[] = {
	    "[limits]\nevent_queue = 15\n",
	    "[limits]\nmeta_max = 1023\n",
	    "[limits]\nmeta_max = 4097\n",
	    "[limits]\nexports_per_domain = lots\n",
	    "[limits]\npages_per_domain = -5\n",
	    "[daemon]\nbackend = vmware\n",
	    "[daemon]\nlog = loud\n",
	    "[vm vm4]\nid = 1\nchannel = vm4.sock\n",                       /* duplicate id */
	    "[vm vm5]\nid = 0\nchannel = vm5.sock\n",                       /* 0 is the host */
	    "[group d]\nmembers = vm1, vm9\nsize = 1M\nivshmem = d.sock\n", /* unknown member */
	    "[group e]\nmembers = vm1, vm2\nsize = 3M\nivshmem = e.sock\n", /* not a power of 2 */
	    "this is not ini at all\n",
	};
	struct scratch s;
	char text[4096], out[4096];
	size_t i;
	int code;

	scratch_open(&s);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", IT_TOPOLOGY, bad[i]);
		code = check_config(&s, text, out, sizeof(out));
		if (code == 0)
			hbt_fail(__FILE__, __LINE__, "hyperbufd -n accepted:\n%s", bad[i]);
		if (code >= 128)
			hbt_fail(__FILE__, __LINE__, "hyperbufd -n crashed (%d) on:\n%s", code,
				 bad[i]);
		if (strlen(out) == 0)
			hbt_fail(__FILE__, __LINE__, "hyperbufd -n said nothing about:\n%s",
				 bad[i]);
	}
	scratch_close(&s);
}

TEST(config_missing_file)
{
	char out[4096];
	char *argv[] = {(char *)hbt_prog("hyperbufd"), "-n", "-c", "/nonexistent-hyperbuf/x.conf",
			NULL};
	char *argv_run[] = {(char *)hbt_prog("hyperbufd"), "-c", "/nonexistent-hyperbuf/x.conf",
			    NULL};
	int code;

	code = it_run(out, sizeof(out), argv);
	CHECK(code != 0 && code < 128);
	CHECK(strlen(out) > 0);
	code = it_run(out, sizeof(out), argv_run);
	CHECK(code != 0 && code < 128);
	CHECK(strlen(out) > 0);
}

static bool daemon_alive(const struct hbt_daemon *d)
{
	int status;

	return waitpid(d->pid, &status, WNOHANG) == 0;
}

TEST(sighup_reload)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b[5];
	struct hb_id id[5];
	uint64_t end;
	int i;

	hbt_daemon_start_config(&d, IT_TOPOLOGY "[limits]\nexports_per_domain = 2\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (i = 0; i < 5; i++)
		b[i] = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b[0], NULL, 0, &id[0]);
	IT_EXPORT(b[1], NULL, 0, &id[1]);
	CHECK_ERR(hb_export(b[2], NULL, 0, 0, &id[2]), EDQUOT);

	/* An invalid config (event_queue below 16) that would also raise the limit: refused as a
	 * whole. The daemon keeps running on the old one. */
	it_write_file(d.config, IT_TOPOLOGY "[limits]\nexports_per_domain = 4\nevent_queue = 3\n");
	CHECK(kill(d.pid, SIGHUP) == 0);
	it_sleep_ms(1000);
	CHECK(daemon_alive(&d));
	CHECK_ERR(hb_export(b[2], NULL, 0, 0, &id[2]), EDQUOT);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2)); /* still serving */
	hb_disconnect(v2);

	/* A valid one: applied. */
	it_write_file(d.config, IT_TOPOLOGY "[limits]\nexports_per_domain = 4\n");
	CHECK(kill(d.pid, SIGHUP) == 0);
	end = hbt_now_ms() + IT_WAIT_MS;
	while (hb_export(b[2], NULL, 0, 0, &id[2]) != 0) {
		CHECK_EQ(errno, EDQUOT);
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, __LINE__,
				 "exports_per_domain = 4 not applied after SIGHUP");
		it_sleep_ms(50);
	}
	IT_EXPORT(b[3], NULL, 0, &id[3]);
	CHECK_ERR(hb_export(b[4], NULL, 0, 0, &id[4]), EDQUOT);
	CHECK(daemon_alive(&d));
	/* The exports made under the old limits are untouched. */
	{
		struct hb_info info;

		IT_QUERY(v1, &id[0], &info);
		CHECK_EQ(info.flags, 0);
	}
	for (i = 0; i < 5; i++)
		hb_buffer_free(b[i]);
	hb_disconnect(v1);
	IT_STOP(&d);
}

static unsigned mode_of(const char *dir, const char *sub)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (stat(path, &st) < 0)
		hbt_fail(__FILE__, __LINE__, "stat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

/* The folders the daemon makes for its sockets get socket_dir_mode (0755 by default) whatever
 * its umask (077), so QEMU and local clients reach the sockets without a chmod by hand; the
 * control socket gets control_mode. */
TEST(socket_folders_and_modes)
{
	struct hbt_daemon d;

	hbt_daemon_start_config(&d, "[daemon]\nsocket = %s/host.sock\n"
				    "control = %s/ctl/sub/control.sock\ncontrol_mode = 0640\n");
	CHECK_EQ(mode_of(d.dir, "ctl"), 0755);
	CHECK_EQ(mode_of(d.dir, "ctl/sub"), 0755);
	CHECK_EQ(mode_of(d.dir, "ctl/sub/control.sock") & 0777, 0640);
	IT_STOP(&d);

	hbt_daemon_start_config(&d, "[daemon]\nsocket = %s/host.sock\n"
				    "control = %s/ctl/sub/control.sock\nsocket_dir_mode = 0750\n");
	CHECK_EQ(mode_of(d.dir, "ctl"), 0750);
	CHECK_EQ(mode_of(d.dir, "ctl/sub"), 0750);
	CHECK_EQ(mode_of(d.dir, "ctl/sub/control.sock") & 0777, 0600);
	IT_STOP(&d);
}

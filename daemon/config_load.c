/*
 * Loading a config (daemon/config.h): read the file whole, start from the defaults, parse it
 * (config_parse.c), check it whole (config_check.c), and hand back the config or its first
 * error as "FILE:LINE: what". Nothing here touches the running daemon. The format is
 * documented in docs/hyperbuf.conf.5.
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/config_parse.h"
#include "protocol/limits.h"

#ifndef HB_SYSCONFDIR
#define HB_SYSCONFDIR "/etc"
#endif

/* The defaults of the top-level keys; a [vm] or [group] gets its own as it begins
 * (config_parse.c). */
#define DEFAULT_SOCKET              "/run/hyperbuf/hyperbufd.sock"
#define DEFAULT_EXPORTS_PER_DOMAIN  4096u
#define DEFAULT_PAGES_PER_DOMAIN    1048576u
#define DEFAULT_EVENT_QUEUE         256u
#define DEFAULT_META_MAX            HBP_META_LIMIT /* == HB_META_MAX: all a client can send */
#define DEFAULT_TIMELINES           1024u
#define DEFAULT_FENCE_WAITS         65536u
#define DEFAULT_IMPORTS_PER_DOMAIN  65536u
#define DEFAULT_SESSIONS_PER_DOMAIN 64u
#define DEFAULT_SESSIONS_PER_UID    64u
#define DEFAULT_PENDING_PER_UID     8u
#define DEFAULT_HELLO_TIMEOUT_MS    2000u
#define DEFAULT_RESUME_TIMEOUT_MS   10000u
#define DEFAULT_SOCKET_MODE         0660u
#define DEFAULT_CONTROL_MODE        0600u /* 0660 with control_group */
#define DEFAULT_SOCKET_DIR_MODE     0755u
#define DEFAULT_METRICS_INTERVAL_MS 10000u
/* A config is a few KiB; a file far larger than this is a mistake, not a config. */
#define CONFIG_FILE_MAX (1u << 20)

const char hbd_config_default_text[] =
    "; hyperbufd's built-in configuration, used when no -c is given and\n"
    "; " HB_SYSCONFDIR "/hyperbuf/hyperbufd.conf does not exist: host clients only, no VMs,\n"
    "; the backend chosen at start (xen in a Xen dom0, else kvm).\n"
    "[daemon]\n"
    "socket = " DEFAULT_SOCKET "\n";

static void set_err(char *err, size_t errlen, const char *name, unsigned line, const char *msg)
{
	if (!err || errlen == 0)
		return;
	if (line)
		snprintf(err, errlen, "%s:%u: %s", name, line, msg);
	else
		snprintf(err, errlen, "%s: %s", name, msg);
}

/* What a config is before its first key. */
static void set_defaults(struct hbc_config *c)
{
	strcpy(c->socket, DEFAULT_SOCKET);
	c->log_level = HBC_LOG_INFO;
	c->exports_per_domain = DEFAULT_EXPORTS_PER_DOMAIN;
	c->pages_per_domain = DEFAULT_PAGES_PER_DOMAIN;
	c->event_queue = DEFAULT_EVENT_QUEUE;
	c->meta_max = DEFAULT_META_MAX;
	c->timelines_per_domain = DEFAULT_TIMELINES;
	c->fence_waits_per_domain = DEFAULT_FENCE_WAITS;
	c->imports_per_domain = DEFAULT_IMPORTS_PER_DOMAIN;
	c->sessions_per_domain = DEFAULT_SESSIONS_PER_DOMAIN;
	c->sessions_per_uid = DEFAULT_SESSIONS_PER_UID;
	c->pending_per_uid = DEFAULT_PENDING_PER_UID;
	c->hello_timeout_ms = DEFAULT_HELLO_TIMEOUT_MS;
	c->resume_timeout_ms = DEFAULT_RESUME_TIMEOUT_MS;
	c->socket_uid = c->socket_gid = c->control_gid = HBC_ID_UNSET;
	c->socket_mode = DEFAULT_SOCKET_MODE;
	c->control_mode = UINT_MAX; /* decided in hbd_config_check(): it depends on control_group */
	c->socket_dir_mode = DEFAULT_SOCKET_DIR_MODE;
	c->metrics_interval_ms = DEFAULT_METRICS_INTERVAL_MS;
}

/* The folder relative paths start from: absolute, canonical when it exists, no trailing '/'. */
static char *make_base(const char *dir)
{
	char *cwd = NULL, *abs, *real;
	size_t len;

	if (!dir || dir[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return NULL;
	}
	if (!dir) {
		abs = cwd;
		cwd = NULL;
	} else if (dir[0] != '/') {
		abs = hbd_config_join_path(cwd, dir);
	} else {
		abs = strdup(dir);
	}
	free(cwd);
	if (!abs)
		return NULL;
	/* A folder that does not exist (yet) is still a fine base: the paths are only names until
	 * the daemon binds them. */
	real = realpath(abs, NULL);
	if (real) {
		free(abs);
		abs = real;
	}
	len = strlen(abs);
	while (len > 1 && abs[len - 1] == '/')
		abs[--len] = '\0';
	return abs;
}

static void free_parse(struct hbd_config_parse *p)
{
	unsigned i;

	if (!p)
		return;
	for (i = 0; i < HBC_CONFIG_MAX_GROUPS; i++)
		free(p->groups[i].members);
	free(p->base);
	free(p);
}

static struct hbc_config *load(const char *text, size_t len, const char *name, const char *dir,
			       char *err, size_t errlen)
{
	struct hbc_config *c;
	struct hbd_config_parse *p;
	int e;

	c = calloc(1, sizeof(*c));
	p = calloc(1, sizeof(*p));
	if (!c || !p)
		goto err_nomem;
	p->base = make_base(dir);
	if (!p->base) {
		e = errno;
		set_err(err, errlen, name, 0, "cannot find the folder for relative paths");
		errno = e ? e : ENOMEM;
		goto err_free;
	}
	set_defaults(c);
	p->c = c;
	p->name = name;

	hbd_config_read(p, text, len);
	if (!p->failed && !p->oom)
		hbd_config_check(p);
	if (p->oom)
		goto err_nomem;
	if (p->failed) {
		set_err(err, errlen, name, p->err_line, p->err);
		errno = EINVAL;
		goto err_free;
	}
	free_parse(p);
	return c;

err_nomem:
	set_err(err, errlen, name, 0, "out of memory");
	errno = ENOMEM;
err_free:
	free_parse(p);
	free(c);
	return NULL;
}

struct hbc_config *hbd_config_load_string(const char *text, const char *base_dir, char *err,
					  size_t errlen)
{
	if (!text) {
		set_err(err, errlen, "<string>", 0, "no config text");
		errno = EINVAL;
		return NULL;
	}
	return load(text, strlen(text), "<string>", base_dir, err, errlen);
}

struct hbc_config *hbd_config_load_file(const char *path, char *err, size_t errlen)
{
	struct hbc_config *c = NULL;
	char *text = NULL, *copy = NULL, msg[160];
	struct stat st;
	size_t len = 0;
	FILE *f;
	int e;

	f = fopen(path, "re");
	if (!f) {
		e = errno;
		snprintf(msg, sizeof(msg), "cannot open: %s", strerror(e));
		set_err(err, errlen, path, 0, msg);
		errno = e;
		return NULL;
	}
	if (fstat(fileno(f), &st) < 0) {
		e = errno;
		snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(e));
		set_err(err, errlen, path, 0, msg);
		errno = e;
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, path, 0, "not a regular file");
		errno = EINVAL;
		goto err_close;
	}
	if ((uint64_t)st.st_size > CONFIG_FILE_MAX) {
		set_err(err, errlen, path, 0, "too large for a config file (over 1 MiB)");
		errno = EFBIG;
		goto err_close;
	}
	/* One byte more than the size, so growth between fstat and fread shows as too large. */
	text = malloc((size_t)st.st_size + 2);
	if (!text) {
		set_err(err, errlen, path, 0, "out of memory");
		errno = ENOMEM;
		goto err_close;
	}
	len = fread(text, 1, (size_t)st.st_size + 1, f);
	if (ferror(f) || len > (size_t)st.st_size) {
		set_err(err, errlen, path, 0, ferror(f) ? "read error" : "changed while read");
		errno = EIO;
		goto err_free;
	}
	text[len] = '\0';

	copy = strdup(path);
	if (!copy) {
		set_err(err, errlen, path, 0, "out of memory");
		errno = ENOMEM;
		goto err_free;
	}
	c = load(text, len, path, dirname(copy), err, errlen);
	free(copy);
err_free:
	free(text);
err_close:
	e = errno;
	fclose(f);
	errno = e;
	return c;
}

/*
 * The daemon's counters for a monitoring system, in Prometheus's text format (version 0.0.4):
 * every key of `hyperbufctl stats` as hyperbuf_KEY (a counter when it ends in _total, else a
 * gauge; "pool.a.pages_used" becomes hyperbuf_pool_pages_used{pool="a"}), every limit in force
 * as hyperbuf_limit{name="..."}, and hyperbuf_info{version, backend}. Off unless the config
 * says where: metrics_socket (each connection gets the text and is closed: a node exporter's
 * textfile collector or `socat` can scrape it) and metrics_file (rewritten whole, by rename,
 * every metrics_interval_ms). Neither may slow the daemon: a reader gets what fits in the
 * socket's buffer at once and is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sock.h"
#include "daemon/hyperbufd.h"

#define METRICS_MAX 512 /* series; the daemon has about 60 counters and 13 limits */

struct hbd_metrics {
	struct hbd *d;
	int fd; /* metrics_socket's, or -1 */
	ev_io accept_io;
	ev_timer file_timer;
};

struct series {
	char name[96];
	char label[80]; /* `key="value"`, or "" */
	uint64_t value;
};

struct collect {
	struct series *v;
	size_t n;
};

/* A Prometheus name: [a-zA-Z0-9_], from a counter's key. */
static void metric_name(char *out, size_t len, const char *prefix, const char *key)
{
	size_t n = (size_t)snprintf(out, len, "%s%s", prefix, key);

	for (size_t i = 0; i < n && i < len; i++)
		if (!((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= 'A' && out[i] <= 'Z') ||
		      (out[i] >= '0' && out[i] <= '9') || out[i] == '_'))
			out[i] = '_';
}

static void put_stat(void *ctx, const char *key, uint64_t value)
{
	struct collect *c = ctx;
	struct series *s;
	const char *dot = strchr(key, '.'), *dot2 = dot ? strchr(dot + 1, '.') : NULL;
	char kind[32], rest[64];

	if (c->n >= METRICS_MAX)
		return;
	s = &c->v[c->n++];
	s->value = value;
	s->label[0] = '\0';
	/* "pool.a.pages_used": the kind and the metric, the instance a label. Names are the
	 * config's: [A-Za-z0-9_-], nothing a label would have to escape. */
	if (dot && dot2 && (size_t)(dot - key) < sizeof(kind)) {
		snprintf(kind, sizeof(kind), "%.*s", (int)(dot - key), key);
		snprintf(rest, sizeof(rest), "%s_%s", kind, dot2 + 1);
		metric_name(s->name, sizeof(s->name), "hyperbuf_", rest);
		snprintf(s->label, sizeof(s->label), "%s=\"%.*s\"", kind, (int)(dot2 - dot - 1),
			 dot + 1);
		return;
	}
	metric_name(s->name, sizeof(s->name), "hyperbuf_", key);
}

static void put_limit(void *ctx, const char *key, uint64_t value)
{
	struct collect *c = ctx;
	struct series *s;

	if (c->n >= METRICS_MAX)
		return;
	s = &c->v[c->n++];
	snprintf(s->name, sizeof(s->name), "hyperbuf_limit");
	snprintf(s->label, sizeof(s->label), "name=\"%s\"", key);
	s->value = value;
}

/* Series of one name together, as the format wants them, in the daemon's order otherwise. */
static int by_name(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : (x < y ? -1 : x > y);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && strcmp(s + n - m, tail) == 0;
}

char *hbd_metrics_text(struct hbd *d, size_t *len)
{
	struct collect c = {.v = calloc(METRICS_MAX, sizeof(struct series))};
	char *text = NULL;
	FILE *f;

	if (!c.v)
		return NULL;
	hbd_stats_walk(d, put_stat, &c);
	hbd_limits_walk(d, put_limit, &c);
	qsort(c.v, c.n, sizeof(*c.v), by_name);
	f = open_memstream(&text, len);
	if (!f)
		goto out;
	fprintf(f, "# TYPE hyperbuf_info gauge\nhyperbuf_info{version=\"%s\",backend=\"%s\"} 1\n",
		HB_VERSION_STRING, d->backend->name);
	for (size_t i = 0; i < c.n; i++) {
		const struct series *s = &c.v[i];

		if (i == 0 || strcmp(s->name, c.v[i - 1].name) != 0)
			fprintf(f, "# TYPE %s %s\n", s->name,
				ends_with(s->name, "_total") ? "counter" : "gauge");
		fprintf(f, "%s%s%s%s %llu\n", s->name, s->label[0] ? "{" : "", s->label,
			s->label[0] ? "}" : "", (unsigned long long)s->value);
	}
	if (fclose(f) != 0) {
		free(text);
		text = NULL;
	}
out:
	free(c.v);
	return text;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbd_metrics *m = w->data;
	size_t len;
	char *text;
	int fd;

	/* Whoever the socket's mode lets in: what they get is counts, nothing else. */
	while ((fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		text = hbd_metrics_text(m->d, &len);
		if (text)
			(void)!send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
		close(fd);
	}
}

/* The whole file or nothing: a reader never sees half of it. */
static void write_file(struct hbd_metrics *m)
{
	const char *path = m->d->cfg->metrics_file;
	char tmp[HBC_CONFIG_PATH_MAX + 8];
	size_t len;
	char *text = hbd_metrics_text(m->d, &len);
	int fd;

	if (!text)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		static struct hbc_ratelimit rl;

		log_warn_limited(&rl, "%s: cannot write the metrics: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
	}
	free(text);
}

static void on_file_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	write_file(w->data);
}

int hbd_metrics_start(struct hbd *d)
{
	const struct hbc_config *cfg = d->cfg;
	struct hbd_metrics *m;
	/* The control socket's audience: root, and control_group. */
	struct hbc_sock_owner owner = {
	    .uid = (uid_t)-1,
	    .gid = cfg->control_gid != HBC_ID_UNSET ? (gid_t)cfg->control_gid : (gid_t)-1,
	    .mode = cfg->control_mode,
	};

	if (!cfg->metrics_socket[0] && !cfg->metrics_file[0])
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->d = d;
	m->fd = -1;
	if (cfg->metrics_socket[0]) {
		m->fd = hbc_unix_listen(cfg->metrics_socket, 16, &owner);
		if (m->fd < 0) {
			int err = m->fd;

			free(m);
			return err;
		}
		ev_io_init(&m->accept_io, on_accept, m->fd, EV_READ);
		m->accept_io.data = m;
		ev_io_start(d->loop, &m->accept_io);
	}
	if (cfg->metrics_file[0]) {
		double every = cfg->metrics_interval_ms / 1000.0;

		ev_timer_init(&m->file_timer, on_file_timer, 0, every);
		m->file_timer.data = m;
		ev_timer_start(d->loop, &m->file_timer);
	}
	d->metrics = m;
	return 0;
}

void hbd_metrics_stop(struct hbd *d)
{
	struct hbd_metrics *m = d->metrics;

	if (!m)
		return;
	if (m->fd >= 0) {
		ev_io_stop(d->loop, &m->accept_io);
		close(m->fd);
		unlink(d->cfg->metrics_socket);
	}
	if (d->cfg->metrics_file[0]) {
		ev_timer_stop(d->loop, &m->file_timer);
		write_file(m); /* the last figures */
	}
	free(m);
	d->metrics = NULL;
}

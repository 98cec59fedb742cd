/* hyperbufd in the fuzzer's process (see daemon_rig.h). */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "common/config.h"
#include "common/log.h"
#include "common/sock.h"
#include "daemon/config.h"
#include "protocol/resync.h"
#include "tests/fuzz/daemon_rig.h"

/* The topology of formats.h, with small limits so that inputs reach the quotas. "%s" is the
 * rig's folder. */
static const char rig_config[] =
    "[daemon]\nbackend = kvm\nsocket = %s/host.sock\nlog = error\n"
    "[limits]\nexports_per_domain = 4\npages_per_domain = 300\nevent_queue = 16\n"
    "timelines_per_domain = 4\nfence_waits_per_domain = 8\nimports_per_domain = 4\n"
    "[vm vm1]\nid = 1\nchannel = %s/vm1.sock\n"
    "[vm vm2]\nid = 2\nchannel = %s/vm2.sock\n"
    "[vm vm3]\nid = 3\nchannel = %s/vm3.sock\n"
    "[group a]\nmembers = host, vm1\nsize = 1M\nivshmem = %s/a.sock\n"
    "[group b]\nmembers = vm1, vm2\nsize = 2M\nivshmem = %s/b-{vm}.sock\n"
    "[group c]\nmembers = host, vm2, vm3\nsize = 1M\nivshmem = %s/c.sock\nvectors = 2\n";

static const uint32_t conn_domain[HBT_N_CONNS] = {
    [HBT_CONN_HOST_A] = 0, [HBT_CONN_HOST_B] = 0, [HBT_CONN_VM1_A] = 1,     [HBT_CONN_VM1_B] = 1,
    [HBT_CONN_VM2] = 2,    [HBT_CONN_VM3] = 3,    [HBT_CONN_HOST_SOCK] = 0, [HBT_CONN_VM2_SOCK] = 2,
};
static const char *const peer_socket[HBT_N_PEERS] = {
    [HBT_PEER_A] = "a.sock",
    [HBT_PEER_B_VM1] = "b-vm1.sock",
    [HBT_PEER_B_VM2] = "b-vm2.sock",
    [HBT_PEER_C] = "c.sock",
};

static struct hbt_rig rig;
static bool deterministic;
static bool verbose; /* HB_FUZZ_VERBOSE: print what the daemon answers (for writing seeds) */

/* The rig's folder and its sockets go, whatever state the daemon is in: when a sanitizer or an
 * oracle stops the process, nothing else removes them. */
static void remove_folder(void)
{
	char path[sizeof(rig.dir) + 256 + 2];
	struct dirent *e;
	DIR *dir = opendir(rig.dir);

	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", rig.dir, e->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(rig.dir);
}

static void __attribute__((noreturn, format(printf, 1, 2))) dirty(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_daemon: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	remove_folder();
	abort();
}

/*
 * The daemon's randomness (hids, timeline epochs) while an input runs: the same bytes every
 * time, so an input does the same thing on every run and its hids can be written in a seed
 * (formats.h). This definition takes the place of libc's for the whole program; outside an
 * input it is the real one.
 */
/* Timeline ids are the daemon's only 8-byte draws in an input: the n-th is
 * HBT_TIMELINE_EPOCH << 32 | n, as tests/fuzz/gen_client.c predicts them. */
static uint32_t timelines_drawn;

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	if (!deterministic)
		return syscall(SYS_getrandom, buf, len, flags);
	if (len == sizeof(uint64_t)) {
		uint64_t id = (uint64_t)HBT_TIMELINE_EPOCH << 32 | ++timelines_drawn;

		memcpy(buf, &id, sizeof(id));
		return (ssize_t)len;
	}
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = HBT_RANDOM_BYTE(i);
	return (ssize_t)len;
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

static void rig_stop(void)
{
	hbd_server_stop(&rig.d);
	ev_loop_destroy(rig.d.loop);
	hbc_config_free(rig.d.cfg);
	remove_folder();
}

struct hbt_rig *hbt_rig_start(void)
{
	const char *level = getenv("HB_FUZZ_LOG");
	char text[2048], err[512];
	const char *dir;

	verbose = getenv("HB_FUZZ_VERBOSE") != NULL;
	strcpy(rig.dir, "/tmp/hbfuzz.XXXXXX");
	if (!mkdtemp(rig.dir)) {
		perror("mkdtemp");
		exit(1);
	}
	__sanitizer_set_death_callback(remove_folder);
	dir = rig.dir;
	snprintf(text, sizeof(text), rig_config, dir, dir, dir, dir, dir, dir, dir);
	rig.d.cfg = hbd_config_load_string(text, rig.dir, err, sizeof(err));
	if (!rig.d.cfg) {
		fprintf(stderr, "fuzz_daemon: the rig's config: %s\n", err);
		exit(1);
	}
	/* Errors only: a daemon that logs every session of every input runs at a tenth of the
	 * speed. HB_FUZZ_LOG=debug shows what an input does. */
	hbc_log_set_level(level ? hbc_log_parse_level(level) : HBC_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	rig.d.start_ms = hbc_now_ms();
	rig.d.handle_request = hbd_request;
	rig.d.session_release = hbd_session_release;
	rig.d.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!rig.d.loop || hbd_server_start(&rig.d) < 0) {
		fprintf(stderr, "fuzz_daemon: the daemon did not start\n");
		exit(1);
	}
	rig.domains = (unsigned)hbc_list_length(&rig.d.domains);
	for (unsigned k = 0; k < HBT_N_CONNS; k++)
		rig.conn[k] = -1;
	for (unsigned k = 0; k < HBT_N_PEERS; k++)
		rig.peer[k] = -1;
	atexit(rig_stop);
	return &rig;
}

/* Reads everything a peer was sent; the eventfds and the pool that come with it are closed.
 * The first 16 bytes go to first (if not NULL). Returns the bytes read (1 for a hang-up). */
static size_t drain_peer(struct hbt_rig *r, unsigned k, uint8_t *first, size_t *got)
{
	uint8_t buf[512];
	int fds[8];
	unsigned nfds = 0;
	size_t total = 0;
	ssize_t n;

	while (r->peer[k] >= 0) {
		n = hbc_recv_fds(r->peer[k], buf, sizeof(buf), fds, &nfds, 8);
		hbc_close_fds(fds, &nfds);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* The daemon dropped it (a peer it could not tell about another). */
			close(r->peer[k]);
			r->peer[k] = -1;
			return total + 1;
		}
		total += (size_t)n;
		for (ssize_t i = 0; first && i < n && *got < 16; i++)
			first[(*got)++] = buf[i];
	}
	return total;
}

/* Checks the whole units (frames, and markers on a VM channel) the daemon sent on connection k:
 * every frame must be one a client accepts. */
static void check_units(struct hbt_rig *r, unsigned k)
{
	struct hbp_bytes *b = &r->got[k];
	const uint8_t *payload;
	ServerMsg *msg;
	long n;

	while (b->len) {
		if (r->channel[k] && b->data[0] == (uint8_t)HBP_RESYNC_MAGIC[0]) {
			size_t cmp = b->len < HBP_RESYNC_MAGIC_LEN ? b->len : HBP_RESYNC_MAGIC_LEN;

			if (memcmp(b->data, HBP_RESYNC_MAGIC, cmp) == 0) {
				if (b->len < HBP_RESYNC_LEN)
					return;
				hbp_bytes_consume(b, HBP_RESYNC_LEN);
				continue;
			}
		}
		n = hbp_frame_peek(b->data, b->len, HBP_FRAME_MAX, &payload);
		if (n < 0 && verbose)
			for (size_t i = 0; i < b->len && i < 64; i++)
				fprintf(stderr, "%02x%s", b->data[i], i % 16 == 15 ? "\n" : " ");
		if (n < 0)
			dirty(
			    "connection %u: the daemon framed a length a client refuses: %02x %02x "
			    "%02x %02x",
			    k, b->data[0], b->data[1], b->data[2], b->data[3]);
		if (n == 0)
			return;
		msg = hbp_frame_get_server(payload, (size_t)n);
		if (!msg)
			dirty("connection %u: the daemon sent a frame a client refuses", k);
		if (verbose)
			fprintf(stderr, "fuzz_daemon: connection %u: reply %u: error %u, body %d\n",
				k, msg->id, msg->error, msg->body_case);
		server_msg__free_unpacked(msg, NULL);
		hbp_bytes_consume(b, HBP_FRAME_HEADER + (size_t)n);
	}
}

/* Reads what the daemon sent on connection k; returns the bytes read (1 for a hang-up). */
static size_t drain_conn(struct hbt_rig *r, unsigned k)
{
	struct hbp_bytes *b = &r->got[k];
	int fds[8];
	unsigned nfds = 0;
	size_t total = 0;
	ssize_t n;

	/* Read into one buffer and keep only what came: a 64 KiB reservation per connection and
	 * input costs ASan fresh pages every time. */
	static uint8_t chunk[65536];

	while (r->conn[k] >= 0 && !r->mute[k]) {
		n = hbc_recv_fds(r->conn[k], chunk, sizeof(chunk), fds, &nfds, 8);
		/* The pool memfd of a host Attach: a client would map it. */
		hbc_close_fds(fds, &nfds);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* The daemon ended the session. */
			hbt_rig_hangup(r, k);
			return total + 1;
		}
		if (hbp_bytes_reserve(b, (size_t)n) < 0)
			dirty("out of memory");
		memcpy(b->data + b->len, chunk, (size_t)n);
		b->len += (size_t)n;
		total += (size_t)n;
		check_units(r, k);
	}
	return total;
}

/* Reads every connection and peer that has something: one poll, then only those. */
static size_t drain_ready(struct hbt_rig *r)
{
	struct pollfd pfd[HBT_N_CONNS + HBT_N_PEERS];
	unsigned who[HBT_N_CONNS + HBT_N_PEERS], n = 0;
	size_t total = 0;

	for (unsigned k = 0; k < HBT_N_CONNS; k++)
		if (r->conn[k] >= 0 && !r->mute[k]) {
			pfd[n] = (struct pollfd){.fd = r->conn[k], .events = POLLIN};
			who[n++] = k;
		}
	for (unsigned k = 0; k < HBT_N_PEERS; k++)
		if (r->peer[k] >= 0) {
			pfd[n] = (struct pollfd){.fd = r->peer[k], .events = POLLIN};
			who[n++] = HBT_N_CONNS + k;
		}
	if (poll(pfd, n, 0) <= 0)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (who[i] < HBT_N_CONNS)
			total += drain_conn(r, who[i]);
		else
			total += drain_peer(r, who[i] - HBT_N_CONNS, NULL, NULL);
	}
	return total;
}

/* The loop runs until it has nothing more to say, at most rounds times: a request is read in
 * one round and its reply written in the next, so two rounds at least, and on while replies
 * and events keep coming. */
void hbt_rig_spin(struct hbt_rig *r, unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++) {
		ev_run(r->d.loop, EVRUN_NOWAIT);
		if (!drain_ready(r) && i >= 1)
			break;
	}
}

static char *rig_path(const struct hbt_rig *r, const char *name)
{
	static char path[HBC_SUN_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	return path;
}

/* An emulated QEMU connects to a group's ivshmem socket and reads its greeting: the version,
 * its id, the pool. Peers connect one at a time so that their ids are always the same. */
static void peer_connect(struct hbt_rig *r, unsigned k)
{
	uint8_t first[16];
	size_t got = 0;
	uint64_t id = 0;

	r->peer[k] = hbc_unix_connect(rig_path(r, peer_socket[k]));
	if (r->peer[k] < 0)
		dirty("peer %u: connect: %s", k, strerror(-r->peer[k]));
	for (unsigned i = 0; i < HBT_SPIN_LONG && got < sizeof(first); i++) {
		ev_run(r->d.loop, EVRUN_NOWAIT);
		drain_peer(r, k, first, &got);
	}
	if (got < sizeof(first))
		dirty("peer %u: no greeting", k);
	for (unsigned i = 0; i < 8; i++)
		id |= (uint64_t)first[8 + i] << (8 * i);
	if (id != k + 1)
		dirty("peer %u got id %llu: an earlier input left a peer behind", k,
		      (unsigned long long)id);
}

static void conn_open(struct hbt_rig *r, unsigned k)
{
	struct hbd_domain *dom = hbd_domain_get(&r->d, conn_domain[k]);
	int sv[2];

	r->channel[k] = conn_domain[k] != 0;
	r->mute[k] = false;
	r->stuck[k] = false;
	if (k == HBT_CONN_HOST_SOCK || k == HBT_CONN_VM2_SOCK) {
		r->conn[k] = hbc_unix_connect(
		    rig_path(r, k == HBT_CONN_HOST_SOCK ? "host.sock" : "vm2.sock"));
		if (r->conn[k] < 0)
			dirty("connection %u: connect: %s", k, strerror(-r->conn[k]));
		return; /* the daemon accepts it in the loop */
	}
	if (!dom || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		dirty("connection %u: no session", k);
	{
		struct hbc_cred cred;

		if (hbc_peer_cred(sv[0], &cred) < 0 ||
		    !hbd_session_new(&r->d, sv[0], dom,
				     conn_domain[k] ? HBD_DOOR_VM : HBD_DOOR_HOST, NULL, &cred))
			dirty("connection %u: the daemon refused the session", k);
	}
	r->conn[k] = sv[1];
}

void hbt_rig_begin(struct hbt_rig *r)
{
	struct hbd *d = &r->d;

	r->fds_before = count_fds();
	/* Nothing of the last input is left (hbt_rig_end made sure), so handles, hid serials,
	 * timeline ids and session serials can start again: an input does the same every run. */
	deterministic = true;
	d->next_handle = 1;
	d->next_serial = 1;
	d->next_session = 0;
	timelines_drawn = 0;
	for (unsigned k = 0; k < HBT_N_PEERS; k++)
		peer_connect(r, k);
	for (unsigned k = 0; k < HBT_N_CONNS; k++)
		conn_open(r, k);
	hbt_rig_spin(r, 1);
}

void hbt_rig_send(struct hbt_rig *r, unsigned k, const uint8_t *data, size_t len, bool framed)
{
	uint8_t head[HBP_FRAME_HEADER] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
					  (uint8_t)(len >> 24)};
	struct iovec iov[2] = {{head, sizeof(head)}, {(void *)data, len}};
	struct msghdr mh = {.msg_iov = framed ? iov : iov + 1, .msg_iovlen = framed ? 2 : 1};
	size_t left = (framed ? sizeof(head) : 0) + len;

	/* A client that cannot write gives up after a while: the daemon stopped reading it (a
	 * session being dropped), and its later writes are dropped at once, so that an input of
	 * many small writes to it does not take seconds. */
	if (r->stuck[k])
		return;
	for (unsigned tries = 0; r->conn[k] >= 0 && left; tries++) {
		if (tries == HBT_SPIN_LONG) {
			r->stuck[k] = true;
			return;
		}
		ssize_t n = sendmsg(r->conn[k], &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return; /* the daemon hung up: drain_conn sees it */
		for (size_t done = n > 0 ? (size_t)n : 0; done;) {
			size_t step = done < mh.msg_iov->iov_len ? done : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + step;
			mh.msg_iov->iov_len -= step;
			done -= step;
			left -= step;
			if (!mh.msg_iov->iov_len && mh.msg_iovlen > 1) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
		if (left)
			hbt_rig_spin(r, 1);
	}
}

void hbt_rig_hangup(struct hbt_rig *r, unsigned k)
{
	if (r->conn[k] >= 0)
		close(r->conn[k]);
	r->conn[k] = -1;
	hbp_bytes_free(&r->got[k]);
}

void hbt_rig_peer_gone(struct hbt_rig *r, unsigned k)
{
	if (r->peer[k] >= 0)
		close(r->peer[k]);
	r->peer[k] = -1;
}

void hbt_rig_mute(struct hbt_rig *r, unsigned k)
{
	r->mute[k] = !r->mute[k];
}

struct pool_stats {
	uint64_t pages_used, peers;
};

static void put_stat(void *ctx, const char *key, uint64_t v)
{
	struct pool_stats *st = ctx;
	size_t len = strlen(key);

	if (strcmp(key, "pages_used") == 0)
		st->pages_used += v;
	else if (len > 14 && strcmp(key + len - 14, ".ivshmem_peers") == 0)
		st->peers += v;
}

/* Not instrumented: scanning the 9216 hash buckets with libFuzzer's comparison hooks took a
 * fifth of every input's time, and says nothing about the daemon. */
__attribute__((no_sanitize("coverage"))) static bool lists_empty(const struct hbc_list *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!hbc_list_empty(&l[i]))
			return false;
	return true;
}

static void check_domains(struct hbt_rig *r)
{
	struct hbd_domain *dom;
	unsigned n = 0;

	hbc_list_for_each_safe(dom, &r->d.domains, struct hbd_domain, link)
	{
		n++;
		if (dom->conns || dom->sessions || dom->links || dom->present)
			dirty("domain %u still counts %u connections, %u sessions, %u links%s",
			      dom->id, dom->conns, dom->sessions, dom->links,
			      dom->present ? ", present" : "");
		if (dom->exports || dom->imports || dom->pages || dom->timelines ||
		    dom->fence_waits)
			dirty("domain %u still counts %u exports, %u imports, %llu pages, %u "
			      "timelines, %u waits",
			      dom->id, dom->exports, dom->imports, (unsigned long long)dom->pages,
			      dom->timelines, dom->fence_waits);
	}
	if (n != r->domains)
		dirty("%u domains, %u before the input", n, r->domains);
}

/* The daemon is back where it started. */
static void check_clean(struct hbt_rig *r)
{
	struct hbd *d = &r->d;
	struct pool_stats st = {0};
	int fds;

	if (d->n_sessions || !hbc_list_empty(&d->sessions))
		dirty("%u sessions left after every connection hung up", d->n_sessions);
	if (!hbc_list_empty(&d->orphans))
		dirty("%zu orphaned buffers left", hbc_list_length(&d->orphans));
	if (!lists_empty(d->hids, sizeof(d->hids) / sizeof(d->hids[0])))
		dirty("hids left in the table");
	if (!lists_empty(d->timelines, sizeof(d->timelines) / sizeof(d->timelines[0])))
		dirty("timelines left in the table");
	if (!lists_empty(d->waits, sizeof(d->waits) / sizeof(d->waits[0])))
		dirty("fence waits left in the table");
	check_domains(r);
	d->backend->stats(d->backend_state, put_stat, &st);
	if (st.pages_used || st.peers)
		dirty("%llu pool pages used, %llu ivshmem peers left",
		      (unsigned long long)st.pages_used, (unsigned long long)st.peers);
	fds = count_fds();
	if (fds != r->fds_before)
		dirty("%d descriptors open, %d before the input", fds, r->fds_before);
}

void hbt_rig_end(struct hbt_rig *r)
{
	struct pool_stats st;

	for (unsigned k = 0; k < HBT_N_CONNS; k++)
		hbt_rig_hangup(r, k);
	for (unsigned k = 0; k < HBT_N_PEERS; k++)
		hbt_rig_peer_gone(r, k);
	/* Hang-ups are seen in the loop; a session being dropped goes one round later. */
	for (unsigned i = 0; i < 4 * HBT_SPIN_LONG; i++) {
		ev_run(r->d.loop, EVRUN_NOWAIT);
		st = (struct pool_stats){0};
		r->d.backend->stats(r->d.backend_state, put_stat, &st);
		if (!r->d.n_sessions && !st.peers)
			break;
	}
	check_clean(r);
	deterministic = false;
}

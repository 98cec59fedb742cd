/*
 * Waiting for sync handles: the blocking calls, and the memory barrier around them. A wait
 * reads what the daemon sent (which may complete the handles) and then sleeps on the
 * handles' eventfds and the clients' channels together, without the client's lock, in slices.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "libclient/client.h"
#include "protocol/limits.h"

void hbl_shared_memory_barrier(void)
{
	/*
	 * A full fence: MFENCE on x86, DMB ISH on arm64. What it orders on x86, where plain
	 * write-back stores are already seen by other CPUs in program order (TSO): the compiler
	 * (no access to the buffer moves across it), earlier stores before later loads (the one
	 * reordering TSO allows: "write the frame, then read a flag" would otherwise let the
	 * read pass the write), and the write-combining buffers. Pool memory is mapped
	 * write-back here (the memfd on the host and in emulated VMs); a guest that maps its
	 * ivshmem BAR2 write-combining instead (ioremap_wc, resourceN_wc) has stores parked in
	 * WC buffers that only a fence drains: SFENCE after the writes is the minimum there, and
	 * MFENCE includes it. The cost is tens of cycles next to a daemon round trip.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* 1 when the wait is over: one complete (any), or all of them (all). */
static int check(struct hb_sync **v, size_t n, bool all, size_t *index)
{
	for (size_t i = 0; i < n; i++) {
		int st = hbl_sync_status(v[i]);

		if (!all && st != 0) {
			if (index)
				*index = i;
			return 1;
		}
		if (all && st == 0)
			return 0;
	}
	return all;
}

/* ---- who wakes a waiter ------------------------------------------------------------------ */

static pthread_key_t wake_key;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static __thread int wake_fd = -1;

static void wake_fd_close(void *p)
{
	close((int)(intptr_t)p - 1);
}

static void wake_key_make(void)
{
	pthread_key_create(&wake_key, wake_fd_close);
}

int hbl_thread_wake_fd(void)
{
	if (wake_fd >= 0)
		return wake_fd;
	pthread_once(&wake_once, wake_key_make);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0)
		return -errno;
	/* Closed when the thread exits (+1: a stored NULL would mean "nothing to close"). */
	pthread_setspecific(wake_key, (void *)(intptr_t)(wake_fd + 1));
	return wake_fd;
}

void hbl_wake_waiters(struct hb_client *c)
{
	struct hbl_waiter *w;

	hbc_list_for_each_safe(w, &c->fences.waiters, struct hbl_waiter, link)
	{
		if (w->efd != wake_fd) {
			hbl_count(&c->conn.n_wakes);
			eventfd_write(w->efd, 1);
		}
	}
}

/* ---- the wait ------------------------------------------------------------------------------ */

/* The clients of a wait, each registered as a waiter, and where their fds are in the poll set. */
struct wait_client {
	struct hb_client *c;
	struct hbl_waiter w;
	size_t at, n; /* pfd[at .. at + n): its channel, then its backend's fds */
};

/* Polls the clients' fds and this thread's wake fd for at most wait ms: how many fds showed
 * something (0: the time ran out), or a negative errno. */
static int wait_poll(struct wait_client *cl, size_t n_cl, struct pollfd *pfd, int wake, int wait)
{
	size_t np = 0;
	int r;

	pfd[np++] = (struct pollfd){.fd = wake, .events = POLLIN};
	for (size_t j = 0; j < n_cl; j++) {
		cl[j].at = np;
		cl[j].n = 0;
		if (hbl_conn_broken(&cl[j].c->conn) == 0)
			cl[j].n = hbl_pollfds(cl[j].c, pfd + np, HBL_POLLFDS_MAX);
		np += cl[j].n;
	}
	for (size_t j = 0; j < n_cl; j++)
		hbl_count(&cl[j].c->conn.n_polls);
	r = poll(pfd, np, wait);
	if (r < 0)
		return errno == EINTR ? 1 : -errno;
	if (pfd[0].revents) {
		eventfd_t v;
		eventfd_read(wake, &v);
	}
	return r;
}

/* Reads what the daemon sent (which may complete them); after a poll, only where it showed
 * something. A broken client has completed all its points with its error, so this also ends a
 * wait on a lost connection. */
static void wait_pump(struct wait_client *cl, size_t n_cl, const struct pollfd *pfd)
{
	for (size_t j = 0; j < n_cl; j++) {
		hbl_lock(cl[j].c);
		if (cl[j].n)
			hbl_polled(cl[j].c, pfd + cl[j].at, cl[j].n);
		hbl_pump(cl[j].c, HBL_DISPATCH_BATCH);
		hbl_watches_settle(cl[j].c);
		hbl_unlock(cl[j].c);
	}
}

static void wait_register(struct wait_client *cl, size_t n_cl, bool on)
{
	for (size_t j = 0; j < n_cl; j++) {
		hbl_lock(cl[j].c);
		if (on)
			hbc_list_insert_tail(&cl[j].c->fences.waiters, &cl[j].w.link);
		else
			hbc_list_remove(&cl[j].w.link);
		hbl_unlock(cl[j].c);
	}
}

/* The distinct clients of v[], each with its waiter. */
static size_t wait_clients(struct hb_sync **v, size_t n, struct wait_client *cl, int wake)
{
	size_t n_cl = 0;

	for (size_t i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < n_cl && cl[j].c != v[i]->client; j++)
			;
		if (j == n_cl)
			cl[n_cl++] = (struct wait_client){.c = v[i]->client, .w.efd = wake};
	}
	return n_cl;
}

/*
 * The wait: poll, then read where the poll showed something, then look. Without the lock while
 * it polls: another thread's call may read our completion first, and then our wake fd is what
 * wakes us. Nothing is read before the first poll (but from a vchan, whose poll does not show
 * what its ring holds): a whole frame already received was handled when its reader unlocked,
 * and anything else shows in the poll.
 */
int hbl_syncs_wait(struct hb_sync **v, size_t n, bool all, int timeout_ms, size_t *index)
{
	struct wait_client one[2], *cl = one;
	struct pollfd small[1 + 2 * HBL_POLLFDS_MAX], *pfd = small;
	uint64_t deadline = timeout_ms > 0 ? hbc_now_ms() + (uint64_t)timeout_ms : 0;
	size_t n_cl;
	int wake, r = 0;

	if (check(v, n, all, index))
		return 0;
	if (timeout_ms == 0)
		return -ETIME;
	wake = hbl_thread_wake_fd();
	if (wake < 0)
		return wake;
	if (n > 2) {
		cl = calloc(n, sizeof(*cl));
		pfd = calloc(1 + n * HBL_POLLFDS_MAX, sizeof(*pfd));
		if (!cl || !pfd) {
			r = -ENOMEM;
			goto out;
		}
	}
	n_cl = wait_clients(v, n, cl, wake);
	wait_register(cl, n_cl, true);
	/* A transport whose poll does not show what it holds is read before the first poll;
	 * slots get our bit (settle) before it. */
	for (size_t j = 0; j < n_cl; j++) {
		hbl_lock(cl[j].c);
		if (!hbl_conn_polls_all(&cl[j].c->conn))
			hbl_pump(cl[j].c, HBL_DISPATCH_BATCH);
		hbl_watches_settle(cl[j].c);
		hbl_unlock(cl[j].c);
	}
	for (;;) {
		int wait = HBL_WAIT_SLICE_MS;

		/* Registered, then checked: a completion read since is in the status or the fd. */
		if (check(v, n, all, index))
			break;
		if (timeout_ms > 0) {
			uint64_t now = hbc_now_ms();

			if (now >= deadline) {
				r = -ETIME;
				break;
			}
			if (deadline - now < (uint64_t)wait)
				wait = (int)(deadline - now);
		}
		r = wait_poll(cl, n_cl, pfd, wake, wait);
		if (r < 0)
			break;
		wait_pump(cl, n_cl, pfd);
		r = 0;
	}
	wait_register(cl, n_cl, false);
out:
	if (cl != one)
		free(cl);
	if (pfd != small)
		free(pfd);
	return r;
}

HBL_PUBLIC int hb_sync_wait(struct hb_sync *s, int timeout_ms)
{
	int r;

	if (!s || timeout_ms < -1)
		return hbl_fail(-EINVAL);
	r = hbl_syncs_wait(&s, 1, false, timeout_ms, NULL);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_sync_wait_any(struct hb_sync **v, size_t n, int timeout_ms, size_t *index)
{
	size_t dummy;
	int r;

	if (!v || n == 0 || timeout_ms < -1)
		return hbl_fail(-EINVAL);
	for (size_t i = 0; i < n; i++)
		if (!v[i])
			return hbl_fail(-EINVAL);
	r = hbl_syncs_wait(v, n, false, timeout_ms, index ? index : &dummy);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_sync_status(const struct hb_sync *s)
{
	int st;

	if (!s) {
		errno = EINVAL;
		return -EINVAL;
	}
	st = hbl_sync_status(s);
	if (st != 0)
		return st;
	/* Take what the daemon already sent, so that a loop on the status makes progress
	 * without the caller dispatching (fences.md §1.5: a cached status must not lag
	 * forever); reading only what is ready, so that a status polled while nothing comes
	 * costs one epoll_wait, not a read of every fd. */
	hbl_pump_ready(s->client);
	return hbl_sync_status(s);
}

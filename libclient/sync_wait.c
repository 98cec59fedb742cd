/*
 * Waiting for sync handles: the blocking calls, and the memory barrier around them. A wait
 * reads what the daemon sent (which may complete the handles) and then sleeps on the
 * handles' eventfds and the clients' channels together, without the client's lock, in slices.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

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

int hbl_syncs_wait(struct hb_sync **v, size_t n, bool all, int timeout_ms, size_t *index)
{
	struct hb_client **clients = NULL;
	struct pollfd *pfd = NULL;
	size_t n_clients = 0, max_pfd;
	uint64_t deadline = timeout_ms > 0 ? hbc_now_ms() + (uint64_t)timeout_ms : 0;
	int r = 0;

	if (check(v, n, all, index))
		return 0;
	clients = calloc(n, sizeof(*clients));
	if (!clients)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < n_clients && clients[j] != v[i]->client; j++)
			;
		if (j == n_clients)
			clients[n_clients++] = v[i]->client;
	}
	max_pfd = n + n_clients * (1 + HBP_MAX_GROUPS);
	pfd = calloc(max_pfd, sizeof(*pfd));
	if (!pfd) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		size_t np = 0;
		int wait = HBL_WAIT_SLICE_MS;

		/* What the daemon already sent may complete them: read it (a broken client
		 * has completed all its points with its error, so this also ends a wait on a
		 * lost connection). */
		for (size_t j = 0; j < n_clients; j++) {
			hbl_lock(clients[j]);
			hbl_pump(clients[j], HBL_DISPATCH_BATCH);
			hbl_unlock(clients[j]);
		}
		if (check(v, n, all, index))
			break;
		if (timeout_ms == 0) {
			r = -ETIME;
			break;
		}
		if (timeout_ms > 0) {
			uint64_t now = hbc_now_ms();

			if (now >= deadline) {
				r = -ETIME;
				break;
			}
			if (deadline - now < (uint64_t)wait)
				wait = (int)(deadline - now);
		}
		/* Without the lock: another thread's call may read our completion first, and
		 * then the eventfd is what wakes us. The slice bounds a wait on a thread that
		 * read the socket but has not finished handling it yet. */
		for (size_t i = 0; i < n; i++)
			if (v[i]->efd >= 0 && hbl_sync_status(v[i]) == 0)
				pfd[np++] = (struct pollfd){.fd = v[i]->efd, .events = POLLIN};
		for (size_t j = 0; j < n_clients; j++)
			if (hbl_conn_broken(&clients[j]->conn) == 0)
				np += hbl_pollfds(clients[j], pfd + np, max_pfd - np);
		if (poll(pfd, np, wait) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
	}
out:
	free(pfd);
	free(clients);
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
	 * forever). */
	hbl_lock(s->client);
	hbl_pump(s->client, HBL_DISPATCH_BATCH);
	hbl_unlock(s->client);
	return hbl_sync_status(s);
}

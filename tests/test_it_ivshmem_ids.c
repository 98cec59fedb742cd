/*
 * Peer ids of the ivshmem server (backends/kvm/ivshmem_ids.c): an id whose peer left is not
 * given out again while a peer that heard it leave is still there. QEMU 7.2 frees a departed
 * peer's eventfds without forgetting them, so telling it that id joined again is a use after
 * free (then a double free) in QEMU. Raw peers on group c's shared socket stand for QEMUs.
 */
#include "tests/it_common.h"

/* Waits until the daemon counts n peers in group c (a departure is seen asynchronously). */
static void peers_are(struct hbt_daemon *d, uint64_t n)
{
	IT_CHECK_STAT(d, "pool.c.ivshmem_peers", n);
}

TEST(an_id_waits_until_everyone_who_heard_it_leave_is_gone)
{
	struct hbt_daemon d;
	struct it_ivsh a, b, c, e, f;
	int64_t a_id, b_id, c_id;

	hbt_daemon_start(&d, NULL);
	it_ivsh_join(&a, hbt_path(&d, "group-c.sock"));
	it_ivsh_join(&b, hbt_path(&d, "group-c.sock"));
	a_id = a.id;
	b_id = b.id;
	/* b leaves and a hears it: b's id waits for a. */
	it_ivsh_close(&b);
	peers_are(&d, 1);
	it_ivsh_join(&c, hbt_path(&d, "group-c.sock"));
	CHECK(c.id != b_id && c.id != a_id);
	c_id = c.id;
	/* c leaves (a heard), then a (nobody is left to hear it): every id is free again. */
	it_ivsh_close(&c);
	peers_are(&d, 1);
	it_ivsh_close(&a);
	peers_are(&d, 0);
	it_ivsh_join(&e, hbt_path(&d, "group-c.sock"));
	it_ivsh_join(&f, hbt_path(&d, "group-c.sock"));
	CHECK_EQ(e.id, a_id < b_id ? a_id : b_id);
	CHECK(f.id == a_id || f.id == b_id || f.id == c_id);
	it_ivsh_close(&e);
	it_ivsh_close(&f);
	IT_STOP(&d);
}

/* A host session's doorbells are parked, not gone, when it ends: the next session of the same
 * user gets the same id and eventfds back, so the peers hear of it once and never that it
 * left, and no id waits. */
TEST(host_doorbells_are_parked_not_gone)
{
	struct hbt_daemon d;
	struct it_ivsh q;
	struct hb_client *h;
	int64_t val, first = -1;
	int fd, nfds, n = 0;

	hbt_daemon_start(&d, NULL);
	it_ivsh_join(&q, hbt_path(&d, "group-a.sock"));
	for (int i = 0; i < 3; i++) {
		h = IT_CONNECT(hbt_addr_host(&d));
		IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 2);
		hb_disconnect(h);
		IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 1);
	}
	/* One announcement (an eventfd per vector, all of one id), and no departure. */
	while (it_ivsh_recv(q.sock, &val, &fd, &nfds, 200) == 1) {
		CHECK(fd >= 0);
		close(fd);
		CHECK(first < 0 || val == first);
		first = val;
		n++;
	}
	CHECK(n >= 1);
	/* The peers' view did not change, so neither did its id. */
	h = IT_CONNECT(hbt_addr_host(&d));
	IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 2);
	CHECK_EQ(it_ivsh_recv(q.sock, &val, &fd, &nfds, 200), -1);
	hb_disconnect(h);
	it_ivsh_close(&q);
	IT_STOP(&d);
}

/* The restart state keeps a waiting id: a new daemon does not give it out while a peer it took
 * back may have heard it leave. */
TEST(a_waiting_id_survives_a_restart)
{
	struct hbt_daemon d;
	struct it_ivsh a, b, c;
	int64_t b_id;

	hbt_daemon_start_held_extra(&d, NULL);
	it_ivsh_join(&a, hbt_path(&d, "group-c.sock"));
	it_ivsh_join(&b, hbt_path(&d, "group-c.sock"));
	b_id = b.id;
	it_ivsh_close(&b);
	peers_are(&d, 1);
	hbt_daemon_crash(&d);
	peers_are(&d, 1);
	it_ivsh_join(&c, hbt_path(&d, "group-c.sock"));
	CHECK(c.id != b_id && c.id != a.id);
	it_ivsh_close(&c);
	it_ivsh_close(&a);
	IT_STOP(&d);
}

/* A restarted daemon does not know the parked host peer any more, but its id stays out of use
 * while a peer that knows it (here a raw one, as a QEMU) is there. */
TEST(a_parked_id_waits_after_a_restart)
{
	struct hbt_daemon d;
	struct it_ivsh q, r;
	struct hb_client *h;
	int64_t val, parked_id;
	int fd, nfds;

	hbt_daemon_start_held_extra(&d, NULL);
	it_ivsh_join(&q, hbt_path(&d, "group-a.sock"));
	h = IT_CONNECT(hbt_addr_host(&d));
	CHECK_EQ(it_ivsh_recv(q.sock, &val, &fd, &nfds, IT_WAIT_MS), 1);
	close(fd);
	parked_id = val;
	hb_disconnect(h);
	IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 1);
	hbt_daemon_crash(&d);
	IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 1);
	it_ivsh_join(&r, hbt_path(&d, "group-a.sock"));
	CHECK(r.id != parked_id && r.id != q.id);
	it_ivsh_close(&r);
	it_ivsh_close(&q);
	IT_STOP(&d);
}

/* A peer that joins while a host doorbell is parked hears of it in its greeting, since nobody is
 * told when it comes back; and nobody is told then. */
TEST(a_peer_that_joins_meanwhile_knows_a_parked_doorbell)
{
	struct hbt_daemon d;
	struct it_ivsh q, r;
	struct hb_client *h;
	int64_t val, h_id;
	int fd, nfds;
	bool known = false;

	hbt_daemon_start(&d, NULL);
	it_ivsh_join(&q, hbt_path(&d, "group-a.sock"));
	h = IT_CONNECT(hbt_addr_host(&d));
	CHECK_EQ(it_ivsh_recv(q.sock, &val, &fd, &nfds, IT_WAIT_MS), 1);
	close(fd);
	h_id = val;
	hb_disconnect(h);
	IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 1);
	it_ivsh_join(&r, hbt_path(&d, "group-a.sock"));
	for (int i = 0; i < r.n_peers; i++)
		known |= r.peer_id[i] == h_id;
	CHECK(known);
	h = IT_CONNECT(hbt_addr_host(&d));
	IT_CHECK_STAT(&d, "pool.a.ivshmem_peers", 3);
	CHECK_EQ(it_ivsh_recv(r.sock, &val, &fd, &nfds, 200), -1);
	hb_disconnect(h);
	it_ivsh_close(&r);
	it_ivsh_close(&q);
	IT_STOP(&d);
}

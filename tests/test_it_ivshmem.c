/*
 * The daemon as QEMU's ivshmem-doorbell server (PROTOCOL.md §5, research/kvm.md §1.5, §1.7):
 * a fake QEMU checks the exact message sequence, the sealed pool memfd and its header, the
 * eventfds, peers joining and leaving, a header nobody relies on; and the Attach step that
 * binds an ivshmem peer to a VM's session (once per group, by the peer's own process), with the
 * Welcome that names the groups.
 */
#include "tests/it_common.h"

static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static void expect_msg(int sock, int64_t want, int want_fds, int *fd)
{
	int64_t val;
	int got_fd, nfds, st;

	st = it_ivsh_recv(sock, &val, &got_fd, &nfds, IT_WAIT_MS);
	if (st != 1)
		hbt_fail(__FILE__, __LINE__, "want message %lld: %s", (long long)want,
			 st == 0 ? "EOF" : "timeout");
	if (val != want || nfds != want_fds)
		hbt_fail(__FILE__, __LINE__, "got %lld with %d fds, want %lld with %d",
			 (long long)val, nfds, (long long)want, want_fds);
	if (fd)
		*fd = got_fd;
	else if (got_fd >= 0)
		close(got_fd);
}

static void expect_nothing(int sock, int ms)
{
	int64_t val;
	int fd, nfds, st = it_ivsh_recv(sock, &val, &fd, &nfds, ms);

	if (st == 1)
		hbt_fail(__FILE__, __LINE__, "unexpected message %lld with %d fds", (long long)val,
			 nfds);
	if (st == 0)
		hbt_fail(__FILE__, __LINE__, "unexpected EOF");
}

/* The group id the daemon gives group `name`, from a VM's welcome. */
static uint32_t group_id(const struct hbt_daemon *d, int vm, const char *name)
{
	struct it_raw r;
	ServerMsg *w;
	uint32_t id;

	it_raw_open(&r, hbt_path(d, vm == 1 ? "vm1.sock" : vm == 2 ? "vm2.sock" : "vm3.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	id = it_welcome_group(w, name)->id;
	server_msg__free_unpacked(w, NULL);
	it_raw_close(&r);
	return id;
}

static void check_header(int pool_fd, uint32_t gid, uint64_t size, const char *name)
{
	struct hbp_pool_header hdr;

	CHECK_EQ(pread(pool_fd, &hdr, sizeof(hdr), 0), sizeof(hdr));
	CHECK(memcmp(hdr.magic, HBP_POOL_MAGIC, 8) == 0);
	CHECK_EQ(hdr.layout, HBP_POOL_LAYOUT_VERSION);
	CHECK_EQ(hdr.group, gid);
	CHECK_EQ(hdr.size, size);
	CHECK_EQ(hdr.page_size, HBP_PAGE_SIZE);
	CHECK(strncmp(hdr.name, name, sizeof(hdr.name)) == 0);
	CHECK(memchr(hdr.name, '\0', sizeof(hdr.name)) != NULL);
}

TEST(ivshmem_greeting_exact)
{
	struct hbt_daemon d;
	struct stat st;
	int64_t id;
	int sock, fd, nfds, pool_fd, daemon_fd, own_fd, seals;
	uint64_t one = 1, got = 0;
	uint32_t gid;

	hbt_daemon_start(&d, NULL);
	gid = group_id(&d, 1, "b");
	sock = it_unix_connect(hbt_path(&d, "group-b.sock"));
	CHECK(sock >= 0);

	expect_msg(sock, 0, 0, NULL); /* version 0, no fd */
	CHECK_EQ(it_ivsh_recv(sock, &id, &fd, &nfds, IT_WAIT_MS), 1);
	CHECK(id >= 1 && id <= 65535); /* our id, no fd */
	CHECK_EQ(nfds, 0);
	expect_msg(sock, -1, 1, &pool_fd); /* the pool */
	CHECK(fstat(pool_fd, &st) == 0);
	CHECK_EQ(st.st_size, 128u << 20);
	CHECK_EQ(st.st_size & (st.st_size - 1), 0); /* a power of two */
	seals = fcntl(pool_fd, F_GET_SEALS);
	CHECK(seals >= 0);
	CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
	      (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
	CHECK(ftruncate(pool_fd, 1u << 20) != 0); /* sealed for real */
	CHECK(fcntl(pool_fd, F_ADD_SEALS, F_SEAL_WRITE) != 0);
	expect_msg(sock, 0, 1, &daemon_fd); /* peer 0 (the daemon), vector 0 */
	expect_msg(sock, id, 1, &own_fd);   /* our own vector 0 */
	expect_nothing(sock, 300);

	check_header(pool_fd, gid, 128u << 20, "b");
	CHECK(is_eventfd(daemon_fd));
	CHECK(is_eventfd(own_fd));
	/* A real eventfd: what is written can be read back. */
	CHECK_EQ(write(own_fd, &one, 8), 8);
	CHECK_EQ(read(own_fd, &got, 8), 8);
	CHECK_EQ(got, 1);
	/* Ringing the daemon does no harm. */
	CHECK_EQ(write(daemon_fd, &one, 8), 8);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 0);

	close(pool_fd);
	close(daemon_fd);
	close(own_fd);
	close(sock);
	IT_STOP(&d);
}

TEST(ivshmem_peers_join_and_leave)
{
	struct hbt_daemon d;
	struct it_ivsh a, b, c;
	bool saw_zero = false, saw_a = false;
	int64_t b_id, a_id;
	int fd, i;
	char byte = 'x';

	hbt_daemon_start(&d, NULL);
	it_ivsh_join(&a, hbt_path(&d, "group-c.sock"));
	CHECK_EQ(a.n_peers, 1);
	CHECK_EQ(a.peer_id[0], 0);

	/* b joins: it is told about the daemon and a; a is told about b. */
	it_ivsh_join(&b, hbt_path(&d, "group-c.sock"));
	CHECK(b.id != a.id);
	CHECK_EQ(b.n_peers, 2);
	for (i = 0; i < b.n_peers; i++) {
		saw_zero |= b.peer_id[i] == 0;
		saw_a |= b.peer_id[i] == a.id;
		CHECK(is_eventfd(b.peer_fd[i]));
	}
	CHECK(saw_zero && saw_a);
	expect_msg(a.sock, b.id, 1, &fd);
	CHECK(is_eventfd(fd));
	close(fd);
	expect_nothing(a.sock, 200);

	/* b leaves: a gets b's id with no fd. */
	b_id = b.id;
	it_ivsh_close(&b);
	expect_msg(a.sock, b_id, 0, NULL);
	expect_nothing(a.sock, 200);

	/* c joins, then a says something: any byte from a peer is a disconnect. */
	it_ivsh_join(&c, hbt_path(&d, "group-c.sock"));
	CHECK(c.id != a.id);
	CHECK_EQ(c.n_peers, 2);
	expect_msg(a.sock, c.id, 1, NULL);
	a_id = a.id;
	CHECK_EQ(send(a.sock, &byte, 1, MSG_NOSIGNAL), 1);
	expect_msg(c.sock, a_id, 0, NULL);
	{
		int64_t val;
		int nfds;

		/* ...and the daemon hung up on a. */
		CHECK_EQ(it_ivsh_recv(a.sock, &val, &fd, &nfds, IT_WAIT_MS), 0);
	}
	it_ivsh_close(&a);
	it_ivsh_close(&c);
	IT_STOP(&d);
}

TEST(ivshmem_pool_headers)
{
	static const struct {
		const char *sock, *name;
		uint64_t size;
		int vm;
	} g[] = {{"group-a.sock", "a", 64u << 20, 1},
		 {"group-b.sock", "b", 128u << 20, 2},
		 {"group-c.sock", "c", 16u << 20, 3}};
	struct hbt_daemon d;
	uint32_t ids[3];
	int i;

	hbt_daemon_start(&d, NULL);
	for (i = 0; i < 3; i++) {
		struct it_ivsh v;

		ids[i] = group_id(&d, g[i].vm, g[i].name);
		it_ivsh_join(&v, hbt_path(&d, g[i].sock));
		CHECK_EQ(v.pool_size, g[i].size);
		check_header(v.pool_fd, ids[i], g[i].size, g[i].name);
		it_ivsh_close(&v);
	}
	CHECK(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
	IT_STOP(&d);
}

/* Library clients are peers like QEMU: a fake peer is told about them and their leaving. */
TEST(ivshmem_library_clients_are_peers)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct it_ivsh p;
	int64_t seen[2];
	int i, n = 0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_ivsh_join(&p, hbt_path(&d, "group-b.sock"));
	CHECK_EQ(p.n_peers, 3); /* the daemon, vm1, vm2 */
	for (i = 0; i < p.n_peers; i++) {
		if (p.peer_id[i] != 0)
			seen[n++] = p.peer_id[i];
	}
	CHECK_EQ(n, 2);
	CHECK(seen[0] != seen[1]);
	/* The clients handle a peer coming and going without trouble. */
	it_drain(v1);
	it_drain(v2);
	hb_disconnect(v1);
	{
		int64_t val;
		int fd, nfds;

		CHECK_EQ(it_ivsh_recv(p.sock, &val, &fd, &nfds, IT_WAIT_MS), 1);
		CHECK(val == seen[0] || val == seen[1]);
		CHECK_EQ(nfds, 0);
	}
	{
		struct hb_buffer *b = IT_ALLOC(v2, 3, 4096, 0);

		hb_buffer_free(b);
	}
	it_ivsh_close(&p);
	it_drain(v2);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(welcome_contents)
{
	struct hbt_daemon d;
	struct it_raw r;
	ServerMsg *w;
	const GroupInfo *g;

	hbt_daemon_start(&d, NULL);
	it_raw_open(&r, d.socket);
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->version, HBP_PROTOCOL_VERSION);
	CHECK_EQ(w->welcome->domain, 0);
	CHECK(strcmp(w->welcome->domain_name, "host") == 0);
	CHECK_EQ(w->welcome->meta_max, HB_META_MAX); /* the default: all a client can send */
	CHECK_EQ(w->welcome->event_queue, 256);
	CHECK_EQ(w->welcome->frame_max, HBP_FRAME_MAX);
	CHECK_EQ(w->welcome->n_groups, 1);
	g = it_welcome_group(w, "a");
	CHECK_EQ(g->pool_size, 64u << 20);
	CHECK_EQ(g->n_members, 2);
	CHECK((g->members[0] == 0 && g->members[1] == 1) ||
	      (g->members[0] == 1 && g->members[1] == 0));
	CHECK(strcmp(g->ivshmem_path, hbt_path(&d, "group-a.sock")) == 0);
	server_msg__free_unpacked(w, NULL);
	it_raw_close(&r);

	it_raw_open(&r, hbt_path(&d, "vm2.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->domain, 2);
	CHECK(strcmp(w->welcome->domain_name, "vm2") == 0);
	CHECK_EQ(w->welcome->n_groups, 2);
	g = it_welcome_group(w, "b");
	CHECK_EQ(g->pool_size, 128u << 20);
	CHECK(strcmp(g->ivshmem_path, hbt_path(&d, "group-b.sock")) == 0);
	g = it_welcome_group(w, "c");
	CHECK_EQ(g->pool_size, 16u << 20);
	CHECK_EQ(g->n_members, 2);
	CHECK(strcmp(g->ivshmem_path, hbt_path(&d, "group-c.sock")) == 0);
	CHECK(it_welcome_group(w, "b")->id != g->id);
	server_msg__free_unpacked(w, NULL);
	it_raw_close(&r);
	IT_STOP(&d);
}

TEST(attach_rules)
{
	struct hbt_daemon d;
	struct hb_client *v2;
	struct it_raw r1, r2, rh;
	struct it_ivsh p;
	struct hb_event ev;
	struct stat st;
	uint32_t ga, gb, gc;

	hbt_daemon_start(&d, NULL);
	ga = group_id(&d, 1, "a");
	gb = group_id(&d, 1, "b");
	gc = group_id(&d, 2, "c");

	/* The host gets the pool fd with the reply. */
	hbt_raw_session(&rh, d.socket, HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&rh, ga, 0), 0);
	CHECK(rh.passed_fd >= 0);
	CHECK(fstat(rh.passed_fd, &st) == 0);
	CHECK_EQ(st.st_size, 64u << 20);
	check_header(rh.passed_fd, ga, 64u << 20, "a");
	CHECK_EQ(hbt_raw_attach(&rh, gb, 0), ENOENT); /* not a member */
	CHECK_EQ(hbt_raw_attach(&rh, 999, 0), ENOENT);

	/* A VM names the ivshmem peer the server gave it. */
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	it_ivsh_join(&p, hbt_path(&d, "group-b.sock"));
	hbt_raw_session(&r1, hbt_path(&d, "vm1.sock"), HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r1, gc, (uint32_t)p.id), ENOENT); /* vm1 is not in group c */
	CHECK_EQ(hbt_raw_attach(&r1, gb, 60000), ENOENT);          /* no such peer */
	CHECK_EQ(hbt_raw_attach(&r1, gb, (uint32_t)p.id), 0);
	/* That peer is vm1's now: vm2 may not claim it. */
	hbt_raw_session(&r2, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r2, gb, (uint32_t)p.id), EBUSY);
	/* When vm1's ivshmem connection closes, vm1 is gone. */
	it_ivsh_close(&p);
	IT_WAIT_EVENT(v2, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);

	it_raw_close(&r1);
	it_raw_close(&r2);
	it_raw_close(&rh);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* One Attach per group and session: of seven Attaches pipelined behind a Hello, the first
 * gets the pool memfd and every other one EALREADY, each exactly one reply. */
TEST(pipelined_attaches_all_answered)
{
	enum { NATTACH = 7 };
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t frames[512];
	size_t len = 0;
	ServerMsg *s;
	struct stat st;
	int i, why;

	hbt_daemon_start(&d, NULL);
	it_raw_open(&r, d.socket);
	{
		ClientMsg m = CLIENT_MSG__INIT;
		Hello h = HELLO__INIT;

		h.version = HBP_PROTOCOL_VERSION;
		IT_MSG(m, HELLO, hello, &h);
		m.id = 1;
		hbt_put_frame(frames, sizeof(frames), &len, &m);
	}
	for (i = 0; i < NATTACH; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		Attach at = ATTACH__INIT;

		at.group = 1; /* group a: groups are numbered from 1 in file order */
		IT_MSG(m, ATTACH, attach, &at);
		m.id = 2 + (uint32_t)i;
		hbt_put_frame(frames, sizeof(frames), &len, &m);
	}
	CHECK_EQ(it_send_all(r.fd, frames, len), 0);

	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 1);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	CHECK_EQ(it_welcome_group(s, "a")->id, 1);
	server_msg__free_unpacked(s, NULL);
	for (i = 0; i < NATTACH; i++) {
		s = it_raw_recv(&r, IT_WAIT_MS, &why);
		if (!s)
			hbt_fail(__FILE__, __LINE__, "Attach %d of %d got no reply (why %d)", i + 1,
				 NATTACH, why);
		CHECK_EQ(s->id, 2 + i);
		if (i == 0) {
			/* The first one carries the pool memfd. */
			CHECK_EQ(s->error, 0);
			CHECK(r.passed_fd >= 0);
			CHECK(fstat(r.passed_fd, &st) == 0);
			CHECK_EQ(st.st_size, 64 << 20);
		} else {
			CHECK_EQ(s->error, EALREADY);
			CHECK_EQ(r.passed_fd, -1);
		}
		server_msg__free_unpacked(s, NULL);
	}
	/* Exactly 8 replies: nothing else comes, and the session is still in business. */
	CHECK(it_raw_recv(&r, 300, &why) == NULL);
	CHECK_EQ(why, -1);
	r.next_id = 50;
	CHECK_EQ(hbt_raw_attach(&r, 1, 0), EALREADY);
	CHECK_EQ(r.passed_fd, -1);
	CHECK_EQ(hbt_raw_attach(&r, 2, 0), ENOENT); /* group b: the host is not a member */
	it_raw_close(&r);
	IT_STOP(&d);
}

/* An ivshmem connection is claimed (Attach) by its own process only: another process's peer
 * is EPERM. */
struct peer_child {
	const char *path;
	int to_parent, from_parent;
};

static int peer_child_main(void *arg)
{
	struct peer_child *pc = arg;
	struct it_ivsh p;
	char done;

	it_ivsh_join(&p, pc->path);
	it_pipe_write(pc->to_parent, &p.id, sizeof(p.id));
	if (it_pipe_read(pc->from_parent, &done, 1, 30000) != 0)
		return 2;
	it_ivsh_close(&p);
	return 0;
}

TEST(ivshmem_claim_needs_same_process)
{
	struct hbt_daemon d;
	struct peer_child pc;
	struct it_ivsh mine;
	struct it_raw r;
	int up[2], down[2];
	int64_t theirs;
	pid_t child;
	ServerMsg *w;
	uint32_t group;

	hbt_daemon_start(&d, NULL);
	CHECK(pipe2(up, O_CLOEXEC) == 0);
	CHECK(pipe2(down, O_CLOEXEC) == 0);
	pc.path = hbt_path(&d, "group-a.sock");
	pc.to_parent = up[1];
	pc.from_parent = down[0];
	child = hbt_fork(peer_child_main, &pc);
	CHECK_EQ(it_pipe_read(up[0], &theirs, sizeof(theirs), IT_WAIT_MS), 0);
	CHECK(theirs >= 1 && theirs <= 65535);

	it_raw_open(&r, hbt_path(&d, "vm1.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	group = it_welcome_group(w, "a")->id;
	server_msg__free_unpacked(w, NULL);
	/* Another process's connection: not ours to claim. */
	CHECK_EQ(hbt_raw_attach(&r, group, (uint32_t)theirs), EPERM);
	/* Our own: fine. */
	it_ivsh_join(&mine, hbt_path(&d, "group-a.sock"));
	CHECK(mine.id != theirs);
	CHECK_EQ(hbt_raw_attach(&r, group, (uint32_t)mine.id), 0);
	CHECK_EQ(hbt_raw_attach(&r, group, (uint32_t)theirs), EALREADY);

	it_pipe_write(down[1], "x", 1);
	CHECK_EQ(hbt_wait_child(child), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	it_raw_close(&r);
	it_ivsh_close(&mine);
	IT_STOP(&d);
}

/* A scribbled pool header locks nobody out: with page 0 of group a's pool zeroed by a member,
 * the host and vm1 still share both ways, and the header stays zero. */
TEST(scribbled_header_does_not_lock_out)
{
	static uint8_t page[HBP_PAGE_SIZE];
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_buffer *b;
	struct hb_import *im;
	struct it_ivsh p;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	it_ivsh_join(&p, hbt_path(&d, "group-a.sock"));
	memset(page, 0, sizeof(page));
	CHECK_EQ(pwrite(p.pool_fd, page, sizeof(page), 0), sizeof(page));

	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	/* host -> vm1 */
	b = IT_ALLOC(h, 1, 5 * 4096 + 17, 0);
	it_fill(b, 0x9a);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v1, &id, 0);
	IT_CHECK_IMPORT(im, 5 * 4096 + 17, 0x9a);
	hb_import_release(im);
	hb_buffer_free(b);
	/* vm1 -> host */
	b = IT_ALLOC(v1, 0, 4096, 0);
	it_fill(b, 0x9b);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(h, &id, 0);
	IT_CHECK_IMPORT(im, 4096, 0x9b);
	hb_import_release(im);
	hb_buffer_free(b);

	/* The header really is still zero: nobody needed it. */
	it_pool_read(p.pool_fd, 0, page);
	CHECK(it_all_bytes(page, sizeof(page), 0));
	hb_disconnect(h);
	hb_disconnect(v1);
	it_ivsh_close(&p);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}

/* A group's shared ivshmem socket holds no more unclaimed connections than its VMs may have
 * (here vm1, 2): the third is refused before any greeting, so one process cannot fill the
 * group's slots. */
TEST(shared_socket_unclaimed_are_bounded)
{
	struct hbt_daemon d;
	struct it_ivsh v[2];
	int64_t val;
	int fd, nfds, extra;

	hbt_daemon_start_config(&d, "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n"
				    "[vm vm1]\nid = 1\nchannel = vm1.sock\nivshmem_connections = 2\n"
				    "[group a]\nmembers = host, vm1\nsize = 1M\n"
				    "ivshmem = group-a.sock\n");
	for (int i = 0; i < 2; i++)
		it_ivsh_join(&v[i], hbt_path(&d, "group-a.sock"));
	extra = it_unix_connect(hbt_path(&d, "group-a.sock"));
	CHECK(extra >= 0);
	CHECK(it_ivsh_recv(extra, &val, &fd, &nfds, IT_WAIT_MS) <= 0);
	close(extra);
	for (int i = 0; i < 2; i++)
		it_ivsh_close(&v[i]);
	IT_STOP(&d);
}

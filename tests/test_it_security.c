/*
 * Isolation (docs/SECURITY.md), tried as an attacker would: processes of other users play the
 * VMs' QEMUs and local users. The daemon runs as root, as deployed; each case forks children
 * that take other uids (setresuid), so the suite needs root and says SKIP otherwise.
 *
 *   vm1: user 61001, group 61001, its sockets in vm1/    group b: vm1, vm2 ({vm} sockets)
 *   vm2: user 61002, group 61002, its sockets in vm2/    group a: host, vm1
 *   vm3: pidfile vm3.pid          vm4: label hb_test_label (neither has a user)
 */
#include <grp.h>

#include "tests/it_common.h"

#define VM1_UID 61001
#define VM2_UID 61002
#define USER_A  61003 /* a local user of the host socket */
#define USER_B  61004
#define FAKE_UID 61006 /* a user who puts a socket where the daemon's should be */

static const char topology[] =
    "[daemon]\nbackend = kvm\nsocket = host.sock\nsocket_mode = 0666\nlog = debug\n\n"
    "[limits]\npending_per_uid = 4\nsessions_per_uid = 3\nhello_timeout_ms = 500\n\n"
    "[vm vm1]\nid = 1\nchannel = vm1/channel.sock\nuser = 61001\ngroup = 61001\n\n"
    "[vm vm2]\nid = 2\nchannel = vm2/channel.sock\nuser = 61002\ngroup = 61002\n\n"
    "[vm vm3]\nid = 3\nchannel = vm3.sock\npidfile = vm3.pid\n\n"
    "[vm vm4]\nid = 4\nchannel = vm4.sock\nlabel = hb_test_label\n\n"
    "[group b]\nmembers = vm1, vm2\nsize = 4M\nivshmem = {vm}/ivshmem-b.sock\n\n"
    "[group a]\nmembers = host, vm1\nsize = 4M\nivshmem = {vm}/ivshmem-a.sock\n";

static void need_root(void)
{
	if (geteuid() != 0)
		SKIP("acting as other users needs root (CI runs make check as root)");
}

/* Starts the daemon on the topology; its folder is made traversable (0711) for the VMs'
 * users, as /run/hyperbuf is. */
static void start(struct hbt_daemon *d)
{
	need_root();
	hbt_daemon_start_config(d, topology);
	CHECK(chmod(d->dir, 0711) == 0);
}

/* In a child: becomes uid (and gid = uid, no other groups). */
static void become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(90);
}

static const char *vm_addr(const struct hbt_daemon *d, int n)
{
	static char buf[4][400];
	static int slot;
	char *b = buf[slot++ % 4];

	snprintf(b, 400, "vm:%s/vm%d/channel.sock", d->dir, n);
	return b;
}

/* The daemon's log, whole (static storage). */
static void check_owner(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;

	CHECK(lstat(path, &st) == 0);
	CHECK_EQ(st.st_uid, uid);
	CHECK_EQ(st.st_gid, gid);
	CHECK_EQ(st.st_mode & 07777, mode);
}

/* A VM's sockets are its QEMU's user's, 0600, in a folder only the daemon and that VM's group
 * can traverse; the host socket is as configured. */
TEST(vm_sockets_belong_to_their_vm)
{
	struct hbt_daemon d;

	start(&d);
	check_owner(hbt_path(&d, "vm1/channel.sock"), VM1_UID, VM1_UID, 0600);
	check_owner(hbt_path(&d, "vm1/ivshmem-b.sock"), VM1_UID, VM1_UID, 0600);
	check_owner(hbt_path(&d, "vm1/ivshmem-a.sock"), VM1_UID, VM1_UID, 0600);
	check_owner(hbt_path(&d, "vm1"), 0, VM1_UID, 0710);
	check_owner(hbt_path(&d, "vm2/channel.sock"), VM2_UID, VM2_UID, 0600);
	check_owner(hbt_path(&d, "vm2"), 0, VM2_UID, 0710);
	check_owner(hbt_path(&d, "host.sock"), 0, 0, 0666);
	check_owner(hbt_path(&d, "host-control.sock"), 0, 0, 0600);
	/* vm3 and vm4 name no user: their sockets stay the daemon's. */
	check_owner(hbt_path(&d, "vm3.sock"), 0, 0, 0600);
	IT_STOP(&d);
}

struct share_args {
	const struct hbt_daemon *d;
	int hid_pipe[2], done_pipe[2];
};

/* vm1's QEMU (uid 61001): exports a filled page to vm2, waits for the word, frees it. */
static int vm1_exporter(void *arg)
{
	struct share_args *a = arg;
	struct hb_client *c;
	struct hb_buffer *b;
	struct hb_id id;
	char x;

	become(VM1_UID);
	c = hb_connect(vm_addr(a->d, 1));
	b = c ? hb_buffer_alloc(c, 2, 4096, 0) : NULL;
	if (!b)
		return 10;
	memset(hb_buffer_data(b), 0x61, 4096);
	if (hb_export(b, NULL, 0, 0, &id) < 0 || write(a->hid_pipe[1], &id, sizeof(id)) < 0)
		return 11;
	if (it_pipe_read(a->done_pipe[0], &x, 1, IT_WAIT_MS) != 0)
		return 12;
	hb_buffer_free(b);
	hb_disconnect(c);
	return 0;
}

/* vm2's QEMU (uid 61002): imports what vm1 exported and reads it. */
static int vm2_importer(void *arg)
{
	struct share_args *a = arg;
	struct hb_client *c;
	struct hb_import *im;
	struct hb_id id;
	int ok;

	become(VM2_UID);
	if (it_pipe_read(a->hid_pipe[0], &id, sizeof(id), IT_WAIT_MS) != 0)
		return 20;
	c = hb_connect(vm_addr(a->d, 2));
	im = c ? hb_import(c, &id, 0) : NULL;
	if (!im)
		return 21;
	ok = it_all_bytes(hb_import_data(im), 4096, 0x61);
	hb_import_release(im);
	hb_disconnect(c);
	return ok ? 0 : 22;
}

/* Each VM's QEMU, as its own user, gets in by its own sockets and shares as before. */
TEST(vms_share_as_their_own_users)
{
	struct hbt_daemon d;
	struct share_args a;
	pid_t p1, p2;

	start(&d);
	a.d = &d;
	CHECK(pipe2(a.hid_pipe, O_CLOEXEC) == 0 && pipe2(a.done_pipe, O_CLOEXEC) == 0);
	p1 = hbt_fork(vm1_exporter, &a);
	p2 = hbt_fork(vm2_importer, &a);
	CHECK_EQ(hbt_wait_child(p2), 0);
	it_pipe_write(a.done_pipe[1], "x", 1);
	CHECK_EQ(hbt_wait_child(p1), 0);
	IT_STOP(&d);
}

/* vm2's QEMU (uid 61002) trying vm1's doors: the kernel stops it at vm1's folder. */
static int vm2_tries_vm1(void *arg)
{
	const struct hbt_daemon *d = arg;
	struct hb_client *c;

	become(VM2_UID);
	c = hb_connect(vm_addr(d, 1));
	if (c || errno != EACCES)
		return 30;
	if (it_unix_connect(hbt_path(d, "vm1/ivshmem-b.sock")) >= 0 || errno != EACCES)
		return 31;
	return 0;
}

/* Who the daemon lets in, when the kernel lets a process reach a VM's socket at all (root):
 * only that VM's QEMU. The refusal is one frame (EACCES), and one log line that names the
 * VM, the socket, the pid and uid found and what the VM expects. */
TEST(other_users_cannot_speak_for_a_vm)
{
	struct hbt_daemon d;
	struct it_ivsh v = {0};
	int64_t val;
	int fd, nfds;

	start(&d);
	CHECK_EQ(hbt_wait_child(hbt_fork(vm2_tries_vm1, &d)), 0);
	/* root is not vm1's QEMU: refused by the daemon's own check. */
	CHECK_ERR(hb_connect(vm_addr(&d, 1)), EACCES);
	CHECK(strstr(hbt_daemon_log(&d), "vm vm1: refused a connection on") != NULL);
	CHECK(strstr(hbt_daemon_log(&d), "uid 0 is not the VM's user 61001") != NULL);
	CHECK(IT_STAT(&d, "refused_credentials") >= 1);
	/* Nor may it join vm1's pool by its ivshmem socket: closed before any greeting. */
	v.sock = it_unix_connect(hbt_path(&d, "vm1/ivshmem-b.sock"));
	CHECK(v.sock >= 0);
	CHECK(it_ivsh_recv(v.sock, &val, &fd, &nfds, IT_WAIT_MS) <= 0);
	close(v.sock);
	CHECK(strstr(hbt_daemon_log(&d), "refused a connection on ivshmem") != NULL);
	IT_STOP(&d);
}

/* vm1's QEMU joins its own ivshmem socket once; a second connection is refused. */
static int vm1_joins_twice(void *arg)
{
	const struct hbt_daemon *d = arg;
	struct it_ivsh first;
	int64_t val;
	int fd, nfds, second;

	become(VM1_UID);
	it_ivsh_join(&first, hbt_path(d, "vm1/ivshmem-b.sock"));
	second = it_unix_connect(hbt_path(d, "vm1/ivshmem-b.sock"));
	if (second < 0)
		return 40;
	if (it_ivsh_recv(second, &val, &fd, &nfds, IT_WAIT_MS) > 0)
		return 41; /* greeted: it was let in */
	close(second);
	it_ivsh_close(&first);
	return 0;
}

TEST(one_ivshmem_connection_per_vm)
{
	struct hbt_daemon d;

	start(&d);
	CHECK_EQ(hbt_wait_child(hbt_fork(vm1_joins_twice, &d)), 0);
	CHECK(strstr(hbt_daemon_log(&d), "it has 1 connection(s) to group b already "
				     "(ivshmem_connections = 1)") != NULL);
	IT_STOP(&d);
}

/* vm3 names a pid file: only that process may be vm3; vm4 names an LSM label. */
TEST(pidfile_and_label_are_checked)
{
	struct hbt_daemon d;
	struct hb_client *c;
	char text[32];

	start(&d);
	it_write_file(hbt_path(&d, "vm3.pid"), "1\n"); /* init, not us */
	CHECK_ERR(hb_connect(hbt_addr_vm(&d, 3)), EACCES);
	CHECK(strstr(hbt_daemon_log(&d), "vm vm3: refused") != NULL);
	CHECK(strstr(hbt_daemon_log(&d), "is not the one in") != NULL);
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	it_write_file(hbt_path(&d, "vm3.pid"), text);
	c = IT_CONNECT(hbt_addr_vm(&d, 3));
	hb_disconnect(c);
	/* Whatever label the kernel gives this process (none without an LSM), it is not the
	 * configured one. */
	CHECK_ERR(hb_connect(hbt_addr_vm(&d, 4)), EACCES);
	CHECK(strstr(hbt_daemon_log(&d), "is not the VM's label 'hb_test_label'") != NULL);
	IT_STOP(&d);
}

struct host_user {
	const struct hbt_daemon *d;
	uid_t uid;
	int pending_fds[8];
};

/* A local user opens pending_per_uid connections that never say Hello; one more is refused
 * with EUSERS; after hello_timeout_ms the daemon has closed them and the user gets in again. */
static int hogs_pending(void *arg)
{
	struct host_user *u = arg;
	struct hb_client *c;
	struct it_raw extra;
	ServerMsg *m;

	become(u->uid);
	for (int i = 0; i < 4; i++) {
		u->pending_fds[i] = it_unix_connect(u->d->socket);
		if (u->pending_fds[i] < 0)
			return 50;
	}
	it_raw_open(&extra, u->d->socket);
	m = it_raw_recv(&extra, IT_WAIT_MS, NULL);
	if (!m || m->id != 0 || m->error != EUSERS)
		return 51;
	server_msg__free_unpacked(m, NULL);
	it_raw_close(&extra);
	/* The daemon closes what never said Hello (500 ms here). */
	for (int i = 0; i < 4; i++) {
		char b;

		if (it_recv_full(u->pending_fds[i], &b, 1, 3000, NULL, NULL) != 0)
			return 52;
		close(u->pending_fds[i]);
	}
	c = hb_connect(hbt_addr_host(u->d));
	if (!c)
		return 53;
	hb_disconnect(c);
	return 0;
}

/* A local user holds sessions_per_uid sessions: one more is EUSERS, for that user only. */
static int hogs_sessions(void *arg)
{
	struct host_user *u = arg;
	struct hb_client *c[3];

	become(u->uid);
	for (int i = 0; i < 3; i++) {
		c[i] = hb_connect(hbt_addr_host(u->d));
		if (!c[i])
			return 60;
	}
	if (hb_connect(hbt_addr_host(u->d)) || errno != EUSERS)
		return 61;
	for (int i = 0; i < 3; i++)
		hb_disconnect(c[i]);
	return 0;
}

static int another_user_connects(void *arg)
{
	struct host_user *u = arg;
	struct hb_client *c;

	become(u->uid);
	c = hb_connect(hbt_addr_host(u->d));
	if (!c)
		return 70;
	hb_disconnect(c);
	return 0;
}

/* Host connections are counted per local user: one user cannot lock out others, and
 * hyperbufctl (root, the control socket) always gets in. */
TEST(host_limits_are_per_user)
{
	struct hbt_daemon d;
	struct host_user a = {.uid = USER_A}, b = {.uid = USER_B};
	char out[4096];

	start(&d);
	a.d = b.d = &d;
	CHECK_EQ(hbt_wait_child(hbt_fork(hogs_pending, &a)), 0);
	CHECK(strstr(hbt_daemon_log(&d), "uid 61003 already has 4 connections that have not said "
				     "Hello (pending_per_uid)") != NULL);
	CHECK_EQ(hbt_wait_child(hbt_fork(hogs_sessions, &a)), 0);
	CHECK(strstr(hbt_daemon_log(&d), "has 3 sessions (sessions_per_uid)") != NULL);
	CHECK_EQ(hbt_wait_child(hbt_fork(another_user_connects, &b)), 0);
	CHECK_EQ(hbt_ctl(&d, out, sizeof(out), "status"), 0);
	IT_STOP(&d);
}

/* Three hundred refusals in a burst make a few log lines, which count the rest. */
TEST(refusals_are_rate_limited)
{
	struct hbt_daemon d;
	const char *log;

	start(&d);
	for (int i = 0; i < 300; i++) {
		struct hb_client *c = hb_connect(vm_addr(&d, 1));

		CHECK(c == NULL && errno == EACCES);
	}
	/* The count of what was held back comes with the next line that gets through. */
	it_sleep_ms(1100);
	CHECK_ERR(hb_connect(vm_addr(&d, 1)), EACCES);
	log = hbt_daemon_log(&d);
	CHECK(hbt_count_substr(log, "vm vm1: refused a connection on") <= 4);
	CHECK(strstr(log, "more like it since the last") != NULL);
	CHECK(IT_STAT(&d, "refused_credentials") >= 300);
	IT_STOP(&d);
}

/* A process of another user that listens where the daemon's socket should be: clients and
 * hyperbufctl refuse to talk to it before they send a byte. */
static int fake_daemon(void *arg)
{
	const char *path = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l, c, got = 0;
	char b[64];

	become(FAKE_UID);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4) < 0)
		return 80;
	/* Three connections: the library's, hyperbufctl's (its control socket attempt fails,
	 * then this), and one more with HYPERBUF_DAEMON_UID set, which does talk. */
	for (int i = 0; i < 3; i++) {
		ssize_t n;

		c = accept(l, NULL, NULL);
		if (c < 0)
			return 81;
		n = recv(c, b, sizeof(b), 0);
		got += n > 0;
		close(c);
	}
	close(l);
	return got == 1 ? 0 : 82;
}

TEST(clients_check_the_daemon_first)
{
	struct hbt_daemon d;
	char dir[300], path[400], addr[420], out[4096];
	char *const argv[] = {(char *)hbt_prog("hyperbufctl"), "-s", path, "status", NULL};
	pid_t fake;

	start(&d);
	snprintf(dir, sizeof(dir), "%s/fake", d.dir);
	snprintf(path, sizeof(path), "%s/fake.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK(mkdir(dir, 0755) == 0 && chown(dir, FAKE_UID, FAKE_UID) == 0);
	fake = hbt_fork(fake_daemon, path);
	for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
		it_sleep_ms(20);
	CHECK_ERR(hb_connect(addr), EACCES);
	CHECK_EQ(it_run(out, sizeof(out), argv), 1);
	CHECK(strstr(out, "is served by uid 61006, not by hyperbufd") != NULL);
	setenv("HYPERBUF_DAEMON_UID", "61006", 1);
	CHECK(hb_connect(addr) == NULL); /* it talks, and the fake hangs up */
	unsetenv("HYPERBUF_DAEMON_UID");
	CHECK_EQ(hbt_wait_child(fake), 0);
	IT_STOP(&d);
}

/* Runs hyperbufd on a config until it exits (or 5 s); its stderr into out. Returns the exit
 * status, or -1 if it was still running (then stopped). */
static int run_daemon(const char *config, char *out, size_t outlen)
{
	char *const argv[] = {(char *)hbt_prog("hyperbufd"), "-c", (char *)config, NULL};

	return it_run(out, outlen, argv);
}

/* The daemon refuses a socket folder it does not own or that others may write, and says which
 * folder and why, instead of serving from a place somebody else controls. */
TEST(socket_folder_must_be_the_daemons)
{
	char dir[] = "/tmp/hbsec.XXXXXX", cfg[300], sub[300], out[8192];

	need_root();
	CHECK(mkdtemp(dir) != NULL);
	snprintf(sub, sizeof(sub), "%s/run", dir);
	snprintf(cfg, sizeof(cfg), "%s/hyperbufd.conf", dir);
	it_write_file(cfg, "[daemon]\nbackend = kvm\nsocket = run/hb.sock\nlog = info\n");
	CHECK(mkdir(sub, 0755) == 0 && chown(sub, USER_A, USER_A) == 0);
	CHECK_EQ(run_daemon(cfg, out, sizeof(out)), 1);
	CHECK(strstr(out, "the folder is owned by uid 61003, not by this daemon's uid 0") != NULL);
	CHECK(chown(sub, 0, 0) == 0 && chmod(sub, 0777) == 0);
	CHECK_EQ(run_daemon(cfg, out, sizeof(out)), 1);
	CHECK(strstr(out, "mode 0777 lets others write there") != NULL);
	CHECK(chmod(sub, 0775) == 0);
	CHECK_EQ(run_daemon(cfg, out, sizeof(out)), 1);
	CHECK(strstr(out, "mode 0775 lets its group write there") != NULL);
	unlink(cfg);
	rmdir(sub);
	rmdir(dir);
}

/* Without user, group, pidfile or label, the daemon says at start that VMs are not isolated,
 * naming them. */
TEST(unisolated_vms_are_named_at_start)
{
	struct hbt_daemon d;

	hbt_daemon_start(&d, NULL);
	CHECK(strstr(hbt_daemon_log(&d), "VMs are not isolated from each other: vm1, vm2, vm3 have "
				     "no user, group, pidfile or label") != NULL);
	IT_STOP(&d);
	/* Here every VM names its QEMU one way or another: no warning. */
	start(&d);
	CHECK(strstr(hbt_daemon_log(&d), "VMs are not isolated") == NULL);
	IT_STOP(&d);
}

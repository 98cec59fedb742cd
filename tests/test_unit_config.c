/*
 * Unit tests of the daemon's config code (daemon/config*.c) and common/log.c: the config is
 * parsed in memory (or from a temp file), never by a running daemon.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/cred.h"
#include "daemon/config.h"
#include "common/log.h"
#include "tests/harness.h"

/* Relative paths in the in-memory configs resolve against this folder, which does not exist:
 * the loader then uses it as written. */
#define BASE "/hbt-base/conf"

static char err[512];

static struct hbc_config *load(const char *text)
{
	err[0] = '\0';
	return hbd_config_load_string(text, BASE, err, sizeof(err));
}

/* Loads text that must be rejected with "<string>:LINE: ..." mentioning needle. */
#define FAILS(text, line, needle) fails_at(__FILE__, __LINE__, text, line, needle)

static void fails_at(const char *file, int l, const char *text, unsigned line, const char *needle)
{
	struct hbc_config *c = load(text);
	char prefix[64];

	if (c) {
		hbc_config_free(c);
		hbt_fail(file, l, "config loaded; want an error at line %u mentioning '%s'", line,
			 needle);
	}
	if (errno != EINVAL)
		hbt_fail(file, l, "errno %d, want EINVAL", errno);
	snprintf(prefix, sizeof(prefix), "<string>:%u: ", line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, needle))
		hbt_fail(file, l, "error '%s', want '%s...%s...'", err, prefix, needle);
}

static bool xen_dom0(void)
{
	char buf[256] = "";
	FILE *f = fopen("/proc/xen/capabilities", "r");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strstr(buf, "control_d") != NULL;
}

/* The standard test topology of tests/util.h, with every key set. */
static const char standard[] = "; the standard topology\n"
			       "[daemon]\n"
			       "backend = kvm\n"
			       "socket = host.sock\n"
			       "log = debug ; inline comment\n"
			       "\n"
			       "[limits]\n"
			       "exports_per_domain = 8\n"
			       "pages_per_domain = 4096\n"
			       "event_queue = 32\n"
			       "meta_max = 4096\n"
			       "timelines_per_domain = 3\n"
			       "fence_waits_per_domain = 77\n"
			       "\n"
			       "[vm vm1]\n"
			       "id = 1\n"
			       "channel = vm1.sock\n"
			       "[vm vm2]\n"
			       "  id = 2\n"
			       "  channel = vm2.sock\n"
			       "[vm vm3]\n"
			       "id = 2147483648\n"
			       "channel = /run/x/vm3.sock\n"
			       "\n"
			       "[group a]\n"
			       "members = host, vm1\n"
			       "size = 64M\n"
			       "ivshmem = group-a.sock\n"
			       "[group b]\n"
			       "members = vm1,vm2\n"
			       "size = 128M\n"
			       "ivshmem = group-b.sock\n"
			       "vectors = 4\n"
			       "[group c]\n"
			       "members = vm2 , vm3\n"
			       "size = 16M\n"
			       "ivshmem = group-c.sock\n";

TEST(standard_config)
{
	struct hbc_config *c = load(standard);

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->backend, HBC_BACKEND_KVM);
	CHECK(strcmp(c->socket, BASE "/host.sock") == 0);
	CHECK_EQ(c->log_level, HBC_LOG_DEBUG);
	CHECK_EQ(c->exports_per_domain, 8);
	CHECK_EQ(c->pages_per_domain, 4096);
	CHECK_EQ(c->event_queue, 32);
	CHECK_EQ(c->meta_max, 4096);
	CHECK_EQ(c->timelines_per_domain, 3);
	CHECK_EQ(c->fence_waits_per_domain, 77);

	CHECK_EQ(c->n_vms, 3);
	CHECK(strcmp(c->vms[0].name, "vm1") == 0);
	CHECK_EQ(c->vms[0].id, 1);
	CHECK(strcmp(c->vms[0].channel, BASE "/vm1.sock") == 0);
	CHECK(strcmp(c->vms[1].name, "vm2") == 0);
	CHECK_EQ(c->vms[1].id, 2);
	CHECK(strcmp(c->vms[1].channel, BASE "/vm2.sock") == 0);
	CHECK_EQ(c->vms[2].id, 2147483648u);
	CHECK(strcmp(c->vms[2].channel, "/run/x/vm3.sock") == 0);

	CHECK_EQ(c->n_groups, 3);
	CHECK(strcmp(c->groups[0].name, "a") == 0);
	CHECK_EQ(c->groups[0].id, 1);
	CHECK_EQ(c->groups[0].n_members, 2);
	CHECK_EQ(c->groups[0].members[0], 0);
	CHECK_EQ(c->groups[0].members[1], 1);
	CHECK_EQ(c->groups[0].size, 64ull << 20);
	CHECK(strcmp(c->groups[0].ivshmem, BASE "/group-a.sock") == 0);
	CHECK_EQ(c->groups[0].vectors, 1);
	CHECK_EQ(c->groups[1].id, 2);
	CHECK_EQ(c->groups[1].members[0], 1);
	CHECK_EQ(c->groups[1].members[1], 2);
	CHECK_EQ(c->groups[1].size, 128ull << 20);
	CHECK_EQ(c->groups[1].vectors, 4);
	CHECK_EQ(c->groups[2].id, 3);
	CHECK_EQ(c->groups[2].members[1], 2147483648u);
	CHECK_EQ(c->groups[2].size, 16ull << 20);

	CHECK(!c->xen_all_domains);
	CHECK_EQ(c->n_xen_domains, 0);

	CHECK(strcmp(hbc_config_domain_name(c, 0), "host") == 0);
	CHECK(strcmp(hbc_config_domain_name(c, 2), "vm2") == 0);
	CHECK(hbc_config_domain_name(c, 7) == NULL);
	CHECK(hbc_config_vm_by_id(c, 1) == &c->vms[0]);
	CHECK(hbc_config_vm_by_id(c, 0) == NULL);
	hbc_config_free(c);
}

TEST(defaults)
{
	struct hbc_config *c = load("[daemon]\nbackend = kvm\n");

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->backend, HBC_BACKEND_KVM);
	CHECK(strcmp(c->socket, "/run/hyperbuf/hyperbufd.sock") == 0);
	CHECK_EQ(c->log_level, HBC_LOG_INFO);
	CHECK_EQ(c->exports_per_domain, 4096);
	CHECK_EQ(c->pages_per_domain, 1048576);
	CHECK_EQ(c->event_queue, 256);
	CHECK_EQ(c->meta_max, 4096); /* HB_META_MAX */
	CHECK_EQ(c->timelines_per_domain, 1024);
	CHECK_EQ(c->fence_waits_per_domain, 65536);
	CHECK_EQ(c->imports_per_domain, 65536);
	CHECK_EQ(c->sessions_per_domain, 64);
	CHECK_EQ(c->n_vms, 0);
	CHECK_EQ(c->n_groups, 0);
	hbc_config_free(c);

	/* Group defaults: 64M, one vector. */
	c = load("[vm v]\nid = 5\nchannel = v.sock\n"
		 "[group g]\nmembers = host, v\nivshmem = g.sock\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->groups[0].size, 64ull << 20);
	CHECK_EQ(c->groups[0].vectors, 1);
	hbc_config_free(c);
}

TEST(backend_auto)
{
	enum hbc_backend_kind want = xen_dom0() ? HBC_BACKEND_XEN : HBC_BACKEND_KVM;
	struct hbc_config *c;

	c = load("");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->backend, want);
	hbc_config_free(c);

	c = load("[daemon]\nbackend = auto\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->backend, want);
	hbc_config_free(c);

	c = load("[daemon]\nbackend = xen\n[xen]\ndomains = 3, 5,7\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->backend, HBC_BACKEND_XEN);
	CHECK(!c->xen_all_domains);
	CHECK_EQ(c->n_xen_domains, 3);
	CHECK_EQ(c->xen_domains[0], 3);
	CHECK_EQ(c->xen_domains[2], 7);
	hbc_config_free(c);

	c = load("[daemon]\nbackend = xen\n[xen]\ndomains = all\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(c->xen_all_domains);
	CHECK_EQ(c->xen_grant_budget, 0);
	CHECK_EQ(c->xen_maptrack_budget, 0);
	hbc_config_free(c);

	c = load("[daemon]\nbackend = xen\n[xen]\ngrant_budget = 30000\nmaptrack_budget = 17000\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->xen_grant_budget, 30000);
	CHECK_EQ(c->xen_maptrack_budget, 17000);
	CHECK(!c->xen_all_domains);
	hbc_config_free(c);
}

TEST(embedded_default)
{
	struct hbc_config *c = hbd_config_load_string(hbd_config_default_text, "/", err, sizeof(err));

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(strcmp(c->socket, "/run/hyperbuf/hyperbufd.sock") == 0);
	CHECK_EQ(c->backend, xen_dom0() ? HBC_BACKEND_XEN : HBC_BACKEND_KVM);
	CHECK_EQ(c->n_vms, 0);
	CHECK_EQ(c->n_groups, 0);
	CHECK_EQ(c->log_level, HBC_LOG_INFO);
	hbc_config_free(c);
}

TEST(error_unknown_key_and_section)
{
	FAILS("[daemon]\nbackend = kvm\nfoo = 1\n", 3, "unknown key 'foo' in [daemon]");
	FAILS("[vm a]\nid = 1\nchanel = a.sock\n", 3, "unknown key 'chanel' in [vm a]");
	FAILS("[daemon]\n\n[bogus]\n", 3, "unknown section [bogus]");
	FAILS("[vms a]\nid = 1\n", 1, "unknown section [vms a]");
	FAILS("[daemon x]\n", 1, "[daemon] takes no name");
	FAILS("[vm]\n", 1, "needs a name");
	FAILS("[daemon\n", 1, "without ']'");
	FAILS("[daemon] junk\n", 1, "after ']'");
	FAILS("socket = a.sock\n", 1, "outside any section");
	FAILS("[daemon]\nbackend\n", 2, "expected 'key = value'");
	FAILS("[daemon]\nlog = info\nlog = debug\n", 3, "duplicate key 'log' in [daemon]");
	FAILS("[limits]\n[daemon]\n[limits]\n", 3, "duplicate section [limits] (first at line 1)");
	FAILS("[daemon]\nbackend = hyperv\n", 2, "must be kvm, xen or auto");
	FAILS("[daemon]\nlog = loud\n", 2, "must be error, warn, info or debug");
	/* Case matters for keys. */
	FAILS("[daemon]\nSocket = a.sock\n", 2, "unknown key 'Socket'");
}

TEST(error_numbers)
{
	FAILS("[limits]\nevent_queue = 12x\n", 2, "not a number");
	FAILS("[limits]\nevent_queue = -16\n", 2, "not a number");
	FAILS("[limits]\nevent_queue = 0x20\n", 2, "not a number");
	FAILS("[limits]\nevent_queue =\n", 2, "not a number");
	FAILS("[limits]\nevent_queue = 99999999999999999999999\n", 2, "not a number");
	FAILS("[limits]\nevent_queue = 8\n", 2, "out of range (16..65536)");
	FAILS("[limits]\nevent_queue = 65537\n", 2, "out of range");
	FAILS("[limits]\nmeta_max = 512\n", 2, "out of range (1024..4096)");
	FAILS("[limits]\nmeta_max = 4097\n", 2, "out of range");
	FAILS("[limits]\nexports_per_domain = 0\n", 2, "out of range (1..1000000)");
	FAILS("[limits]\nexports_per_domain = 1000001\n", 2, "out of range");
	FAILS("[limits]\npages_per_domain = 0\n", 2, "at least 1");
	FAILS("[limits]\nimports_per_domain = 0\n", 2, "out of range (1..1000000)");
	FAILS("[limits]\nsessions_per_domain = 1025\n", 2, "out of range (1..1024)");
}

/* The control socket's mode and the socket folders' mode: defaults, set, refused. */
TEST(socket_modes)
{
	struct hbc_config *c = load("[daemon]\nbackend = kvm\n");

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->control_mode, 0600);
	CHECK_EQ(c->socket_dir_mode, 0755);
	hbc_config_free(c);
	c = load("[daemon]\ncontrol_group = root\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->control_mode, 0660); /* a group is named: it may use the socket */
	hbc_config_free(c);
	c = load("[daemon]\ncontrol_mode = 0640\nsocket_dir_mode = 0750\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->control_mode, 0640);
	CHECK_EQ(c->socket_dir_mode, 0750);
	hbc_config_free(c);
	FAILS("[daemon]\nsocket_dir_mode = 0775\n", 2, "writable by its owner only");
	FAILS("[daemon]\ncontrol_mode = 9\n", 2, "control_mode");
}

/* The fence bounds: both at their edges, both rejected one past them. */
TEST(fence_limits)
{
	struct hbc_config *c = load("[limits]\ntimelines_per_domain = 1\n"
				   "fence_waits_per_domain = 16777216\n");

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->timelines_per_domain, 1);
	CHECK_EQ(c->fence_waits_per_domain, 16777216);
	hbc_config_free(c);
	c = load("[limits]\ntimelines_per_domain = 1000000\nfence_waits_per_domain = 1\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->timelines_per_domain, 1000000);
	CHECK_EQ(c->fence_waits_per_domain, 1);
	hbc_config_free(c);
	FAILS("[limits]\ntimelines_per_domain = 0\n", 2, "out of range (1..1000000)");
	FAILS("[limits]\ntimelines_per_domain = 1000001\n", 2, "out of range");
	FAILS("[limits]\ntimelines_per_domain = -1\n", 2, "not a number");
	FAILS("[limits]\nfence_waits_per_domain = 0\n", 2, "out of range (1..16777216)");
	FAILS("[limits]\nfence_waits_per_domain = 16777217\n", 2, "out of range");
	FAILS("[limits]\nfence_waits_per_domain = 1k\n", 2, "not a number");
	FAILS("[daemon]\ntimelines_per_domain = 5\n", 2, "unknown");
	FAILS("[vm a]\nid = 0\nchannel = a.sock\n", 2, "out of range (1..2147483648)");
	FAILS("[vm a]\nid = 2147483649\nchannel = a.sock\n", 2, "out of range");
	FAILS("[vm a]\nid = 1\nchannel = a\n[vm b]\nid = 2\nchannel = b\n"
	      "[group g]\nmembers = a, b\nivshmem = g\nvectors = 0\n",
	      10, "out of range (1..64)");
	FAILS("[vm a]\nid = 1\nchannel = a\n[vm b]\nid = 2\nchannel = b\n"
	      "[group g]\nmembers = a, b\nivshmem = g\nvectors = 65\n",
	      10, "out of range");
}

TEST(error_group_size)
{
	static const char head[] =
	    "[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host, a\n"
	    "ivshmem = g.sock\n";
	char text[512];
	struct hbc_config *c;

	snprintf(text, sizeof(text), "%ssize = 96M\n", head);
	FAILS(text, 7, "not a power of two");
	snprintf(text, sizeof(text), "%ssize = 100000\n", head);
	FAILS(text, 7, "not a power of two");
	snprintf(text, sizeof(text), "%ssize = 32K\n", head);
	FAILS(text, 7, "out of range (64K..64G)");
	snprintf(text, sizeof(text), "%ssize = 128G\n", head);
	FAILS(text, 7, "out of range");
	snprintf(text, sizeof(text), "%ssize = 64X\n", head);
	FAILS(text, 7, "not a size");
	snprintf(text, sizeof(text), "%ssize = M\n", head);
	FAILS(text, 7, "not a size");
	snprintf(text, sizeof(text), "%ssize = 99999999999999G\n", head);
	FAILS(text, 7, "not a size");

	snprintf(text, sizeof(text), "%ssize = 64k\n", head);
	c = load(text);
	CHECK(c != NULL);
	CHECK_EQ(c->groups[0].size, 65536);
	hbc_config_free(c);
	snprintf(text, sizeof(text), "%ssize = 64G\n", head);
	c = load(text);
	CHECK(c != NULL);
	CHECK_EQ(c->groups[0].size, 64ull << 30);
	hbc_config_free(c);
	snprintf(text, sizeof(text), "%ssize = 1048576\n", head);
	c = load(text);
	CHECK(c != NULL);
	CHECK_EQ(c->groups[0].size, 1048576);
	hbc_config_free(c);
}

TEST(error_duplicates)
{
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[vm b]\nid = 1\nchannel = b.sock\n", 5,
	      "id 1 is already the id of [vm a] (line 2)");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[vm a]\nid = 2\nchannel = b.sock\n", 4,
	      "duplicate [vm a] (first at line 1)");
	FAILS("[vm a]\nid = 1\nchannel = a\n[vm b]\nid = 2\nchannel = b\n"
	      "[group g]\nmembers = a, b\nivshmem = g\n[group g]\nmembers = a, b\nivshmem = h\n",
	      10, "duplicate [group g]");
	/* Two sockets on one path: binding the second would unlink the first. */
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[vm b]\nid = 2\nchannel = ./a.sock\n", 6,
	      "[vm b] uses the path " BASE "/a.sock, as [vm a] does");
	FAILS("[daemon]\nsocket = /run/h.sock\n[vm a]\nid = 1\nchannel = /run/h.sock\n", 5,
	      "as [daemon] socket does");
	FAILS("[vm a]\nid = 1\nchannel = a\n[vm b]\nid = 2\nchannel = b\n"
	      "[group g]\nmembers = a, b\nivshmem = a\n",
	      9, "[group g] uses the path");
	FAILS("[daemon]\nbackend = xen\n[xen]\ndomains = 3, 4, 3\n", 4, "3 is listed twice");
}

TEST(error_members)
{
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host, vm9\nivshmem = g\n", 5,
	      "unknown member 'vm9'");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = a\nivshmem = g\n", 5,
	      "at least 2 members");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host, a, host\nivshmem = g\n",
	      5, "'host' is listed twice");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host,,a\nivshmem = g\n", 5,
	      "empty name");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers =\nivshmem = g\n", 5,
	      "empty name");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nivshmem = g\n", 4,
	      "[group g]: members is required");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host, a\n", 4,
	      "[group g]: ivshmem is required");
}

TEST(error_required_and_names)
{
	FAILS("[vm a]\nid = 1\n", 1, "[vm a]: channel is required");
	FAILS("[daemon]\n[vm a]\nchannel = a.sock\n", 2, "[vm a]: id is required");
	/* An empty section still exists (inih alone would never mention it). */
	FAILS("[vm a]\n", 1, "[vm a]: id is required");
	FAILS("[vm host]\nid = 1\nchannel = a\n", 1, "cannot name a VM");
	FAILS("[vm a/b]\nid = 1\nchannel = a\n", 1, "a name is 1 to 63");
	FAILS("[vm a,b]\nid = 1\nchannel = a\n", 1, "a name is");
	FAILS("[group abcdefghijabcdefghijabcdefghijab]\n", 1, "a name is 1 to 31");
	/* vm vs backend */
	FAILS("[daemon]\nbackend = xen\n[vm a]\nid = 1\nchannel = a\n", 3,
	      "need the kvm backend, and the backend is xen");
	FAILS("[daemon]\nbackend = kvm\n[xen]\ndomains = all\n", 3, "[xen] needs the xen backend");
	FAILS("[daemon]\nbackend = xen\n[xen]\ndomains = all, 3\n", 4, "must stand alone");
	FAILS("[daemon]\nbackend = xen\n[xen]\ngrant_budget = lots\n", 4, "not a number");
	FAILS("[daemon]\nbackend = xen\n[xen]\nmaptrack_budget = 5000000000\n", 4, "maptrack_budget");
	FAILS("[daemon]\nbackend = xen\n[xen]\ndomains = 0\n", 4, "not a guest domid");
	FAILS("[daemon]\nbackend = xen\n[xen]\ndomains = 3 4\n", 4, "not a guest domid");
}

/* ports = N: one channel socket per virtio-serial port, told apart by {port}. */
TEST(vm_ports)
{
	struct hbc_config *c = load("[vm desk]\n"
				   "id = 1\n"
				   "channel = run/desk-{port}.sock\n"
				   "ports = 3\n"
				   "[vm one]\n"
				   "id = 2\n"
				   "channel = one.sock\n"
				   "[vm tmpl]\n"
				   "id = 3\n"
				   "channel = t{port}/{port}.sock\n"
				   "ports = 64\n");
	char out[HBC_SUN_PATH_MAX];

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->vms[0].ports, 3);
	CHECK(strcmp(c->vms[0].channel, BASE "/run/desk-{port}.sock") == 0);
	CHECK_EQ(hbc_config_channel_path(&c->vms[0], 0, out), 0);
	CHECK(strcmp(out, BASE "/run/desk-0.sock") == 0);
	CHECK_EQ(hbc_config_channel_path(&c->vms[0], 2, out), 0);
	CHECK(strcmp(out, BASE "/run/desk-2.sock") == 0);
	/* The default is one port; a path without {port} is used as written. */
	CHECK_EQ(c->vms[1].ports, 1);
	CHECK_EQ(hbc_config_channel_path(&c->vms[1], 0, out), 0);
	CHECK(strcmp(out, BASE "/one.sock") == 0);
	/* Every occurrence is replaced. */
	CHECK_EQ(hbc_config_channel_path(&c->vms[2], 63, out), 0);
	CHECK(strcmp(out, BASE "/t63/63.sock") == 0);
	hbc_config_free(c);

	FAILS("[vm a]\nid = 1\nchannel = a.sock\nports = 2\n", 4,
	      "[vm a]: ports = 2 needs {port} in channel");
	FAILS("[vm a]\nid = 1\nchannel = a{port}\nports = 0\n", 4, "out of range (1..64)");
	FAILS("[vm a]\nid = 1\nchannel = a{port}\nports = 65\n", 4, "out of range (1..64)");
	FAILS("[vm a]\nid = 1\nchannel = a{Port}.sock\n", 3,
	      "{port} is the only placeholder channel knows");
	FAILS("[vm a]\nid = 1\nchannel = a{vm}.sock\n", 3, "only placeholder channel knows");
	/* Expanded sockets clash like written ones. */
	FAILS("[vm a]\nid = 1\nchannel = c{port}\nports = 2\n[vm b]\nid = 2\nchannel = c1\n", 7,
	      "[vm b] uses the path " BASE "/c1, as [vm a] port 1 does");
}

/* {vm} in a group's ivshmem path: one socket per member VM, so the daemon knows which QEMU
 * is which VM from the socket it connected to. */
TEST(group_ivshmem_per_vm)
{
	struct hbc_config *c = load("[vm a]\nid = 1\nchannel = a.sock\n"
				   "[vm bb]\nid = 2\nchannel = b.sock\n"
				   "[group g]\nmembers = host, a, bb\nivshmem = g-{vm}.sock\n"
				   "[group h]\nmembers = a, bb\nivshmem = h.sock\n");
	char out[HBC_SUN_PATH_MAX];

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(c->groups[0].ivshmem_per_vm);
	CHECK_EQ(hbc_config_ivshmem_path(&c->groups[0], &c->vms[0], out), 0);
	CHECK(strcmp(out, BASE "/g-a.sock") == 0);
	CHECK_EQ(hbc_config_ivshmem_path(&c->groups[0], &c->vms[1], out), 0);
	CHECK(strcmp(out, BASE "/g-bb.sock") == 0);
	CHECK(!c->groups[1].ivshmem_per_vm);
	CHECK_EQ(hbc_config_ivshmem_path(&c->groups[1], &c->vms[1], out), 0);
	CHECK(strcmp(out, BASE "/h.sock") == 0);
	hbc_config_free(c);

	FAILS("[vm a]\nid = 1\nchannel = a.sock\n[group g]\nmembers = host, a\n"
	      "ivshmem = g{port}\n",
	      6, "{vm} is the only placeholder ivshmem knows");
	/* A VM's socket of one group must not be another socket. */
	FAILS("[vm a]\nid = 1\nchannel = g-a\n[group g]\nmembers = host, a\nivshmem = g-{vm}\n", 6,
	      "[group g] for vm a uses the path " BASE "/g-a, as [vm a] does");
	FAILS(
	    "[vm a]\nid = 1\nchannel = a\n[vm b]\nid = 2\nchannel = b\n"
	    "[group g]\nmembers = a, b\nivshmem = x{vm}\n[group h]\nmembers = a, b\nivshmem = xb\n",
	    12, "[group h] uses the path " BASE "/xb, as [group g] for vm b does");
}

/* {vm} grows a path (a name is up to 63 bytes): every expansion must still fit a socket
 * address. ({port} never grows one: a number is shorter than the placeholder.) */
TEST(placeholder_path_too_long)
{
	char text[1024], name[128], vm[64];

	memset(vm, 'v', 40);
	vm[40] = '\0';
	memset(name, 'g', 70);
	name[70] = '\0';
	snprintf(text, sizeof(text),
		 "[vm %s]\nid = 1\nchannel = a\n[group g]\nmembers = host, %s\n"
		 "ivshmem = /%s{vm}\n",
		 vm, vm, name);
	FAILS(text, 6, "for vm vvvv");
	CHECK(strstr(err, "is longer than a socket path (107 bytes)") != NULL);
}

TEST(group_before_vm)
{
	struct hbc_config *c = load("[group early]\n"
				   "members = host, late, later\n"
				   "ivshmem = early.sock\n"
				   "[group second]\n"
				   "members = late, later\n"
				   "ivshmem = second.sock\n"
				   "[vm late]\n"
				   "id = 7\n"
				   "channel = late.sock\n"
				   "[vm later]\n"
				   "id = 9\n"
				   "channel = later.sock\n");

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->n_groups, 2);
	CHECK_EQ(c->groups[0].id, 1);
	CHECK_EQ(c->groups[0].n_members, 3);
	CHECK_EQ(c->groups[0].members[0], 0);
	CHECK_EQ(c->groups[0].members[1], 7);
	CHECK_EQ(c->groups[0].members[2], 9);
	CHECK_EQ(c->groups[1].id, 2);
	CHECK_EQ(c->groups[1].members[0], 7);
	hbc_config_free(c);
}

TEST(path_too_long)
{
	char text[512], name[200];

	/* 1 + 106 = 107 bytes fits exactly; 108 does not. (The control socket, beside the host
	 * socket by default, needs a shorter home then.) */
	memset(name, 'x', 106);
	name[106] = '\0';
	snprintf(text, sizeof(text), "[daemon]\nbackend = kvm\nsocket = /%s\ncontrol = /c.sock\n",
		 name);
	struct hbc_config *c = load(text);
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(strlen(c->socket), 107);
	hbc_config_free(c);

	snprintf(text, sizeof(text), "[daemon]\nbackend = kvm\nsocket = /%sy\n", name);
	FAILS(text, 3, "is 108 bytes long; a socket path holds at most 107");

	/* Relative: the base folder counts. */
	memset(name, 'r', 100);
	name[100] = '\0';
	snprintf(text, sizeof(text), "[vm a]\nid = 1\nchannel = %s\n", name);
	FAILS(text, 3, "channel = rrrr");
	CHECK(strstr(err, ": " BASE "/rrrr") != NULL);
	CHECK(strstr(err, "bytes long; a socket path holds at most 107") != NULL);
}

TEST(line_too_long)
{
	char text[1024], name[600];

	memset(name, 'x', 500);
	name[500] = '\0';
	snprintf(text, sizeof(text), "[daemon]\nbackend = kvm\n; %s\nsocket = a\n", name);
	FAILS(text, 3, "line too long");
}

/* Who a VM's QEMU is, how many connections it may have, a member's share of a pool, who owns
 * the host socket, and the host's per-user limits (docs/SECURITY.md). */
TEST(isolation_keys)
{
	struct hbc_config *c = load("[daemon]\nbackend = kvm\nsocket = /run/h/hb.sock\n"
				    "socket_user = 0\nsocket_group = 0\nsocket_mode = 0640\n"
				    "control_group = 0\n"
				    "[limits]\nsessions_per_uid = 5\npending_per_uid = 3\n"
				    "hello_timeout_ms = 1500\n"
				    "[vm a]\nid = 1\nchannel = /run/h/a.sock\nuser = 61001\n"
				    "group = 61002\npidfile = /run/h/a.pid\nlabel = svirt_t:c1,c2\n"
				    "ivshmem_connections = 2\n"
				    "[vm b]\nid = 2\nchannel = /run/h/b.sock\n"
				    "[group g]\nmembers = a, b\nsize = 1M\nivshmem = /run/h/g-{vm}.sock\n"
				    "share = 70%\n");

	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->socket_uid, 0);
	CHECK_EQ(c->socket_gid, 0);
	CHECK_EQ(c->socket_mode, 0640);
	CHECK_EQ(c->control_gid, 0);
	CHECK(strcmp(c->control, "/run/h/hb-control.sock") == 0);
	CHECK_EQ(c->sessions_per_uid, 5);
	CHECK_EQ(c->pending_per_uid, 3);
	CHECK_EQ(c->hello_timeout_ms, 1500);
	CHECK_EQ(c->vms[0].uid, 61001);
	CHECK_EQ(c->vms[0].gid, 61002);
	CHECK_EQ(c->vms[0].sock_gid, 61002);
	CHECK(strcmp(c->vms[0].pidfile, "/run/h/a.pid") == 0);
	CHECK(strcmp(c->vms[0].label, "svirt_t:c1,c2") == 0);
	CHECK_EQ(c->vms[0].ivshmem_conns, 2);
	/* Unset: nothing checked, one ivshmem connection, an equal share. */
	CHECK_EQ(c->vms[1].uid, HBC_ID_UNSET);
	CHECK_EQ(c->vms[1].gid, HBC_ID_UNSET);
	CHECK_EQ(c->vms[1].ivshmem_conns, 1);
	CHECK_EQ(c->groups[0].share_pct, 70);
	hbc_config_free(c);

	FAILS("[vm a]\nid = 1\nchannel = a.sock\nuser = no-such-user-hb\n", 4,
	      "user = no-such-user-hb: no such user");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\ngroup = no-such-group-hb\n", 4,
	      "group = no-such-group-hb: no such group");
	FAILS("[vm a]\nid = 1\nchannel = a.sock\nivshmem_connections = 0\n", 4,
	      "ivshmem_connections");
	FAILS("[daemon]\nsocket_mode = 0999\n", 2, "socket_mode = 0999: not a mode");
	FAILS("[group g]\nshare = 0%\n", 2, "share = 0%: not a percentage from 1% to 100%");
	FAILS("[group g]\nshare = 101\n", 2, "share = 101: not a percentage");
	FAILS("[limits]\nhello_timeout_ms = 10\n", 2, "hello_timeout_ms");
}

TEST(relative_paths)
{
	struct hbc_config *c;

	c = load("[daemon]\nbackend = kvm\nsocket = ./a.sock\n"
		 "[vm a]\nid = 1\nchannel = ../run/a.sock\n"
		 "[vm b]\nid = 2\nchannel = ../../../../b.sock\n"
		 "[vm c]\nid = 3\nchannel = sub/../c.sock\n"
		 "[vm d]\nid = 4\nchannel = /abs/d.sock\n");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(strcmp(c->socket, BASE "/a.sock") == 0);
	CHECK(strcmp(c->vms[0].channel, "/hbt-base/run/a.sock") == 0);
	CHECK(strcmp(c->vms[1].channel, "/b.sock") == 0);
	/* ".." after a named folder stays: that folder might be a symlink. */
	CHECK(strcmp(c->vms[2].channel, BASE "/sub/../c.sock") == 0);
	CHECK(strcmp(c->vms[3].channel, "/abs/d.sock") == 0);
	hbc_config_free(c);

	/* A trailing '/' on the base does not double. */
	c = hbd_config_load_string("[daemon]\nbackend = kvm\nsocket = s\n", "/hbt-base/x//", err,
				  sizeof(err));
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(strcmp(c->socket, "/hbt-base/x/s") == 0);
	hbc_config_free(c);
}

/* Writes text into dir/name; returns the path (static). */
static const char *write_file(const char *dir, const char *name, const char *text, size_t len)
{
	static char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return path;
}

TEST(load_file_relative_to_its_folder)
{
	static const char text[] = "[daemon]\nbackend = kvm\nsocket = host.sock\n"
				   "[vm a]\nid = 1\nchannel = ../up.sock\n";
	char tmpl[] = "/tmp/hbt-config.XXXXXX", *dir, *real, want[700], *parent;
	struct hbc_config *c;
	const char *path;

	dir = mkdtemp(tmpl);
	CHECK(dir != NULL);
	CHECK(mkdir(strcat(strcpy(want, dir), "/etc"), 0700) == 0);
	path = write_file(want, "hyperbufd.conf", text, strlen(text));
	c = hbd_config_load_file(path, err, sizeof(err));
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	real = realpath(dir, NULL);
	CHECK(real != NULL);
	snprintf(want, sizeof(want), "%s/etc/host.sock", real);
	CHECK(strcmp(c->socket, want) == 0);
	snprintf(want, sizeof(want), "%s/up.sock", real);
	CHECK(strcmp(c->vms[0].channel, want) == 0);
	hbc_config_free(c);

	/* Errors name the file. */
	path = write_file(dir, "bad.conf", "[daemon]\nnope = 1\n", 18);
	c = hbd_config_load_file(path, err, sizeof(err));
	CHECK(c == NULL);
	snprintf(want, sizeof(want), "%s:2: unknown key 'nope'", path);
	CHECK(strncmp(err, want, strlen(want)) == 0);

	path = write_file(dir, "nul.conf", "[daemon]\n\0x = 1\n", 15);
	c = hbd_config_load_file(path, err, sizeof(err));
	CHECK(c == NULL);
	CHECK(strstr(err, "NUL byte") != NULL);

	snprintf(want, sizeof(want), "%s/absent.conf", dir);
	errno = 0;
	c = hbd_config_load_file(want, err, sizeof(err));
	CHECK(c == NULL);
	CHECK_EQ(errno, ENOENT);
	CHECK(strstr(err, "absent.conf: cannot open") != NULL);

	/* A relative path to the config file works too. */
	parent = strdup(real);
	CHECK(chdir(dirname(parent)) == 0);
	snprintf(want, sizeof(want), "%s/etc/hyperbufd.conf", strrchr(real, '/') + 1);
	c = hbd_config_load_file(want, err, sizeof(err));
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	snprintf(want, sizeof(want), "%s/etc/host.sock", real);
	CHECK(strcmp(c->socket, want) == 0);
	hbc_config_free(c);

	snprintf(want, sizeof(want), "rm -rf '%s'", real);
	CHECK(system(want) == 0);
	free(parent);
	free(real);
}

TEST(shipped_configs)
{
	struct hbc_config *c;

	c = hbd_config_load_file("configs/local.conf", err, sizeof(err));
	if (!c && errno == ENOENT)
		SKIP("configs/local.conf not found (run from the source tree)");
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK_EQ(c->n_vms, 2);
	CHECK_EQ(c->n_groups, 2);
	CHECK_EQ(c->groups[0].size, 64ull << 20);
	CHECK_EQ(c->groups[1].size, 128ull << 20);
	CHECK(strstr(c->socket, "/build/run/hyperbufd.sock") != NULL);
	CHECK(strstr(c->socket, "..") == NULL);
	hbc_config_free(c);

	c = hbd_config_load_file("configs/kvm.conf", err, sizeof(err));
	if (!c)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	CHECK(c->n_groups > 0);
	/* The example isolates its VMs: every one names its QEMU. */
	for (unsigned i = 0; i < c->n_vms; i++)
		CHECK(hbc_vm_has_cred(&c->vms[i]));
	hbc_config_free(c);
}

/* Reloads (daemon/config_reload.c): a running config and the next one, both loaded from text.
 * Whatever hbd_config_reload() returns, the log level and every [limits] value come from next,
 * and the rest stays as it was. */
#define RELOAD_DAEMON "[daemon]\nbackend = kvm\nsocket = host.sock\n"
#define RELOAD_VM     "[vm vm1]\nid = 1\nchannel = vm1.sock\n"
#define RELOAD_GROUP  "[group a]\nmembers = host, vm1\nivshmem = a.sock\n"
#define RELOAD_LIMITS                                                                              \
	"[limits]\nexports_per_domain = 5\npages_per_domain = 6\nevent_queue = 17\n"               \
	"meta_max = 2048\ntimelines_per_domain = 7\nfence_waits_per_domain = 8\n"                  \
	"imports_per_domain = 9\nsessions_per_domain = 10\nsessions_per_uid = 11\n"            \
	"pending_per_uid = 3\nhello_timeout_ms = 700\n"

static int reload(const char *running_text, const char *next_text, char *what, size_t len)
{
	struct hbc_config *running = load(running_text), *before = load(running_text), *next;
	int r;

	if (!running || !before)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	next = load(next_text);
	if (!next)
		hbt_fail(__FILE__, __LINE__, "%s", err);
	r = hbd_config_reload(running, next, what, len);

	CHECK_EQ(running->log_level, next->log_level);
	CHECK_EQ(running->exports_per_domain, next->exports_per_domain);
	CHECK_EQ(running->pages_per_domain, next->pages_per_domain);
	CHECK_EQ(running->event_queue, next->event_queue);
	CHECK_EQ(running->meta_max, next->meta_max);
	CHECK_EQ(running->timelines_per_domain, next->timelines_per_domain);
	CHECK_EQ(running->fence_waits_per_domain, next->fence_waits_per_domain);
	CHECK_EQ(running->imports_per_domain, next->imports_per_domain);
	CHECK_EQ(running->sessions_per_domain, next->sessions_per_domain);
	CHECK_EQ(running->sessions_per_uid, next->sessions_per_uid);
	CHECK_EQ(running->pending_per_uid, next->pending_per_uid);
	CHECK_EQ(running->hello_timeout_ms, next->hello_timeout_ms);

	CHECK_EQ(running->backend, before->backend);
	CHECK(strcmp(running->socket, before->socket) == 0);
	CHECK_EQ(running->n_vms, before->n_vms);
	CHECK(memcmp(running->vms, before->vms, sizeof(running->vms)) == 0);
	CHECK_EQ(running->n_groups, before->n_groups);
	CHECK(memcmp(running->groups, before->groups, sizeof(running->groups)) == 0);
	hbc_config_free(next);
	hbc_config_free(before);
	hbc_config_free(running);
	return r;
}

TEST(reload_applies_log_level_and_limits)
{
	char what[128] = "unset";

	CHECK_EQ(reload(RELOAD_DAEMON RELOAD_VM RELOAD_GROUP,
			RELOAD_DAEMON "log = warn\n" RELOAD_VM RELOAD_GROUP RELOAD_LIMITS, what,
			sizeof(what)),
		 0);
	CHECK_EQ(what[0], '\0');
}

TEST(reload_reports_what_needs_a_restart)
{
	/* Each changes one thing fixed until a restart, and the [limits]. */
	static const char *const next[] = {
	    /* vm1's id */
	    RELOAD_DAEMON "[vm vm1]\nid = 2\nchannel = vm1.sock\n" RELOAD_GROUP RELOAD_LIMITS,
	    /* vm1's channel */
	    RELOAD_DAEMON "[vm vm1]\nid = 1\nchannel = other.sock\n" RELOAD_GROUP RELOAD_LIMITS,
	    /* one [vm] more */
	    RELOAD_DAEMON RELOAD_VM RELOAD_GROUP
	    "[vm vm2]\nid = 2\nchannel = vm2.sock\n" RELOAD_LIMITS,
	    /* one [group] less */
	    RELOAD_DAEMON RELOAD_VM RELOAD_LIMITS,
	    /* the group's size */
	    RELOAD_DAEMON RELOAD_VM
	    "[group a]\nmembers = host, vm1\nsize = 128M\nivshmem = a.sock\n" RELOAD_LIMITS,
	    /* the host socket */
	    "[daemon]\nbackend = kvm\nsocket = other.sock\n" RELOAD_VM RELOAD_GROUP RELOAD_LIMITS,
	};
	char what[128];
	size_t i;

	for (i = 0; i < sizeof(next) / sizeof(next[0]); i++) {
		what[0] = '\0';
		if (reload(RELOAD_DAEMON RELOAD_VM RELOAD_GROUP, next[i], what, sizeof(what)) != 1)
			hbt_fail(__FILE__, __LINE__, "no restart reported for:\n%s", next[i]);
		CHECK(strcmp(what,
			     "[vm], [group] and [daemon] socket/backend/control changes need a restart") ==
		      0);
	}
	/* The backend, from kvm to xen (which takes no [vm] or [group]). */
	CHECK_EQ(reload("[daemon]\nbackend = kvm\n", "[daemon]\nbackend = xen\n" RELOAD_LIMITS,
			what, sizeof(what)),
		 1);
}

TEST(log_levels)
{
	CHECK_EQ(hbc_log_parse_level("error"), HBC_LOG_ERROR);
	CHECK_EQ(hbc_log_parse_level("warn"), HBC_LOG_WARN);
	CHECK_EQ(hbc_log_parse_level("warning"), HBC_LOG_WARN);
	CHECK_EQ(hbc_log_parse_level("info"), HBC_LOG_INFO);
	CHECK_EQ(hbc_log_parse_level("debug"), HBC_LOG_DEBUG);
	CHECK_EQ(hbc_log_parse_level("trace"), -1);
	CHECK_EQ(hbc_log_parse_level(""), -1);
	CHECK(strcmp(hbc_log_level_name(HBC_LOG_WARN), "warn") == 0);
	CHECK_EQ(hbc_log_get_level(), HBC_LOG_INFO);
}

TEST(log_output)
{
	char tmpl[] = "/tmp/hbt-log.XXXXXX", buf[1024];
	int fd, saved;
	ssize_t n;

	fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	unlink(tmpl);
	saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);

	errno = EAGAIN;
	log_info("hello %d", 5);
	log_debug("not shown at info");
	log_warn("two\nlines");
	hbc_log_set_level(HBC_LOG_DEBUG);
	log_debug("shown");
	hbc_log_set_level(HBC_LOG_ERROR);
	log_warn("not shown at error");
	int e = errno;

	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	CHECK_EQ(e, EAGAIN);

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n] = '\0';
	close(fd);
	const char *want = "hyperbufd: info: hello 5\n"
			   "hyperbufd: warn: two?lines\n"
			   "hyperbufd: debug: shown (";
	if (strncmp(buf, want, strlen(want)) != 0)
		hbt_fail(__FILE__, __LINE__, "log was:\n%s", buf);
	CHECK(strstr(buf, "test_unit_config.c:") != NULL);
	CHECK(strstr(buf, "not shown") == NULL);
	CHECK(buf[n - 1] == '\n');
	CHECK(buf[n - 2] == ')');
}

/* With stderr the journal ($JOURNAL_STREAM names it), every line starts with its syslog
 * priority, so that journalctl -p err separates errors; a stderr redirected elsewhere is not
 * the journal, whatever the variable says. */
TEST(log_journal_priorities)
{
	char tmpl[] = "/tmp/hbt-log.XXXXXX", buf[1024], stream[64];
	struct stat st;
	int fd, saved;
	ssize_t n;

	fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	unlink(tmpl);
	CHECK(fstat(fd, &st) == 0);
	saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	hbc_log_set_level(HBC_LOG_DEBUG);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", stream, 1);
	log_err("e");
	log_warn("w");
	log_info("i");
	log_debug("d");
	setenv("JOURNAL_STREAM", "1:2", 1); /* another stream: not ours */
	log_err("plain");
	unsetenv("JOURNAL_STREAM");
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n] = '\0';
	close(fd);
	if (strncmp(buf, "<3>hyperbufd: error: e (", 24) != 0 ||
	    !strstr(buf, "\n<4>hyperbufd: warn: w (") || !strstr(buf, "\n<6>hyperbufd: info: i (") ||
	    !strstr(buf, "\n<7>hyperbufd: debug: d (") || !strstr(buf, "\nhyperbufd: error: plain ("))
		hbt_fail(__FILE__, __LINE__, "log was:\n%s", buf);
}

/* What the sections of make bench share (bench_util.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/bench_util.h"

int bench_place_make(struct bench_place *p, const char *name)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/hyperbuf-%s-XXXXXX", name);
	if (!mkdtemp(p->dir))
		return -errno;
	snprintf(p->config, sizeof(p->config), "%s/hyperbufd.conf", p->dir);
	snprintf(p->log, sizeof(p->log), "%s/hyperbufd.log", p->dir);
	return 0;
}

void bench_place_remove(const struct bench_place *p)
{
	char cmd[128];

	/* The folder is ours alone (mkdtemp); it holds the sockets of every VM of the run. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", p->dir);
}

uint64_t bench_cpu_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

void bench_goal(const char *what, const char *figure, const char *target, bool met)
{
	printf("    %-44s %-30s %-14s %s\n", what, figure, target, met ? "met" : "NOT MET");
}

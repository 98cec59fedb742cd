/*
 * The test harness behind tests/harness.h.
 *
 *   PROG --list   case names, one per line; "NAME SECONDS" for a case with a time limit of its
 *                 own (TEST_TIMEOUT), which run-tests.sh then uses instead of its default
 *   PROG CASE     runs one case in this process: exit 0 pass, 1 fail, 77 skip
 *   PROG          runs every case, each in a forked child (for use by hand)
 *
 * tests/run-tests.sh uses the first two, with its own timeout around each case.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"

#define HBT_MAX_CASES     512
#define HBT_EXIT_SKIP     77
#define HBT_DEFAULT_ALARM 120

struct hbt_case {
	const char *name;
	void (*fn)(void);
};

/* TEST_TIMEOUT's, by name: constructors run in no set order, so not in struct hbt_case. */
static struct {
	const char *name;
	unsigned seconds;
} timeouts[16];
static int n_timeouts;

static struct hbt_case cases[HBT_MAX_CASES];
static int n_cases;
static const char *current = "?";

/*
 * tests/util.c defines this to stop the daemons and remove the temp folders a failing case
 * leaves behind; unit tests do not link util.c, so it is weak.
 */
void hbt_cleanup_hook(void) __attribute__((weak));

void hbt_set_timeout(const char *name, unsigned seconds)
{
	if (n_timeouts >= (int)(sizeof(timeouts) / sizeof(timeouts[0]))) {
		fprintf(stderr, "harness: too many TEST_TIMEOUTs, %s dropped\n", name);
		abort();
	}
	timeouts[n_timeouts].name = name;
	timeouts[n_timeouts].seconds = seconds;
	n_timeouts++;
}

/* The case's own time limit, or 0. */
static unsigned case_timeout(const char *name)
{
	for (int i = 0; i < n_timeouts; i++) {
		if (strcmp(timeouts[i].name, name) == 0)
			return timeouts[i].seconds;
	}
	return 0;
}

void hbt_register(const char *name, void (*fn)(void))
{
	if (n_cases >= HBT_MAX_CASES) {
		fprintf(stderr, "harness: more than %d cases, %s dropped\n", HBT_MAX_CASES, name);
		abort();
	}
	cases[n_cases].name = name;
	cases[n_cases].fn = fn;
	n_cases++;
}

void hbt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "FAIL %s: %s:%d: ", current, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	if (hbt_cleanup_hook)
		hbt_cleanup_hook();
	/* _exit: a failed case is over; leak reports about what it held would only bury the
	 * message above. */
	_exit(1);
}

void hbt_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	fflush(stderr);
	if (hbt_cleanup_hook)
		hbt_cleanup_hook();
	/* _exit, so the leak checker cannot turn a skip half-way through a case into a failure. */
	_exit(HBT_EXIT_SKIP);
}

static void put_str(int fd, const char *s)
{
	ssize_t r;

	while (*s) {
		r = write(fd, s, strlen(s));
		if (r <= 0)
			return;
		s += r;
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	/* Only async-signal-safe calls here. Daemons the case started die with it
	 * (PR_SET_PDEATHSIG in tests/util.c). */
	put_str(STDERR_FILENO, "FAIL ");
	put_str(STDERR_FILENO, current);
	put_str(STDERR_FILENO, ": timed out (harness alarm)\n");
	_exit(1);
}

/*
 * Every case starts with a safety-net alarm so a hang fails that case even without
 * run-tests.sh around it. HBT_ALARM overrides the seconds (0: none); a case that legitimately
 * needs longer may call alarm() itself.
 */
static void setup_case(const struct hbt_case *c)
{
	const char *env = getenv("HBT_ALARM");
	unsigned secs = HBT_DEFAULT_ALARM;
	struct sigaction sa;

	current = c->name;
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (env && *env)
		secs = (unsigned)strtoul(env, NULL, 10);
	if (case_timeout(c->name) > secs)
		secs = case_timeout(c->name);
	alarm(secs);
}

static const struct hbt_case *find_case(const char *name)
{
	int i;

	for (i = 0; i < n_cases; i++) {
		if (strcmp(cases[i].name, name) == 0)
			return &cases[i];
	}
	return NULL;
}

static int run_one(const struct hbt_case *c)
{
	setup_case(c);
	c->fn();
	alarm(0);
	fflush(stdout);
	return 0;
}

/* By-hand mode: each case in a child so one crash does not hide the others. */
static int run_all(const char *prog)
{
	int passed = 0, failed = 0, skipped = 0;
	int i, status, code;
	pid_t pid;

	for (i = 0; i < n_cases; i++) {
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			exit(run_one(&cases[i]));
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR) {
				perror("waitpid");
				return 1;
			}
		}
		if (WIFEXITED(status))
			code = WEXITSTATUS(status);
		else
			code = 128 + WTERMSIG(status);
		if (code == 0) {
			printf("ok   %s %s\n", prog, cases[i].name);
			passed++;
		} else if (code == HBT_EXIT_SKIP) {
			printf("skip %s %s\n", prog, cases[i].name);
			skipped++;
		} else {
			printf("FAIL %s %s (status %d)\n", prog, cases[i].name, code);
			failed++;
		}
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const struct hbt_case *c;
	int i;

	if (argc == 1)
		return run_all(prog);
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (i = 0; i < n_cases; i++) {
			if (case_timeout(cases[i].name))
				printf("%s %u\n", cases[i].name, case_timeout(cases[i].name));
			else
				printf("%s\n", cases[i].name);
		}
		return 0;
	}
	if (argc == 2 && argv[1][0] != '-') {
		c = find_case(argv[1]);
		if (!c) {
			fprintf(stderr, "%s: no case named %s (try --list)\n", prog, argv[1]);
			return 2;
		}
		return run_one(c);
	}
	fprintf(stderr, "usage: %s [--list | CASE]\n", prog);
	return 2;
}

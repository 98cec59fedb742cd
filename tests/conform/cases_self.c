/*
 * The conformance suite's own checks: what a target must give every role, whatever the case.
 */
#include "tests/conform/conform.h"

/* ---- env_passed_through ---------------------------------------------------------------------
 * Every role sees each NAME=VALUE of $HB_CF_ENV (the knob a run passes to the daemon and to
 * every role, docs/TESTING.md), in its domain's process, host or guest; and cf_domain() is the
 * domain the daemon says the role's client is. */
static void env_role(void)
{
	struct hb_client *c = cf_connect();
	const char *env = cf_env("HB_CF_ENV");
	char copy[CF_VAL_MAX], *tok, *save = NULL;

	CHECK_EQ(hb_self_domain(c), cf_domain());
	if (!env || !*env)
		return;
	snprintf(copy, sizeof(copy), "%s", env);
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		const char *got;

		CHECK(eq != NULL);
		*eq = '\0';
		got = cf_env(tok);
		if (!got || strcmp(got, eq + 1) != 0)
			cf_fail(__FILE__, __LINE__, "%s is \"%s\", want \"%s\"", tok,
				got ? got : "(unset)", eq + 1);
	}
}

CF_CASE(env_passed_through, {0, env_role}, {1, env_role}, {2, env_role})

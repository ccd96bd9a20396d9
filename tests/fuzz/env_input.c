/*
 * The SY_* environment as fuzz input (env_input.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "env_input.h"

#define WORDS 12

const char *const env_var_names[V_COUNT] = {
	"SY_CPUS", "SY_WORKERS", "SY_PIN", "SY_IDLE", "SY_DISPLAY_AFFINITY",
	"SY_METRICS_INTERVAL_MS", "SY_COLLECTOR_CPU",
};

static const char *const words[V_COUNT][WORDS] = {
	[V_CPUS] = { "0", "1", "0-1", "0,1", "0-1:1", "0-0:5", "1-0", "0,",
		     ",0", "0-1023:1000", "1024", "0 " },
	[V_WORKERS] = { "1", "2", "256", "257", "0", "007", "-1", "+1",
			" 1", "1x", "18446744073709551616", "" },
	[V_PIN] = { "close", "spread", "none", "Close", "close ", "", "spin",
		    "nonee", "c", "spread\n", "none\t", "CLOSE" },
	[V_IDLE] = { "spin", "yield", "sleep", "Spin", "sleep ", "", "none",
		     "yieldd", "s", "SLEEP", "spin\n", "close" },
	[V_DISPLAY] = { "0", "1", "2", "-1", "00", "01", "", " 1", "1 ",
			"true", "yes", "10" },
	[V_INTERVAL] = { "1", "100", "60000", "60001", "3600000", "3600001",
			 "0", "", "-5", "0x10", "100ms", "0100" },
	[V_COLLECTOR] = { "none", "0", "1", "1023", "1024", "", "None", "-1",
			  "+0", "0x1", "none ", "99999999999999999999999" },
};

void env_input_read(struct fuzz_in *in, struct env_input *env)
{
	for (int v = 0; v < V_COUNT; v++) {
		uint8_t how = fuzz_u8(in);

		env->val[v] = NULL;
		if (!(how & 1))
			continue;
		if (how & 2)
			snprintf(env->text[v], sizeof(env->text[v]), "%s",
				 words[v][fuzz_pick(in, WORDS)]);
		else
			fuzz_str(in, env->text[v], ENV_VALUE_MAX);
		env->val[v] = env->text[v];
	}
}

void env_input_apply(const struct env_input *env, const bool *garbage)
{
	for (int v = 0; v < V_COUNT; v++) {
		if (garbage && garbage[v])
			setenv(env_var_names[v], "\x01not a value", 1);
		else if (env->val[v])
			setenv(env_var_names[v], env->val[v], 1);
		else
			unsetenv(env_var_names[v]);
	}
}

void env_input_clear(void)
{
	for (int v = 0; v < V_COUNT; v++)
		unsetenv(env_var_names[v]);
}

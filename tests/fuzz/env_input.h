/*
 * The SY_* environment as fuzz input: for each variable, unset, a word from
 * a list of valid and nearly valid values, or raw bytes.
 */
#ifndef SY_TESTS_FUZZ_ENV_INPUT_H
#define SY_TESTS_FUZZ_ENV_INPUT_H

#include "fuzz.h"

#define ENV_VALUE_MAX 96

/** The variables, in the order sy_engine_create() reads them. */
enum env_var {
	V_CPUS, V_WORKERS, V_PIN, V_IDLE, V_DISPLAY, V_INTERVAL, V_COLLECTOR,
	V_COUNT
};

extern const char *const env_var_names[V_COUNT];

struct env_input {
	const char *val[V_COUNT];   /* NULL: unset */
	char text[V_COUNT][ENV_VALUE_MAX + 1];
};

/** Read one environment from @p in. */
void env_input_read(struct fuzz_in *in, struct env_input *env);

/** Set the variables of @p env (unset the others); a variable whose bit
 *  is set in @p garbage gets a value no parser accepts instead. */
void env_input_apply(const struct env_input *env, const bool *garbage);

/** Unset every SY_* variable. */
void env_input_clear(void);

#endif

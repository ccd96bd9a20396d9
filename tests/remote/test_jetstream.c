/*
 * The durable dead letter queue: an engine with sy_nats_opts.dlq_stream
 * stores every dead letter in a JetStream stream; after the engine is
 * destroyed, or its process killed with SIGKILL (and nats-server
 * restarted on the same store), a new engine lists them with their
 * description and payload and replays each exactly once.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common.h"
#include "tests/fixture.h"
#include "tests/remote/natsd.h"

#define N_DEAD 300u
#define STREAM "SYDLQ"

static struct t_natsd natsd;
static char store[64];
static char js_conf[128];

static void start_js(void)
{
	snprintf(store, sizeof(store), "/tmp/sy-js-%d-XXXXXX", (int)getpid());
	cr_assert_not_null(mkdtemp(store));
	snprintf(js_conf, sizeof(js_conf), "jetstream { store_dir: \"%s\" }",
		 store);
	cr_assert_eq(t_natsd_start(&natsd, js_conf), 0,
		     "nats-server -js did not start");
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void stop_js(void)
{
	if (natsd.pid > 0)
		t_natsd_stop(&natsd);
	nftw(store, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* An engine connected to natsd with the dead letter stream; NULL on failure
 * (no Criterion call: a forked child uses it too). */
static sy_engine *js_engine(void)
{
	const char *urls[1] = { natsd.url };
	struct sy_nats_opts no = { .urls = urls, .n_urls = 1,
				   .dlq_stream = STREAM };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	if (eng && (sy_engine_start(eng) || sy_nats_connect(eng, &no))) {
		sy_engine_destroy(eng);
		return NULL;
	}
	return eng;
}

static uint64_t key_of(uint64_t id)
{
	return id * 7 + 1;
}

/*
 * On @p a, route "work" whose server "work" fails every run, without
 * retries: N_DEAD messages end as dead letters (handler_failed). Waits
 * until the stream has acknowledged each. @return 0; -1.
 */
static int dead_letter_all(sy_engine *a)
{
	static struct t_server fails = { .fail_before = T_FAIL_ALWAYS };
	struct sy_route_opts ro = { 0 };
	struct sy_nats_stats st = { 0 };
	uint32_t sid, rid;

	if (sy_server_add(a, "work", t_server_handler, &fails, NULL, &sid))
		return -1;
	ro.servers = &sid;
	ro.n_servers = 1;
	if (sy_route_add(a, "work", &ro, &rid))
		return -1;
	for (uint64_t i = 0; i < N_DEAD; i++) {
		sy_msg *m = t_msg_try(a, i);

		if (!m)
			return -1;
		sy_msg_set_key(m, key_of(i));
		if (t_send_retry(a, rid, m, 10000))
			return -1;
	}
	for (uint64_t t0 = t_now_ms(); t_now_ms() - t0 < 20000;) {
		if (sy_nats_stats(a, &st))
			return -1;
		if (st.dl_stored + st.dl_store_failed >= N_DEAD)
			break;
		t_sleep_us(1000);
	}
	return st.dl_stored == N_DEAD && !st.dl_store_failed ? 0 : -1;
}

/*
 * On a new engine B: the stream lists every dead letter A stored, with
 * its reason, route, server, attempts, key and payload; a replay sends
 * each once through B's route of that name and deletes it; a second
 * replay sends nothing.
 */
static void expect_replayed_once(void)
{
	static struct t_server ok;
	static struct sy_dead_letter dl[N_DEAD + 1];
	static uint8_t seen[N_DEAD];
	struct sy_dl_filter only_remote;
	sy_engine *b = js_engine();
	uint32_t route, server;
	uint64_t value = 0;

	/* A restarted server may take a moment to recover its streams. */
	for (unsigned i = 0; !b && i < 100; i++) {
		t_sleep_us(100000);
		b = js_engine();
	}
	cr_assert_not_null(b, "%s", sy_last_error());
	/* Without a route of that name: listed, not replayed. */
	cr_assert_eq(sy_nats_dlq_list(b, NULL, dl, N_DEAD + 1), (int)N_DEAD,
		     "%s", sy_last_error());
	cr_expect_eq(dl[0].route, SY_ANY);
	cr_expect_eq(dl[0].server, SY_ANY);
	cr_expect_eq(sy_nats_dlq_replay(b, NULL, 0), 0);

	route = t_direct(b, "work", t_server_handler, &ok, -1, &server);
	cr_assert_eq(sy_nats_dlq_list(b, NULL, dl, N_DEAD + 1), (int)N_DEAD);
	for (unsigned i = 0; i < N_DEAD; i++) {
		cr_assert_lt(dl[i].tag, N_DEAD);
		cr_expect_eq(seen[dl[i].tag]++, 0, "tag %llu listed twice",
			     (unsigned long long)dl[i].tag);
		cr_expect_eq(dl[i].reason, SY_DL_HANDLER_FAILED);
		cr_expect_eq(dl[i].route, route);
		cr_expect_eq(dl[i].server, server);
		cr_expect_eq(dl[i].attempts, 1);
		cr_expect_eq(dl[i].key, key_of(dl[i].tag));
		cr_expect_eq(dl[i].size, 8);
		if (i)
			cr_expect_gt(dl[i].id, dl[i - 1].id);
	}
	cr_expect_eq(sy_nats_dlq_peek(b, dl[5].id, &value, sizeof(value)), 8);
	cr_expect_eq(value, dl[5].tag);
	sy_dlq_filter_init(&only_remote);
	only_remote.reasons = 1u << SY_DL_REMOTE;
	cr_expect_eq(sy_nats_dlq_list(b, &only_remote, dl, N_DEAD), 0);

	cr_assert_eq(sy_nats_dlq_replay(b, NULL, 10), 10);
	cr_assert_eq(sy_nats_dlq_replay(b, NULL, 0), (int)(N_DEAD - 10),
		     "%s", sy_last_error());
	cr_assert(t_wait_u64(&ok.delivered, N_DEAD, 20000));
	cr_expect_eq(sy_nats_dlq_replay(b, NULL, 0), 0, "replayed twice");
	cr_expect_eq(sy_nats_dlq_list(b, NULL, dl, N_DEAD + 1), 0);
	cr_expect_eq(sy_nats_dlq_peek(b, dl[5].id, &value, sizeof(value)),
		     -ENOENT);
	t_expect_each_once(&ok, 0, N_DEAD);
	t_expect_accounting(b, N_DEAD, N_DEAD, 0);
	sy_engine_destroy(b);
}

TestSuite(remote_jetstream, .init = start_js, .fini = stop_js);

Test(remote_jetstream, dead_letters_outlive_their_engine)
{
	struct sy_accounting acc;
	sy_engine *a = js_engine();

	cr_assert_not_null(a, "%s", sy_last_error());
	cr_assert_eq(dead_letter_all(a), 0, "%s", sy_last_error());
	cr_assert_eq(sy_engine_accounting(a, &acc), 0);
	cr_expect_eq(acc.dead_lettered_by[SY_DL_HANDLER_FAILED], N_DEAD);
	sy_engine_destroy(a);
	expect_replayed_once();
}

Test(remote_jetstream, dead_letters_outlive_a_killed_process_and_server)
{
	int fds[2];
	char c = 0;
	pid_t pid;
	int status;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Engine A: one byte once the stream holds its dead letters,
		 * then it waits for its SIGKILL. */
		sy_engine *a = js_engine();

		close(fds[0]);
		c = a && dead_letter_all(a) == 0 ? 'y' : 'n';
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &c, 1), 1);
	close(fds[0]);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(c, 'y', "engine A did not store its dead letters");
	cr_expect(WIFSIGNALED(status));
	/* nats-server restarts on the same store. */
	t_natsd_stop(&natsd);
	cr_assert_eq(t_natsd_start(&natsd, js_conf), 0);
	expect_replayed_once();
}

Test(remote_jetstream, a_server_without_jetstream_is_a_clear_error)
{
	struct t_natsd plain;
	const char *urls[1];
	struct sy_nats_opts no = { .urls = urls, .n_urls = 1,
				   .dlq_stream = STREAM };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_eq(t_natsd_start(&plain, NULL), 0);
	urls[0] = plain.url;
	cr_assert_not_null(eng);
	cr_expect_eq(sy_nats_connect(eng, &no), -EIO);
	cr_expect(strstr(sy_last_error(), "dead letter stream"), "%s",
		  sy_last_error());
	no.dlq_stream = "bad.name";
	cr_expect_eq(sy_nats_connect(eng, &no), -EINVAL);
	cr_expect_eq(sy_nats_dlq_list(eng, NULL, NULL, 0), 0);
	cr_expect_eq(sy_nats_dlq_replay(eng, NULL, 0), -ENOTCONN);
	sy_engine_destroy(eng);
	t_natsd_stop(&plain);
}

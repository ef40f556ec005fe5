# hookd — build, test and run.  `make help` lists the targets.
VERSION    := 0.1.0
CC         ?= cc
PKGS       := hiredis rdkafka jansson libcurl libssl libcrypto
PYTHON     := /usr/bin/python3

ifeq ($(SANITIZE),1)
BUILD      := build-asan
BIN        := bin-asan
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT        := -O1
else
BUILD      := build
BIN        := bin
SANFLAGS   :=
OPT        := -O2
endif

CFLAGS     ?= $(OPT) -g
CFLAGS     += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
              -Icommon $(shell pkg-config --cflags $(PKGS)) -DHOOKD_VERSION='"$(VERSION)"' $(SANFLAGS) -MMD -MP
LDFLAGS    += $(SANFLAGS)
LDLIBS     := $(shell pkg-config --libs $(PKGS)) -lpthread -lm

COMMON_SRC := $(wildcard common/*.c)
API_SRC    := $(wildcard producer-api/*.c)
DISP_SRC   := $(wildcard dispatcher/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
API_OBJ    := $(API_SRC:%.c=$(BUILD)/%.o)
DISP_OBJ   := $(DISP_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
COMMON_LIB := $(BUILD)/libhookd_common.a
# the dispatcher's modules without main(), for the unit tests (an archive: only what a test uses is linked)
DISP_LIB   := $(BUILD)/libhookd_dispatcher.a

PROGRAMS   := $(BIN)/producer-api $(if $(DISP_SRC),$(BIN)/dispatcher)

.PHONY: all help deps test test-plain test-suite test-unit test-api run clean bench
all: $(PROGRAMS)

help:
	@echo "make            build bin/producer-api and bin/dispatcher"
	@echo "make deps       install the Debian packages the build, tests and make run need (as root)"
	@echo "make test       unit tests, then API and end-to-end tests against real Redis and Kafka, all built"
	@echo "                with AddressSanitizer + UBSan (build-asan/, bin-asan/)"
	@echo "make test-plain the same suite against the plain -O2 build (bin/)"
	@echo "make test-valgrind  unit tests and an end-to-end subset under valgrind memcheck"
	@echo "make test-faults    kills, outages and bad receivers; prints the lost-pairs table"
	@echo "make fuzz       every libFuzzer harness, FUZZ_SECONDS (60) each"
	@echo "make bench      throughput, latency, memory against same-run baselines (docs/BENCHMARKS.md)"
	@echo "make bench-smoke    the same, 10 s and small (what CI runs), plus the dispatch probe"
	@echo "make run        build, start Redis, Kafka and both services locally"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(DISP_LIB): $(filter-out $(BUILD)/dispatcher/main.o,$(DISP_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/producer-api: $(API_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(API_OBJ) $(COMMON_LIB) $(LDLIBS)

$(BIN)/dispatcher: $(DISP_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(DISP_OBJ) $(COMMON_LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(DISP_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Idispatcher $(LDFLAGS) -o $@ $< $(DISP_LIB) $(COMMON_LIB) $(LDLIBS) -lcmocka

deps:
	sh tests/support/deps.sh

# make test builds with ASan+UBSan and runs the whole suite against that build; make test-plain runs it against the
# plain -O2 build. The sanitized build is compiled on every core first (the test recipes themselves run one at a
# time). The suite is bound by its waits (brokers stopping, receivers hanging, retries coming due), not by the CPU:
# under ASan it took as long as against the plain build (582 and 580 s in CI, 2026-12-05), and running it twice
# left CI 77 s under its 30 minutes. So CI runs it once, sanitized; the plain binaries are what the fault scenarios,
# valgrind, the deploy checks and the benchmark smoke run.
test:
	$(MAKE) -j$$(nproc) SANITIZE=1 build-tests
	$(MAKE) SANITIZE=1 test-suite

test-plain:
	$(MAKE) -j$$(nproc) SANITIZE= build-tests
	$(MAKE) SANITIZE= test-suite

test-suite: test-unit test-fuzz-replay test-api

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Two pytest runs: tests/api and tests/e2e each have their own conftest.py (fixtures of the same names).
test-api: all
	HOOKD_BIN=$(BIN) $(PYTHON) -m pytest -q tests/api $(PYTEST_ARGS)
	HOOKD_BIN=$(BIN) $(PYTHON) -m pytest -q tests/e2e $(PYTEST_ARGS)

.PHONY: build-tests
build-tests: all $(UNIT_BIN)

run: all
	bash deploy/local/run.sh

clean:
	rm -rf build build-asan bin bin-asan

-include $(COMMON_OBJ:.o=.d) $(API_OBJ:.o=.d) $(DISP_OBJ:.o=.d)

# Benchmarks (tests/bench, docs/BENCHMARKS.md): the whole stack on loopback, every row against a same-run baseline.
.PHONY: bench bench-smoke
bench: all
	HOOKD_BIN=$(BIN) $(PYTHON) tests/bench/bench.py

# bench-smoke also runs tests/bench/dispatch_probe.py small (two settings, socket queues and, where strace is
# installed, system calls) so that the probe the BENCHMARKS log quotes keeps working.
bench-smoke: all
	HOOKD_BIN=$(BIN) $(PYTHON) tests/bench/bench.py --smoke
	HOOKD_BIN=$(BIN) $(PYTHON) tests/bench/dispatch_probe.py --smoke --runs 2 --config "" --config "MAX_IN_FLIGHT=2000" \
		--sockets $(if $(shell command -v strace),--syscalls)

# --- fuzzing and memory checks (tests/fuzz/README.md) ------------------------------------------------------------
# make fuzz                 build every libFuzzer harness (clang) into build-fuzz/ and run each FUZZ_SECONDS, FUZZ_JOBS
#                           (default: the cores) at a time
# make test-fuzz-replay     replay every kept corpus/regression input under ASan+UBSan (no fuzzing; for make test)
# make test-valgrind-unit   every plain unit test binary under valgrind; fails on errors and definite leaks
FUZZ_SECONDS ?= 60
.PHONY: fuzz test-fuzz-replay test-valgrind-unit clean-fuzz
fuzz:
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

test-fuzz-replay:
	bash tests/fuzz/replay.sh

test-valgrind-unit:
	$(MAKE) SANITIZE= $(UNIT_SRC:tests/unit/%.c=build/tests/%)
	bash tests/support/valgrind-unit.sh $(UNIT_SRC:tests/unit/%.c=build/tests/%)

clean-fuzz:
	rm -rf build-fuzz
# --- end fuzzing and memory checks ----------------------------------------------------------------------------------

# Fault injection (tests/faults, docs/RELIABILITY.md): kills, outages and bad receivers against the real processes,
# every (event, webhook) pair counted; fails when one is lost. FAULT_EVENTS=... scales it.
.PHONY: test-faults
test-faults: all
	HOOKD_BIN=$(BIN) $(PYTHON) tests/faults/run_faults.py

# --- sanitizers and valgrind ---------------------------------------------------------------------------------------
# make test            (target above) unit + tests/api + tests/e2e against build-asan/ and bin-asan/; a sanitizer
#                      report aborts the process (ASAN_OPTIONS/UBSAN_OPTIONS below, LeakSanitizer at exit) and the
#                      launchers fail the test on a SIGABRT or a sanitizer line in the stderr file.
# make test-valgrind   the plain unit tests under valgrind (test-valgrind-unit), then VALGRIND_TESTS with both
#                      binaries under valgrind memcheck (HOOKD_VALGRIND=1; logs build/valgrind/e2e/vg.<name>.<pid>.log);
#                      fails on any valgrind error or definite leak.
test: export ASAN_OPTIONS := abort_on_error=1:detect_leaks=1
test: export UBSAN_OPTIONS := halt_on_error=1:print_stacktrace=1
VALGRIND_TESTS ?= tests/e2e/test_delivery.py::test_fan_out_headers_body_signature \
                  tests/e2e/test_delivery.py::test_malformed_message_is_skipped \
                  tests/e2e/test_delivery.py::test_a_webhook_change_drops_only_its_own_cached_subscribers \
                  tests/e2e/test_delivery.py::test_aged_subscriber_lists_are_read_again_on_the_redis_thread \
                  tests/e2e/test_delivery.py::test_new_connections_resume_the_tls_session \
                  tests/e2e/test_process.py::test_health_ready_and_metrics \
                  tests/e2e/test_redis_tls.py::test_webhooks_and_deliveries_over_a_tls_only_redis \
                  tests/e2e/test_redis_sentinel.py::test_webhooks_and_deliveries_follow_a_sentinel_failover[plain] \
                  tests/e2e/test_redis_sentinel.py::test_a_redis_turned_replica_refuses_writes_with_503_and_the_delivery_log_waits \
                  tests/api/test_webhooks_api.py::test_create_returns_the_webhook_object \
                  tests/api/test_webhooks_api.py::test_list_pages_newest_first \
                  tests/api/test_webhooks_api.py::test_get_own_webhook \
                  tests/api/test_webhooks_api.py::test_delete_returns_the_object_then_404 \
                  tests/api/test_webhooks_api.py::test_sigterm_exits_zero \
                  tests/api/test_webhook_test_endpoint.py::test_delivers_a_signed_synthetic_event \
                  tests/api/test_webhook_test_endpoint.py::test_reports_a_failing_receiver \
                  tests/api/test_webhook_test_endpoint.py::test_reports_a_timeout_without_blocking_the_api \
                  tests/api/test_webhook_test_endpoint.py::test_both_signatures_during_rotation \
                  tests/api/test_webhook_test_endpoint.py::test_unknown_and_foreign_webhooks_are_not_found \
                  tests/api/test_webhook_test_endpoint.py::test_the_process_runs_at_most_sixty_four_tests_at_once \
                  tests/api/test_webhook_test_endpoint.py::test_a_receiver_that_never_ends_its_body_is_read_only_so_far \
                  tests/api/test_redis_readiness.py::test_a_password_redis_wants_and_does_not_get \
                  tests/api/test_token_cache.py::test_revocation_reaches_a_warm_cache_within_the_refresh \
                  tests/api/test_token_cache.py::test_cached_tokens_are_not_honoured_while_redis_is_unreachable \
                  tests/api/test_redis_stall.py \
                  tests/api/test_events_api.py::test_each_type_routed_to_its_topic_with_envelope \
                  tests/api/test_events_api.py::test_batch_answered_and_written_in_order \
                  tests/api/test_events_api.py::test_batch_limits \
                  tests/api/test_http_hostile.py::test_pipelined_requests \
                  tests/api/test_http_hostile.py::test_chunked_body_is_decoded \
                  tests/api/test_http_hostile.py::test_expect_100_continue \
                  tests/api/test_http_hostile.py::test_head_arriving_a_byte_at_a_time_is_served \
                  tests/api/test_http_hostile.py::test_request_trickled_past_the_request_timeout_gets_408 \
                  tests/e2e/test_delivery.py::test_receivers_get_data_as_the_client_wrote_it_less_whitespace \
                  tests/e2e/test_process.py::test_ops_port_refuses_bad_requests_with_json_and_keeps_serving \
                  tests/e2e/test_retries.py::test_refusals_of_a_down_receiver_are_summed_in_the_log_and_none_is_lost
.PHONY: test-valgrind test-valgrind-e2e
test-valgrind: test-valgrind-unit test-valgrind-e2e

test-valgrind-e2e:
	$(MAKE) SANITIZE= all
	HOOKD_BIN=bin bash tests/support/valgrind-e2e.sh $(VALGRIND_TESTS)
# --- end sanitizers and valgrind -----------------------------------------------------------------------------------

/* Unit tests for common/webhook_store.c's webhook_log_buffer: the delivery-log records the dispatcher's loop
 * collects and hands to its Redis thread (dispatcher/redis_worker.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "webhook_store.h"

static void add_n(webhook_log_buffer *b, long long id, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char text[32];
        snprintf(text, sizeof text, "{\"n\":%d}", i);
        webhook_log_buffer_add(b, id, text);
    }
}

static void test_add_copies_in_arrival_order(void **state)
{
    (void)state;
    webhook_log_buffer b = {0};
    char text[] = "{\"n\":1}";
    webhook_log_buffer_add(&b, 7, text);
    text[5] = '9'; /* the record is a copy */
    webhook_log_buffer_add(&b, 8, "{\"n\":2}");
    assert_int_equal(b.len, 2);
    assert_string_equal(webhook_log_buffer_json(&b, 0), "{\"n\":1}");
    assert_int_equal(b.records[0].webhook_id, 7);
    assert_int_equal(b.records[1].seq, 1);
    webhook_log_buffer_free(&b);
    assert_null(b.records);
    assert_null(b.text);
    assert_int_equal(b.len, 0);
}

static void test_move_into_empty_hands_the_array_over(void **state)
{
    (void)state;
    webhook_log_buffer loop = {0}, worker = {0};
    add_n(&loop, 1, 0, 300);
    webhook_log_record *array = loop.records;
    assert_int_equal(webhook_log_buffer_move(&worker, &loop, 1000), 0);
    assert_ptr_equal(worker.records, array);
    assert_int_equal(worker.len, 300);
    assert_int_equal(loop.len, 0);
    /* the loop gets the worker's (empty) array back and keeps collecting */
    add_n(&loop, 2, 300, 5);
    assert_int_equal(loop.len, 5);
    assert_string_equal(webhook_log_buffer_json(&worker, 299), "{\"n\":299}");
    webhook_log_buffer_free(&loop);
    webhook_log_buffer_free(&worker);
}

static void test_move_appends_renumbers_and_drops_past_the_bound(void **state)
{
    (void)state;
    webhook_log_buffer loop = {0}, worker = {0};
    add_n(&worker, 1, 0, 3);
    add_n(&loop, 2, 3, 5);
    /* room for 4 more: the first 4 of the loop's records go, the fifth is dropped */
    assert_int_equal(webhook_log_buffer_move(&worker, &loop, 7), 1);
    assert_int_equal(worker.len, 7);
    assert_int_equal(loop.len, 0);
    for (size_t i = 0; i < worker.len; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%zu}", i);
        assert_string_equal(webhook_log_buffer_json(&worker, i), want);
        assert_int_equal(worker.records[i].seq, i);
    }
    assert_int_equal(worker.records[6].webhook_id, 2);
    /* no room at all: everything handed is dropped */
    add_n(&loop, 3, 8, 2);
    assert_int_equal(webhook_log_buffer_move(&worker, &loop, 7), 2);
    assert_int_equal(worker.len, 7);
    assert_int_equal(loop.len, 0);
    webhook_log_buffer_clear(&worker);
    assert_int_equal(worker.len, 0);
    assert_non_null(worker.records); /* capacity kept */
    webhook_log_buffer_free(&loop);
    webhook_log_buffer_free(&worker);
}

static void test_move_of_nothing_changes_nothing(void **state)
{
    (void)state;
    webhook_log_buffer loop = {0}, worker = {0};
    add_n(&worker, 1, 0, 2);
    assert_int_equal(webhook_log_buffer_move(&worker, &loop, 10), 0);
    assert_int_equal(worker.len, 2);
    webhook_log_buffer_free(&worker);
}

/* More text than the first text array holds (64 KiB): earlier records stay readable after it grows, and an
 * append-move copies them whole. */
static void test_records_survive_the_text_growing(void **state)
{
    (void)state;
    webhook_log_buffer loop = {0}, worker = {0};
    char text[200];
    for (int i = 0; i < 2000; i++) {
        snprintf(text, sizeof text, "{\"n\":%d,\"pad\":\"%0150d\"}", i, i);
        webhook_log_buffer_add(&loop, i % 3, text);
    }
    assert_int_equal(loop.len, 2000);
    assert_true(loop.text_len > 64 * 1024);
    snprintf(text, sizeof text, "{\"n\":%d,\"pad\":\"%0150d\"}", 0, 0);
    assert_string_equal(webhook_log_buffer_json(&loop, 0), text);
    webhook_log_buffer_add(&worker, 9, "{}");
    assert_int_equal(webhook_log_buffer_move(&worker, &loop, 1500), 501);
    assert_int_equal(worker.len, 1500);
    snprintf(text, sizeof text, "{\"n\":%d,\"pad\":\"%0150d\"}", 1498, 1498);
    assert_string_equal(webhook_log_buffer_json(&worker, 1499), text);
    assert_int_equal(worker.records[1499].webhook_id, 1498 % 3);
    webhook_log_buffer_free(&loop);
    webhook_log_buffer_free(&worker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_copies_in_arrival_order),
        cmocka_unit_test(test_move_into_empty_hands_the_array_over),
        cmocka_unit_test(test_move_appends_renumbers_and_drops_past_the_bound),
        cmocka_unit_test(test_move_of_nothing_changes_nothing),
        cmocka_unit_test(test_records_survive_the_text_growing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for delivery_http_ca_bundle_open / _open_file / _close (common/delivery_http.c): the CA bundle that
 * RECEIVER_CA_FILE makes (the system CAs, then the extra PEM file) is read back by name as libcurl reads it, the
 * in-memory one leaves no file anywhere, and the temp-file fallback is removed at close. End to end (a killed
 * dispatcher leaves nothing in /tmp): tests/e2e/test_process.py, test_a_killed_dispatcher_leaves_no_ca_bundle_behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery_http.h"

#define EXTRA_PEM "-----BEGIN CERTIFICATE-----\nnot a real one, the bundle copies bytes\n-----END CERTIFICATE-----\n"

/* A fresh directory (TMPDIR for the test) holding the extra PEM file. */
typedef struct fixture {
    char dir[64];
    char extra[96];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hookd-unit-ca-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->extra, sizeof f->extra, "%s/extra.pem", f->dir);
    FILE *out = fopen(f->extra, "wb");
    assert_non_null(out);
    fputs(EXTRA_PEM, out);
    fclose(out);
    setenv("TMPDIR", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->extra);
    rmdir(f->dir);
    unsetenv("TMPDIR");
    free(f);
    return 0;
}

/* The whole content of the file at path (NUL-terminated, caller frees), as a reader by name sees it. */
static char *read_all(const char *path, size_t *len)
{
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    size_t cap = 1 << 16, used = 0, n;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    while ((n = fread(buf + used, 1, cap - used, in)) > 0) {
        used += n;
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    fclose(in);
    buf[used] = '\0';
    *len = used;
    return buf;
}

/* Files in dir other than the extra PEM. */
static int other_files(const fixture *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && strcmp(e->d_name, "extra.pem") != 0)
            count++;
    closedir(d);
    return count;
}

/* The bundle read by name is the system bundle, a newline, then the extra file, byte for byte. */
static void assert_bundle_content(const char *path)
{
    size_t len = 0, system_len = 0;
    char *bundle = read_all(path, &len);
    char *system = read_all(delivery_http_system_ca(), &system_len);
    size_t extra_len = strlen(EXTRA_PEM);
    assert_int_equal(len, system_len + 1 + extra_len);
    assert_memory_equal(bundle, system, system_len);
    assert_int_equal(bundle[system_len], '\n');
    assert_memory_equal(bundle + system_len + 1, EXTRA_PEM, extra_len);
    free(bundle);
    free(system);
}

static void test_the_bundle_is_in_memory_and_read_by_name(void **state)
{
    fixture *f = *state;
    delivery_http_ca_bundle b;
    char err[256] = "";
    assert_int_equal(delivery_http_ca_bundle_open(&b, f->extra, err, sizeof err), 0);
    assert_int_equal(strncmp(b.path, "/proc/self/fd/", 14), 0);
    assert_false(b.temp_file);
    assert_true(b.fd >= 0);
    assert_bundle_content(b.path);
    assert_bundle_content(b.path); /* every reader starts at the beginning */
    assert_int_equal(other_files(f), 0); /* nothing in TMPDIR */
    char link[256];
    ssize_t n = readlink(b.path, link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_non_null(strstr(link, "memfd:hookd-ca")); /* not a file on any disk */
    int fd = b.fd;
    delivery_http_ca_bundle_close(&b);
    assert_string_equal(b.path, "");
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* the memfd is closed: the memory goes with it */
    assert_int_equal(errno, EBADF);
    delivery_http_ca_bundle_close(&b); /* twice is harmless */
}

static void test_the_temp_file_fallback_is_removed_at_close(void **state)
{
    fixture *f = *state;
    delivery_http_ca_bundle b;
    char err[256] = "";
    assert_int_equal(delivery_http_ca_bundle_open_file(&b, f->extra, f->dir, err, sizeof err), 0);
    assert_true(b.temp_file);
    assert_int_equal(strncmp(b.path, f->dir, strlen(f->dir)), 0);
    assert_int_equal(other_files(f), 1);
    assert_bundle_content(b.path);
    delivery_http_ca_bundle_close(&b);
    assert_string_equal(b.path, "");
    assert_int_equal(other_files(f), 0);
}

static void test_an_unreadable_extra_file_is_an_error_that_leaves_nothing(void **state)
{
    fixture *f = *state;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.pem", f->dir);
    delivery_http_ca_bundle b;
    char err[256] = "";
    assert_int_equal(delivery_http_ca_bundle_open(&b, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, "RECEIVER_CA_FILE"));
    assert_non_null(strstr(err, missing));
    assert_string_equal(b.path, "");
    delivery_http_ca_bundle_close(&b); /* nothing to release, harmless */
    err[0] = '\0';
    assert_int_equal(delivery_http_ca_bundle_open_file(&b, missing, f->dir, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_string_equal(b.path, "");
    assert_int_equal(other_files(f), 0); /* the fallback's temp file was removed too */
}

static void test_an_unwritable_temp_dir_is_an_error(void **state)
{
    fixture *f = *state;
    char nowhere[128];
    snprintf(nowhere, sizeof nowhere, "%s/no-such-dir", f->dir);
    delivery_http_ca_bundle b;
    char err[256] = "";
    assert_int_equal(delivery_http_ca_bundle_open_file(&b, f->extra, nowhere, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-dir"));
    assert_string_equal(b.path, "");
}

static void test_a_zeroed_bundle_closes_nothing(void **state)
{
    (void)state;
    int fd = dup(0);
    assert_true(fd >= 0);
    delivery_http_ca_bundle b;
    memset(&b, 0, sizeof b); /* fd 0 but no path: the state of a struct that was never opened */
    delivery_http_ca_bundle_close(&b);
    assert_int_not_equal(fcntl(0, F_GETFD), -1); /* stdin is still open */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_bundle_is_in_memory_and_read_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_temp_file_fallback_is_removed_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_unreadable_extra_file_is_an_error_that_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_unwritable_temp_dir_is_an_error, setup, teardown),
        cmocka_unit_test(test_a_zeroed_bundle_closes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

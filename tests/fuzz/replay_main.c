/*
 * replay_main — a main() for the fuzz harnesses without libFuzzer: feeds every file named on the command line
 * (directories are walked one level deep) to LLVMFuzzerTestOneInput() once. Built with ASan+UBSan by
 * replay.sh so `make test-fuzz-replay` re-checks every kept corpus and regression input in the normal test run.
 * Exit status: 0 when every input ran (a failed invariant or sanitizer report aborts with non-zero).
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            uint8_t *bigger = realloc(buf, cap);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    if (buf == NULL)
        return -1;
    /* exact-size copy so ASan sees reads past the end of the input */
    uint8_t *exact = malloc(len > 0 ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, failures = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            continue; /* a harness may have no regressions yet */
        if (!S_ISDIR(st.st_mode)) {
            failures += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (d == NULL) {
            perror(argv[i]);
            failures++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            failures += run_file(path) != 0;
            files++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", files);
    return failures != 0;
}

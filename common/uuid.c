/* uuid — see uuid.h. */
#include "uuid.h"

#include "secret.h"
#include "timeutil.h"

#include <stdint.h>
#include <string.h>

/* Random bits for the ids this thread makes, drawn from getrandom() RANDOM_POOL bytes at a time: one system
 * call per 32 ids rather than one per id (it showed in producer-api's profile of 500-event batches). Per thread,
 * so no lock; nothing here forks (a forked child would repeat its parent's remaining bytes). */
enum { RANDOM_PER_ID = 10, RANDOM_POOL = 32 * RANDOM_PER_ID };
static _Thread_local unsigned char random_pool[RANDOM_POOL];
static _Thread_local size_t random_used = RANDOM_POOL;

static int take_random(unsigned char out[RANDOM_PER_ID])
{
    if (random_used == RANDOM_POOL) {
        if (secret_random_bytes(random_pool, RANDOM_POOL) != 0)
            return -1;
        random_used = 0;
    }
    memcpy(out, random_pool + random_used, RANDOM_PER_ID);
    memset(random_pool + random_used, 0, RANDOM_PER_ID); /* each byte is used once */
    random_used += RANDOM_PER_ID;
    return 0;
}

int uuid_v7_generate(char out[UUID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    if (take_random(b + 6) != 0)
        return -1;
    uint64_t ms = (uint64_t)time_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 0x0f];
    }
    out[n] = '\0';
    return 0;
}

/*
 * uuid — UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then random bits, so ids sort by time.
 * Thread-safe (random bits come from a per-thread pool refilled by getrandom()).
 */
#ifndef HOOKD_UUID_H
#define HOOKD_UUID_H

#define UUID_TEXT_LEN 36

/* Writes a new lowercase UUIDv7 ("0192f0c1-...") into out (UUID_TEXT_LEN + 1 bytes). Returns 0 or -1. */
int uuid_v7_generate(char out[UUID_TEXT_LEN + 1]);

#endif

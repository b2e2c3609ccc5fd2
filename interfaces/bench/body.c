/* interfaces/bench/body.c: see body.h. */
#include "body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

/* FNV-1a over the header. */
static uint32_t header_check(const uint8_t *p)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 32; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void bench_body_write(uint8_t *buf, size_t size, const bench_body *b)
{
    memcpy(buf, "IMB1", 4);
    put32(buf + 4, b->run);
    put16(buf + 8, b->proc);
    buf[10] = b->kind;
    buf[11] = 0;
    put32(buf + 12, b->sender);
    put32(buf + 16, b->target);
    put32(buf + 20, b->counter);
    put64(buf + 24, b->intended_ns);
    put32(buf + 32, header_check(buf));
    uint32_t f = b->counter * 31u;
    for (size_t i = BENCH_BODY_MIN; i < size; i++)
        buf[i] = (uint8_t)(f + i);
}

int bench_body_read(const uint8_t *buf, size_t len, bench_body *b)
{
    if (len < BENCH_BODY_MIN || memcmp(buf, "IMB1", 4) != 0 || buf[11] != 0)
        return -1;
    if (get32(buf + 32) != header_check(buf))
        return -1;
    b->run = get32(buf + 4);
    b->proc = get16(buf + 8);
    b->kind = buf[10];
    b->sender = get32(buf + 12);
    b->target = get32(buf + 16);
    b->counter = get32(buf + 20);
    b->intended_ns = get64(buf + 24);
    if (b->kind != 1 && b->kind != 2)
        return -1;
    uint32_t f = b->counter * 31u;
    for (size_t i = BENCH_BODY_MIN; i < len; i++)
        if (buf[i] != (uint8_t)(f + i))
            return -1;
    return 0;
}

size_t bench_msgid_format(char *out, uint32_t counter, uint64_t intended_ns)
{
    int n = snprintf(out, BENCH_MSGID_MAX, "%x.%llx", counter, (unsigned long long)intended_ns);
    return n > 0 ? (size_t)n : 0;
}

int bench_msgid_parse(const char *s, uint32_t *counter, uint64_t *intended_ns)
{
    char *end;
    if (!s || !*s)
        return -1;
    unsigned long c = strtoul(s, &end, 16);
    if (*end != '.' || c > UINT32_MAX)
        return -1;
    unsigned long long t = strtoull(end + 1, &end, 16);
    if (*end != '\0')
        return -1;
    *counter = (uint32_t)c;
    *intended_ns = t;
    return 0;
}

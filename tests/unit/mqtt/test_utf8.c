/* Unit tests for mqtt/utf8.c: well-formed MQTT UTF-8 and each kind of ill-formed input
 * (U+0000, overlongs, surrogates, above U+10FFFF, truncated and stray bytes). */
#include <stdint.h>
#include <string.h>

#include "mqtt/utf8.h"
#include "tests/unit/harness.h"

static void test_utf8(void)
{
    static const char *const good[] = {
        "plain",
        "caf\xC3\xA9",
        "\xE4\xB8\xAD",
        "\xF0\x9F\x98\x80",
        ("\xEF\xBB\xBF"
         "bom"),
        "\xF4\x8F\xBF\xBF",
        "\xED\x9F\xBF",
        "\xEE\x80\x80",
        "\x7F\x01",
    };
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"a\0b", 3},
        {"\xC0\x80", 2},
        {"\xC1\xBF", 2},
        {"\xED\xA0\x80", 3},
        {"\xED\xBF\xBF", 3},
        {"\xF4\x90\x80\x80", 4},
        {"\xF5\x80\x80\x80", 4},
        {"\xFF", 1},
        {"\x80", 1},
        {"\xE4\xB8", 2},
        {"\xE0\x80\x80", 3},
        {"\xF0\x80\x80\x80", 4},
        {"\xC3\x28", 2},
        {"\xF0\x9F\x98", 3},
        {"\xE4\x28\xAD", 3},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ(hub_utf8_valid((const uint8_t *)good[i], strlen(good[i])), 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(hub_utf8_valid((const uint8_t *)bad[i].s, bad[i].n), 0);
    CHECK_EQ(hub_utf8_valid((const uint8_t *)"", 0), 1);
}

int main(void)
{
    RUN(test_utf8);
    HARNESS_EXIT();
}

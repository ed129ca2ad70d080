/*
 * What config.c (the loader) and config_value.c (the value parsers) share.
 * Not a public header.
 */
#ifndef MCFAULT_CONFIG_INT_H
#define MCFAULT_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is exactly the C string lit (no NUL past len
 * needed): how a YAML scalar or a unit is compared with a word. */
bool config_seq_eq(const char *s, size_t len, const char *lit);

#endif

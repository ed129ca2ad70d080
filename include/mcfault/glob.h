/*
 * Glob matcher over (pointer, length) byte strings, for memcached keys and
 * command names. Pure: no allocation, no globals, no recursion.
 */
#ifndef MCFAULT_GLOB_H
#define MCFAULT_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* glob_validate's status codes. */
#define GLOB_OK 0
#define GLOB_EPATTERN (-1) /* the pattern is malformed: see err_off */

/*
 * Pattern syntax (every byte, NUL included, is an ordinary byte unless
 * listed here):
 *   *        any run of bytes, the empty run included
 *   ?        any one byte
 *   \x       the byte x itself, whatever it is
 *   [set]    one byte in set; [^set] or [!set] one byte not in set
 * Inside a class:
 *   - a ']' right after '[', '[^' or '[!' is a member, so "[]]" matches
 *     "]" and "[]" / "[^]" do not close; there is no empty class;
 *   - "a-z" is the range of bytes from a to z (unsigned); a '-' makes a
 *     range only between two members, so a '-' first, last or right after
 *     a range is itself a member; a range written high-low, such as "z-a",
 *     is taken as low-high (as redis does);
 *   - "\x" is the member x, and may be either end of a range;
 *   - '*', '?', '[' are members like any other byte.
 * A '[' whose class never closes matches a literal '[', and the bytes after
 * it are read as pattern again; a '\' at the very end matches a literal
 * '\'. glob_validate reports both as errors.
 *
 * Case-insensitivity is ASCII only and does not depend on the locale: bytes
 * A-Z and a-z compare equal to their other case; a class holds a byte when
 * it holds the byte or its other case, so "[^a]" matches neither "a" nor
 * "A" when nocase is set. Bytes of 0x80 and above are never folded.
 *
 * Where this differs from redis stringmatchlen: "[]" is not an empty class,
 * an unterminated class is a literal '[', "[!...]" negates, and the match is
 * linear in space and bounded in time rather than recursive.
 */

/*
 * Tells whether the subject s[0..slen) matches the whole pattern
 * pat[0..plen). nocase folds ASCII case in the pattern and the subject.
 * Either pointer may be NULL when its length is 0. Nothing is kept.
 *
 * Cost: no allocation, no recursion, O(1) space. A '*' is matched greedily
 * with one backtrack point (the latest '*' and the subject offset it was
 * tried at), which is exact for globs because every other token matches
 * exactly one byte. Time is O(plen * slen) in the worst case, e.g.
 * "*aaaa...ab" against "aaaa...a", and O(plen + slen) for patterns with at
 * most one '*' at the end; "a*a*a*a*b" on 10 KB of 'a' is fast.
 */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen,
                bool nocase);

/*
 * Checks that pat[0..plen) is well formed. Returns GLOB_OK, or
 * GLOB_EPATTERN for the first error from the left, with *err_off set to its
 * 0-based byte offset in pat and *err_msg to a static message (lower case,
 * no trailing period, suitable after "FILE:LINE:COL: "). Either out
 * pointer may be NULL; both are left alone on success. Errors:
 *   - "trailing backslash": a '\' is the last byte (offset of the '\');
 *   - "unterminated character class": a '[' has no closing ']' (offset of
 *     the '['), whatever the class holds, a '\' at its end included;
 *   - "unterminated character class (a ']' right after '[' or '[^' is a
 *     member)": the same when the class starts with ']', as in "[]" or
 *     "[^]" (offset of the '[');
 *   - "character class range out of order": a range such as "z-a" whose
 *     end is below its start (offset of the range's first byte, the '\'
 *     if the start is escaped).
 * The empty pattern is valid (it matches only the empty subject), and so
 * are NUL and other control bytes: callers restrict the alphabet if they
 * need to.
 */
int glob_validate(const char *pat, size_t plen, size_t *err_off,
                  const char **err_msg);

#endif

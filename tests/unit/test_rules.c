/* Stub: being written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
static void test_stub(void **state) { (void)state; assert_true(1); }
int main(void) { const struct CMUnitTest t[] = {cmocka_unit_test(test_stub)}; return cmocka_run_group_tests(t, NULL, NULL); }

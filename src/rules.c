/* Stub: being written. */
#include "mcfault/rules.h"

/* Stub: being written. */
#include "mcfault/config.h"

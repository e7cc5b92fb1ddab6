/* commit.c — the image store (see store.h); being written. */
#include "store.h"

/* store.h must compile on its own (STYLE.md: every header compiles alone). */
#include "store.h"

int header_check_store(void);

int
header_check_store(void)
{
    return 0;
}

/* sdev.h must compile on its own (STYLE.md: every header compiles alone). */
#include "sdev.h"

int header_check_sdev(void);

int
header_check_sdev(void)
{
    return 0;
}

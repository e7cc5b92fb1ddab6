/* overlay.h must compile on its own (STYLE.md: every header compiles alone). */
#include "overlay.h"

int header_check_overlay(void);

int
header_check_overlay(void)
{
    return 0;
}

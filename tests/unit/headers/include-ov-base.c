/* ov-base.h must compile on its own (STYLE.md: every header compiles alone). */
#include "ov-base.h"

int header_check_ov_base(void);

int
header_check_ov_base(void)
{
    return 0;
}

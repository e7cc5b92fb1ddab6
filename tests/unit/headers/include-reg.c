/* reg.h must compile on its own (STYLE.md: every header compiles alone). */
#include "reg.h"

int header_check_reg(void);

int
header_check_reg(void)
{
    return 0;
}

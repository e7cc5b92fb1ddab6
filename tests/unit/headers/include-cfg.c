/* cfg.h must compile on its own (STYLE.md: every header compiles alone). */
#include "cfg.h"

int header_check_cfg(void);

int
header_check_cfg(void)
{
    return 0;
}

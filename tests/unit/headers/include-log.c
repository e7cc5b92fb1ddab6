/* log.h must compile on its own (STYLE.md: every header compiles alone). */
#include "log.h"

int header_check_log(void);

int
header_check_log(void)
{
    return 0;
}

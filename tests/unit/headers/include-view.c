/* view.h must compile on its own (STYLE.md: every header compiles alone). */
#include "view.h"

int header_check_view(void);

int
header_check_view(void)
{
    return 0;
}

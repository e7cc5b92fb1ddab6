/* nbdsrv.h must compile on its own (STYLE.md: every header compiles alone). */
#include "nbdsrv.h"

int header_check_nbdsrv(void);

int
header_check_nbdsrv(void)
{
    return 0;
}

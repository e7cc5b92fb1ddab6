/* iscsit.h must compile on its own (STYLE.md: every header compiles alone). */
#include "iscsit.h"

int header_check_iscsit(void);

int
header_check_iscsit(void)
{
    return 0;
}

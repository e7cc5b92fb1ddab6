/* ctl-proto.h must compile on its own (STYLE.md: every header compiles alone). */
#include "ctl-proto.h"

int header_check_ctl_proto(void);

int
header_check_ctl_proto(void)
{
    return 0;
}

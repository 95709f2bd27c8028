/* tests/consumer/main.c: lists OpenCL devices through an installed libldmcl. */
#include <stdio.h>
#include <stdlib.h>

#include <ldmcl/ldmcl.h>

int main(void) {
    ldm_device_info *list = NULL;
    int n = 0;
    if (ldm_list_devices(&list, &n) != LDM_OK) {
        fprintf(stderr, "%s\n", ldm_last_error());
        return 1;
    }
    printf("ldmcl %s sees %d OpenCL device(s)\n", LDMCL_VERSION, n);
    free(list);
    return n > 0 ? 0 : 1;
}

/* json_text — see json_text.h. */
#include "json_text.h"

#include <string.h>

char *json_text_take(json_t *obj, size_t *len)
{
    if (obj == NULL)
        return NULL;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text != NULL && len != NULL)
        *len = strlen(text);
    return text;
}

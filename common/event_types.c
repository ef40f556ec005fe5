/* event_types — see event_types.h. */
#include "event_types.h"

#include <stdio.h>
#include <string.h>

static const char *const event_type_names[EVENT_TYPE_COUNT] = {
    "project.created", "project.updated", "time.entry.created", "time.entry.updated",
    "user.created",    "user.updated",    "assignment.created", "assignment.updated",
};

const char *event_type_name(int index)
{
    if (index < 0 || index >= EVENT_TYPE_COUNT)
        return NULL;
    return event_type_names[index];
}

int event_type_index(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        if (strcmp(name, event_type_names[i]) == 0)
            return i;
    return -1;
}

int event_type_topic(const char *prefix, int index, char *out, size_t outlen)
{
    const char *name = event_type_name(index);
    if (name == NULL)
        return -1;
    int n = snprintf(out, outlen, "%s%s", prefix != NULL ? prefix : "", name);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

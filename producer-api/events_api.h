/*
 * events_api — the delivery-report hook of POST /api/v1/events (see events_api.c).
 */
#ifndef HOOKD_EVENTS_API_H
#define HOOKD_EVENTS_API_H

/* The event_producer's delivered callback: opaque is the request's batch. Called once per message. */
void events_delivered(void *opaque, int ok);

#endif

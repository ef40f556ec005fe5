"""The eight event types, in the order of common/event_types.c (one Kafka topic each).

The tests that check this list itself against the product keep their own copy on purpose
(tests/api/test_schemas.py against schemas/event-type.json, tests/deploy/check_manifests.py against the KEDA topics).
"""

EVENT_TYPES = ["project.created", "project.updated", "time.entry.created", "time.entry.updated",
               "user.created", "user.updated", "assignment.created", "assignment.updated"]

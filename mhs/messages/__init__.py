"""Message shapes and queue encodings: the outbound record, the instance queue's JSON,
wait-for-response keys, the queues' declarations."""

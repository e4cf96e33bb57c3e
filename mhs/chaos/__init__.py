"""Chaos: real role processes on real RabbitMQ and Redis, a load of messages, and faults
(workers killed, broker connections closed, the proxy failing, inbound down, duplicates),
then counts of what arrived. ``scripts/chaos`` runs it; ``tests/faults`` use its parts."""

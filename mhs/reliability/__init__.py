"""Reliable messaging: the retry policy, the x-mhs-* progress headers, failure notices and
the dead-letter queue."""

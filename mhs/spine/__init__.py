"""Spine itself, as the proxy simulator plays it: its own MHS's replies, and the faults it
can inject."""

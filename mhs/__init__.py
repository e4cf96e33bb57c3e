"""MHS Simulator: a multi-tenant NHS Spine Message Handling Server simulator."""

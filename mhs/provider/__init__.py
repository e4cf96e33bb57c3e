"""The simulated GP Connect provider: what it answers, and the records it holds. No transport
imports."""

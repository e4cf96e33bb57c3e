"""GP Connect: the interactions we know, and the simulated provider's records. No transport
imports, and nothing here imports the directory (the directory validates against it)."""

"""GP Connect: the interactions we know and FHIR's wire formats. No transport imports, and
nothing here imports the directory or the SSP (both read from it)."""

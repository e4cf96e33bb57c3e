"""HTTP at the roles' edge: client certificates, FHIR answers, relaying, request limits."""

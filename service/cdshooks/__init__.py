"""The CDS Hooks 2.0 protocol: request, card, discovery and feedback models, prefetch, FHIR fetch, JWT auth."""

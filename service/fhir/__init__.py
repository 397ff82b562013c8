"""FHIR R4 input: validation with fhir.resources (R4B models) and normalisation into coded facts."""

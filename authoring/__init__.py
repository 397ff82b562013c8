"""Tools for rule authors (value-set builds, clinical validation, terminology expansion).

Kept apart from `service`: nothing on the request path imports this package; the CLI and the tests do.
"""

"""Rules as data: the rule-file schema, the loader, pure evaluation, traces, card rendering and rule tests."""

"""eval_protocols package."""

"""networks package."""

"""human package."""

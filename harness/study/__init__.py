"""Designing the human studies of a run (`design`) and their attention checks (`attention`)."""

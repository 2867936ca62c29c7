"""Simulated annotators: the judges that score what they see (`judges`) and the votes they cast (`votes`)."""

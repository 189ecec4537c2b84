"""Revertible TaskFlow tasks, grouped by what they touch."""

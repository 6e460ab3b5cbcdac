"""Validation rules as pure DataFrame transforms (see rules.py)."""

"""Contextual bandits: policies that choose which items to show from click feedback, a simulated
shop to judge them online, and off-policy estimators to judge them on logged feedback."""

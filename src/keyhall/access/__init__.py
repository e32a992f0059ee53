"""Accounts, permission sets, assignments and effective access."""

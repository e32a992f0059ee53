"""Keyhall: a self-hosted identity center for AWS accounts."""

"""Thin handlers: one module per AWS service and native API."""

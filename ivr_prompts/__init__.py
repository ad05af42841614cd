"""Shipped IVR prompts (data) plus the generator and the announcement grammar."""

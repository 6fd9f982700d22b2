"""Merchant side: the REST API for cash registers now, the console later."""

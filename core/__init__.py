"""The loyalty service: knows nothing of messengers or HTTP."""

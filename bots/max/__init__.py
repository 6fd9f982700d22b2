"""MAX adapter (own aiohttp client); arrives with step 4."""

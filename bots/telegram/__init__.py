"""Telegram adapter (aiogram 3); arrives with step 3."""

"""VK adapter (vkbottle); arrives with step 4."""

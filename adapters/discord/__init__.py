"""Discord adapter (discord.py AutoShardedClient, app commands, persistent views)."""

"""Authentication and authorization of API requests (who is asking, and may they)."""

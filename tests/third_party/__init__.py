"""Third-party attention implementations, wrapped with torch's SDPA signature as a user would."""

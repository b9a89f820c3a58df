def plain_key(key: str, key_prefix: str, version: int) -> str:
    """Cache keys exactly as written: `whatsapp:onboarding:{code}` is that key in Redis."""
    return key

from django_redis import get_redis_connection


def plain_key(key: str, key_prefix: str, version: int) -> str:
    """Cache keys exactly as written: `whatsapp:onboarding:{code}` is that key in Redis."""
    return key


def redis_client():
    """The raw redis-py client behind the default cache (django-redis' shared pool).

    Raises NotImplementedError on the embedded default, whose cache is not Redis.
    """
    return get_redis_connection("default")

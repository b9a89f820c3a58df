"""kombu's Redis transport, with a channel that closes completely when the broker is gone.

Why (issue 15): with a late-ack task unacknowledged and a BRPOP in flight — any worker with a
free process, i.e. `--concurrency` 2 or more — losing the broker killed the worker for good:

    consumer: Connection to broker lost. Trying to re-establish the connection...
    Restoring 1 unacknowledged message(s)
    Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")

The chain, in kombu 5.7.0 / celery 5.7.0:

1. The consumer calls `Connection.collect()`, which closes the channels and then clears the
   transport's `client` (`kombu/connection.py`, `_do_close_transport`).
2. `redis.Channel.close()` first reads the reply of the BRPOP in flight (added by
   celery/kombu#1733 so a popped message is not lost). The broker is gone, so that read raises
   `ConnectionError` *before* the channel is marked closed; `maybe_close_channel` swallows it
   and leaves a half-closed channel holding its unacknowledged messages.
3. The consumer then calls `connection.close()` (`celery/worker/consumer/consumer.py`,
   `on_connection_error_after_connected`). That closes the half-closed channel again; restoring
   its unacknowledged messages needs a new Redis pool, whose parameters are read from the
   transport's `client`, now None: `conninfo.hostname` raises AttributeError
   (`kombu/transport/redis.py`, `Channel._connparams`). It is not a connection error, so it
   escapes `ignore_errors`, the consumer's retry loop and the worker.

`worker_cancel_long_running_tasks_on_connection_loss` plays no part: the crash happens before
the consumer looks at that setting, and it happens with the setting off too.

The fix: when that read fails, finish closing the channel right away, while the transport can
still build clients, so the second close finds it closed. The unacknowledged messages stay in
Redis's `unacked` hash and come back after the visibility timeout, exactly as when the channel
closes without a BRPOP in flight; a webhook delivery does not wait for that, since the sweeper
retakes rows whose lease expired.
"""

from kombu.transport import redis


class Channel(redis.Channel):
    def close(self) -> None:
        try:
            super().close()
        except self.connection_errors:
            if not self.closed:
                # The BRPOP reply could not be read (`_in_poll` is cleared now): close the rest.
                super().close()
            raise


class Transport(redis.Transport):
    Channel = Channel

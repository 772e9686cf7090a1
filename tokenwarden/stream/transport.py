"""The faust App our workers run, with a configurable fetch wait.

faust-streaming's aiokafka driver builds the worker's consumer with a hardcoded
``fetch_max_wait_ms=1500`` (``faust/transport/drivers/aiokafka.py``,
``AIOKafkaConsumerThread._create_worker_consumer``). Apache Kafka answers a fetch as soon as
data arrives, so there it only bounds idle polling; but a broker that waits out the whole
fetch wait before answering (the Tansu test broker does) adds up to that wait to every hop.
``StreamApp`` therefore brings its own transport: the same driver classes, subclassed only
where the consumer is built — after faust's driver constructs the ``AIOKafkaConsumer``
(and before it is started, which is when aiokafka hands the value to its fetcher), the
consumer's fetch wait is replaced by ``KafkaSettings.fetch_wait_ms``. No module is patched;
``tests/stream/test_transport.py`` checks that the started consumer's fetcher uses our
value, so a faust or aiokafka upgrade that moves the attribute fails loudly, not silently.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

#: The attribute of ``aiokafka.AIOKafkaConsumer`` that ``start()`` passes to its Fetcher.
_FETCH_WAIT_ATTR = "_fetch_max_wait_ms"


def set_fetch_wait(consumer: Any, fetch_wait_ms: int) -> None:
    """Give an (unstarted) aiokafka consumer a fetch wait other than faust's 1500 ms."""
    if not hasattr(consumer, _FETCH_WAIT_ATTR):
        raise RuntimeError(
            "aiokafka.AIOKafkaConsumer has no attribute "
            f"{_FETCH_WAIT_ATTR}: cannot set the fetch wait (aiokafka changed; see "
            "tokenwarden/stream/transport.py)"
        )
    setattr(consumer, _FETCH_WAIT_ATTR, int(fetch_wait_ms))


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        set_fetch_wait(consumer, fetch_wait_of(self.app))
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose worker consumer uses the app's fetch wait."""

    Consumer = _Consumer


def fetch_wait_of(app: Any) -> int:
    value = getattr(app, "fetch_wait_ms", None)
    return int(value) if value is not None else 1500


class StreamApp(faust.App):
    """A ``faust.App`` whose workers' consumers honour ``fetch_wait_ms``."""

    fetch_wait_ms: int = 1500

    def _new_transport(self) -> Any:
        return FetchWaitTransport(self.conf.broker_consumer, self, loop=self.loop)

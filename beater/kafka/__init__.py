"""Kafka as a source of documents: at-least-once, bounded, next to HTTP and WAMP ingest.

:mod:`beater.kafka.logic` is pure logic (settings parsing, poison classification, offset
tracking, the pause/resume decision); :mod:`beater.kafka.source` runs the kafka-python consumer
in one dedicated thread and hands records to the reactor.
"""

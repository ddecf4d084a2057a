"""Canonical events on the wire: which encoding a deployment uses, in one place.

No schema registry configured (the embedded stack): Avro single-object encoding, and the schemas in
``schemas/`` are the registry (``streams.canonical.avro``). ``Q2C_SCHEMA_REGISTRY_URL`` set
(Confluent Schema Registry, Apicurio's ``/apis/ccompat/v7``, Karapace): Confluent's wire format
(``00`` + schema id + body) through confluent-kafka's own Avro serializer, subject
``<topic>-value``. Decoding reads either, whatever is configured, so consumers keep working while a
deployment moves from one to the other.
"""
from __future__ import annotations

import json
from functools import cached_property

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.canonical import avro
from streams.canonical.models import Canonical
from streams.config import Settings

CONFLUENT_MAGIC = b"\x00"
TOPIC_PREFIX = avro.topic_of("")


def registry_client(settings: Settings) -> SchemaRegistryClient | None:
    """A client of the configured schema registry, or None when the deployment has none."""
    if not settings.schema_registry_url:
        return None
    conf = {"url": settings.schema_registry_url}
    if settings.schema_registry_basic_auth:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth.get_secret_value()
    if settings.schema_registry_ca_file:
        conf["ssl.ca.location"] = settings.schema_registry_ca_file
    return SchemaRegistryClient.new_client(conf)


class CanonicalWire:
    """Encode canonical models for their topic, decode any canonical payload back to a record."""

    def __init__(self, registry: SchemaRegistryClient | None = None, auto_register: bool = True):
        self.registry = registry
        self.auto_register = auto_register
        self._serializers: dict[str, AvroSerializer] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> CanonicalWire:
        return cls(registry_client(settings), settings.schema_registry_auto_register)

    @property
    def format(self) -> str:
        return "confluent" if self.registry is not None else "single-object"

    def encode(self, event_type: str, model: Canonical) -> bytes:
        if self.registry is None:
            return avro.encode(event_type, model)
        serializer = self._serializers.get(event_type)
        if serializer is None:
            # auto.register off: the schema must have been registered (``q2c schemas register``)
            serializer = AvroSerializer(
                self.registry, json.dumps(avro.load_schema(event_type)),
                to_dict=lambda obj, ctx: obj.model_dump(),
                conf={"auto.register.schemas": self.auto_register})
            self._serializers[event_type] = serializer
        return serializer(model, SerializationContext(avro.topic_of(event_type), MessageField.VALUE))

    @cached_property
    def _deserializer(self) -> AvroDeserializer | None:
        return AvroDeserializer(self.registry) if self.registry is not None else None

    def decode(self, payload: bytes, topic: str) -> tuple[str | None, dict]:
        """(event type, record); ``avro.UnknownSchema`` when the payload is neither format."""
        if payload[:1] != CONFLUENT_MAGIC:
            return avro.decode(payload)
        if self._deserializer is None:
            raise avro.UnknownSchema("Confluent wire format, but no schema registry is configured (Q2C_SCHEMA_REGISTRY_URL)")
        try:
            record = self._deserializer(payload, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # noqa: BLE001 - the registry client raises several kinds
            raise avro.UnknownSchema(f"Confluent wire format, not readable through the registry: {exc}") from exc
        event_type = topic[len(TOPIC_PREFIX):] if topic.startswith(TOPIC_PREFIX) else None
        return event_type, record

    def register_all(self) -> dict[str, int]:
        """Register every canonical schema under its topic's subject (BACKWARD compatibility is
        the registry's check); returns subject → schema id."""
        from confluent_kafka.schema_registry import Schema

        if self.registry is None:
            raise RuntimeError("no schema registry is configured (Q2C_SCHEMA_REGISTRY_URL)")
        ids = {}
        for event_type in avro.EVENT_TYPES:
            subject = f"{avro.topic_of(event_type)}-value"
            ids[subject] = self.registry.register_schema(subject, Schema(json.dumps(avro.load_schema(event_type)), "AVRO"))
        return ids

#!/usr/bin/env python3
"""Framed values from an independent implementation: Confluent's own Python serializers.

Reads a JSON spec on stdin:

    {"url": "http://127.0.0.1:PORT", "topic": "t",
     "username": "...", "password": "...",            (optional: HTTP basic auth)
     "messages": [{"format": "avro" | "json", "schema": "<schema text>", "value": ...}, ...]}

and writes, one line per message, the bytes confluent-kafka's AvroSerializer or JSONSerializer
makes of the value (hex): the schema registry's wire format, with the schema registered under
"<topic>-value" in the registry at `url` as the serializer does it.

Values are JSON; what Python needs typed is tagged as a one-member object:
  {"$decimal": "-123.45"}           decimal.Decimal
  {"$datetime": "2024-02-29T23:59:59.123456+00:00"}   an aware datetime
  {"$naive": "2024-02-29T23:59:59.123456"}             a naive datetime (local-timestamp-*)
  {"$date": "2024-02-29"}           datetime.date
  {"$time": "23:59:59.123456"}      datetime.time
  {"$bytes": "00ff10"}              bytes, from hex
  {"$uuid": "..."}                  uuid.UUID
  {"$float": "nan" | "inf" | "-inf" | "1.5"}   float
"""

import datetime
import decimal
import json
import sys
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

TAGS = {
    "$decimal": decimal.Decimal,
    "$datetime": datetime.datetime.fromisoformat,
    "$naive": datetime.datetime.fromisoformat,
    "$date": datetime.date.fromisoformat,
    "$time": datetime.time.fromisoformat,
    "$bytes": bytes.fromhex,
    "$uuid": uuid.UUID,
    "$float": float,
}


def typed(v):
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k in TAGS:
                return TAGS[k](x)
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return v


def main():
    spec = json.load(sys.stdin)
    conf = {"url": spec["url"]}
    if spec.get("username"):
        conf["basic.auth.user.info"] = "%s:%s" % (spec["username"], spec.get("password", ""))
    client = SchemaRegistryClient(conf)
    ctx = SerializationContext(spec["topic"], MessageField.VALUE)
    serializers = {}
    for m in spec["messages"]:
        key = (m["format"], m["schema"])
        if key not in serializers:
            if m["format"] == "avro":
                serializers[key] = AvroSerializer(client, m["schema"])
            elif m["format"] == "json":
                serializers[key] = JSONSerializer(m["schema"], client)
            else:
                raise SystemExit("unknown format %r" % m["format"])
        framed = serializers[key](typed(m["value"]), ctx)
        sys.stdout.write(framed.hex() + "\n")


if __name__ == "__main__":
    main()

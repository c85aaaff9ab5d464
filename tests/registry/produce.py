#!/usr/bin/env python3
"""Framed values from an independent implementation: Confluent's own Python serializers.

Reads a JSON spec on stdin:

    {"url": "http://127.0.0.1:PORT", "topic": "t",
     "username": "...", "password": "...",            (optional: HTTP basic auth)
     "register": [{"subject": "s", "schema": "<Avro schema text>"}, ...],   (optional: before all)
     "proto_dir": "/path",                             (optional: the .proto files of "protobuf")
     "messages": [{"format": "avro" | "json" | "protobuf", "schema": "<schema text>", "value": ...,
                   "field": "value" | "key",            (optional: default "value")
                   "references": [{"name": "n", "subject": "s", "version": 1}],  (optional, avro)
                   "message": "module_pb2.Type"}, ...]}   (protobuf: the generated class)

and writes, one line per message, the bytes confluent-kafka's AvroSerializer, JSONSerializer or
ProtobufSerializer makes of the value (hex): the schema registry's wire format, with the schema
registered under "<topic>-value" ("<topic>-key" for a key) in the registry at `url` as the
serializer does it. "register" registers schemas first (for an Avro schema's "references").

For "protobuf", every .proto under "proto_dir" is compiled with grpc_tools.protoc into a
temporary directory, and the value (proto3 JSON: field names, RFC 3339 timestamps, wrappers as
values, int64 as a number or a string) is parsed into the message by json_format.ParseDict.

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
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
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


def generated(proto_dir, out_dir):
    """Compile every .proto under proto_dir into out_dir (importable)."""
    files = []
    for root, _, names in os.walk(proto_dir):
        files += [os.path.relpath(os.path.join(root, n), proto_dir) for n in names if n.endswith(".proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", out_dir] + sorted(files),
                   check=True)
    sys.path.insert(0, out_dir)


def message_class(name):
    """"shop.orders_pb2.Order.Line": the module is the path up to the part ending in _pb2."""
    parts = name.split(".")
    at = next(i for i, p in enumerate(parts) if p.endswith("_pb2")) + 1
    cls = importlib.import_module(".".join(parts[:at]))
    for p in parts[at:]:
        cls = getattr(cls, p)
    return cls


def main():
    spec = json.load(sys.stdin)
    conf = {"url": spec["url"]}
    if spec.get("username"):
        conf["basic.auth.user.info"] = "%s:%s" % (spec["username"], spec.get("password", ""))
    client = SchemaRegistryClient(conf)
    for r in spec.get("register", []):
        client.register_schema(r["subject"], Schema(r["schema"], "AVRO"))
    tmp = None
    if spec.get("proto_dir"):
        tmp = tempfile.TemporaryDirectory()
        generated(spec["proto_dir"], tmp.name)
    fields = {"value": MessageField.VALUE, "key": MessageField.KEY}
    serializers = {}
    for m in spec["messages"]:
        field = m.get("field", "value")
        ctx = SerializationContext(spec["topic"], fields[field])
        key = (m["format"], m.get("schema"), m.get("message"), field)
        if key not in serializers:
            if m["format"] == "avro":
                refs = [SchemaReference(r["name"], r["subject"], r["version"]) for r in m.get("references", [])]
                schema = Schema(m["schema"], "AVRO", refs) if refs else m["schema"]
                serializers[key] = AvroSerializer(client, schema)
            elif m["format"] == "json":
                serializers[key] = JSONSerializer(m["schema"], client)
            elif m["format"] == "protobuf":
                serializers[key] = ProtobufSerializer(message_class(m["message"]), client)
            else:
                raise SystemExit("unknown format %r" % m["format"])
        if m["format"] == "protobuf":
            from google.protobuf import json_format
            value = json_format.ParseDict(m["value"], message_class(m["message"])())
        else:
            value = typed(m["value"])
        framed = serializers[key](value, ctx)
        sys.stdout.write(framed.hex() + "\n")


if __name__ == "__main__":
    main()

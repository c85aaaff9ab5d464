#!/usr/bin/env python3
"""The test registry's canonical text of a Protobuf schema, as Confluent's registry stores it.

Confluent's Python ProtobufSerializer registers base64 of a FileDescriptorProto; the registry
stores (and serves) it as .proto text. Reads the schema string on stdin and writes that text:
base64 descriptors printed the way Confluent's ProtobufSchemaUtils prints them (the printer of
the decoder's own fixtures, actors/src/parse/protobuf/fixtures/fake_registry.py), .proto text
kept as sent.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "actors", "src", "parse", "protobuf", "fixtures"))

import fake_registry  # noqa: E402

sys.stdout.write(fake_registry.to_text(sys.stdin.read()))

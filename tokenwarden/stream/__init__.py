"""The Kafka runner: faust-streaming workers over Kafka topics (the only place faust and the
Kafka clients are imported). Nothing is imported here, so ``tokenwarden.stream.settings``
loads without them."""

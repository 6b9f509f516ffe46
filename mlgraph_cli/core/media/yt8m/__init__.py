"""YouTube-8M TFRecords without TensorFlow: the record framing (``tfrecord``), the protobuf
messages (``protowire``), the records (``records``), vocabulary and label columns
(``labels``) and the files a command is given (``files``). The record format is
summarised in docs/method.md ("YouTube-8M")."""

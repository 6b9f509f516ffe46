"""Video (YouTube-8M): TFRecord reading, the video features file, temporal heads, video metrics and a small trainer.

Frames play the role of an image's locations (docs/method.md, "Video"): a clip is a (D, T, 1) feature map
with a (T,) mask of real frames. Modules: ``tfrecord`` (checked framing), ``protowire``
(tf.train.Example / SequenceExample), ``yt8m`` (records, vocabulary, label columns, annotations),
``features`` (the features file), ``heads`` (temporal CMA and pooling baselines), ``metrics``
(GAP@k, segment MAP@K), ``training`` (fit, predict, score segments), ``synthetic`` (generated clips).
"""

"""Image -> feature arrays: the extractor interface and conversion rules (`base`), the on-disk cache keyed by
(image sha256, extractor id) (`cache`), InceptionV3 pool3 for FID (`inception`), open_clip towers (`clip`) and a
weight-free toy extractor (`pixels`). Every extractor loads weights from local files only.
"""

"""The model service: the item (and user) towers online behind TensorFlow Serving's REST API.

* :mod:`.config`    the service's JSON config (shaped like PAI-EAS's ``eascmd`` one), validated;
* :mod:`.signature` a version's ``serving_default`` inputs and outputs;
* :mod:`.versions`  version folders on disk, background loading, warm-up, switching, retiring;
* :mod:`.requests`  predict bodies checked against the signature (msgspec's fast path, the
  general parser); TF Serving's answers;
* :mod:`.batching`  server-side batching of concurrent requests;
* :mod:`.app`       the ASGI app: predict on its own lane, the other routes FastAPI's; errors,
  token, size limit, metrics;
* :mod:`.service`   create / modify / desc / stop of managed background servers;
* ``python -m dropoutnet.serving CONFIG.json``  one server in the foreground.
"""

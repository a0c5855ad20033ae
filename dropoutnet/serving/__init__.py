"""The model service: the item (and user) towers online behind TensorFlow Serving's REST API.

* :mod:`.config`    the service's JSON config (shaped like PAI-EAS's ``eascmd`` one), validated;
* :mod:`.versions`  version folders on disk, background loading, warm-up, switching, retiring;
* :mod:`.requests`  predict bodies checked against the signature; TF Serving's answers;
* :mod:`.batching`  server-side batching of concurrent requests;
* :mod:`.app`       the ASGI app (FastAPI): routes, errors, token, size limit, metrics;
* :mod:`.service`   create / modify / desc / stop of managed background servers;
* ``python -m dropoutnet.serving CONFIG.json``  one server in the foreground.
"""

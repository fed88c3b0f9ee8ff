"""blackbox_exporter compatibility: its module format, its multi-target `/probe` endpoint and its
exposition for one result, and `probed import-blackbox`.

translate.py turns a module (config/blackbox.py) and a target into one of probed's probe specs;
guard.py decides which targets `/probe` may reach; exposition.py renders one result as blackbox
does; endpoint.py runs one probe per request under its own concurrency cap; importer.py converts a
blackbox.yml. Results of `/probe` go to the requester only: never into the rings, states or SLOs.
"""

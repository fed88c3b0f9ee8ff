"""botocore's API models, loaded so that the event loop keeps running meanwhile.

A client's first creation for a service reads that service's JSON model (EC2's is 4 MB) plus a
few shared files. Read on the loop, that stalls every probe in flight for a noticeable time
(bench/aws_client_stall.py; figures in docs/performance.md). Read in a worker thread by the C
JSON scanner it still does, because that scanner holds the GIL for the whole document. So the
pool reads exactly the files a client needs, in a thread, with json's pure-Python scanner: slower,
but it yields the GIL every switch interval (5 ms) and the loop runs in between.
"""

from __future__ import annotations

import gzip
import json
import json.scanner
import os
from collections.abc import Callable, Iterable
from typing import Any

from botocore.loaders import Loader

# What creating a client reads besides the service's own files (found by tracing Loader calls;
# aiobotocore's `warm_up_loader_caches` reads far more: examples, waiters, paginators).
_SHARED_DATA = ("endpoints", "sdk-default-configuration", "partitions", "_retry")
_SERVICE_DATA = ("service-2", "endpoint-rule-set-1")


def create_loader() -> Any:
    """A botocore data loader (model cache) whose JSON parsing lets the event loop run."""
    return Loader(file_loader=_LoopFriendlyJSONFileLoader())


def load_models(loader: Any, services: Iterable[str]) -> None:
    """Fill the loader's cache with what create_client needs. Blocking: call it in a worker thread."""
    for name in _SHARED_DATA:
        loader.load_data(name)
    for service in services:
        for type_name in _SERVICE_DATA:
            loader.load_service_model(service, type_name)


class _LoopFriendlyJSONFileLoader:
    """botocore's JSONFileLoader (same files, same order), parsing with the pure-Python scanner.

    Strings are still decoded by the C `scanstring`, one at a time, which is short. Objects become
    plain dicts, not botocore's OrderedDicts: dicts keep insertion order too (botocore checks no
    types), and a dict holding only strings and numbers is not tracked by the garbage collector,
    which leaves far fewer objects for every later full collection to walk.
    """

    _OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = ((".json", open), (".json.gz", gzip.open))

    def exists(self, file_path: str) -> bool:
        return any(os.path.isfile(file_path + ext) for ext, _ in self._OPENERS)

    def load_file(self, file_path: str) -> Any:
        for ext, opener in self._OPENERS:
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as fp:
                    payload = fp.read().decode("utf-8")
                decoder = json.JSONDecoder()  # one per call: the scanner keeps a memo of keys
                decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
                return decoder.decode(payload)
        return None

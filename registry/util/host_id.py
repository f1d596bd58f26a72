"""Which host this is: the machine's hostname plus a random id kept in the registry home.

Two homes over one database (two machines, or two checkouts) never overwrite each other's
folders; REGISTRY_HOST_ID overrides it (tests, containers whose hostname changes).
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

ID_FILE = ".host-id"


def host_id(home: Path) -> str:
    if os.environ.get("REGISTRY_HOST_ID"):
        return os.environ["REGISTRY_HOST_ID"][:255]
    path = home / ID_FILE
    try:
        machine = path.read_text().strip()
    except OSError:
        machine = ""
    if not machine:
        machine = uuid.uuid4().hex[:12]
        try:
            tmp = path.with_name(f"{ID_FILE}.{os.getpid()}.tmp")
            tmp.write_text(machine + "\n")
            os.replace(tmp, path)
            machine = path.read_text().strip()  # a concurrent first run may have won
        except OSError:  # a read-only home: the hostname alone
            return socket.gethostname()[:200]
    return f"{socket.gethostname()[:200]}/{machine}"

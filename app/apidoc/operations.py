"""What each operation's description says — what it does, who may call it, what it
starts, what to do next — with an example request and/or response, keyed "VERB /path".

An endpoint's own docstring (or ``description=``) stays and follows this text. Every
operation has an entry and every entry an operation (``tests/test_apidoc.py``); examples
are checked against the operation's schemas there too.
"""

from __future__ import annotations

from app.apidoc.op import Op
from app.apidoc.ops_copies import COPY_OPERATIONS
from app.apidoc.ops_jobs import JOB_OPERATIONS
from app.apidoc.ops_service import SERVICE_OPERATIONS

OPERATIONS: dict[str, Op] = {**SERVICE_OPERATIONS, **JOB_OPERATIONS, **COPY_OPERATIONS}

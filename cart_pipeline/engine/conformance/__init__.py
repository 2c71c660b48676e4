"""ksqlDB's own conformance cases (QTT/RQTT) run against the embedded engine over REST.

The cases are data kept outside the repository (``KSQL_CONFORMANCE_DIR``, else
``<repo>/../shared/ksql-conformance``) and read at run time. Every case ends as one of
``passed``, ``failed`` (any difference from ksqlDB's expected behaviour) or ``unsupported``
(the engine refused with "Unsupported by the embedded engine", or the case needs a format we
do not serve).
"""

from cart_pipeline.engine.conformance.cases import Case, conformance_dir, load_cases
from cart_pipeline.engine.conformance.runner import Outcome, Runner

__all__ = ["Case", "Outcome", "Runner", "conformance_dir", "load_cases"]

"""Evaluation: the paper's protocol and the usual detection metrics, per benchmark.

``metrics`` (numbers), ``protocol`` (native / jpeg-aligned), ``sweeps`` (robustness),
``scoring`` (any DetectorModule through its own view, or any records -> rows callable),
``loading`` (checkpoint -> module + view), ``layouts`` (benchmark folders), ``check``
(pre-run file check), ``report`` + ``plots`` (outputs; the metrics.json schema is in
``report``'s docstring), ``commands`` / ``inputs`` / ``runner`` (``aligngemini evaluate``).
"""

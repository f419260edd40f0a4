"""Tuning on validation with Ray Tune: `forgetting tune` (``tune``), one trial (``trial``), `forgetting exp`
(``experiment``) and the throwaway copy of the project that trials and benchmarks run in (``project``)."""

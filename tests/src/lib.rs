//! Tests only: see `tests/` (trybuild UI tests under `ui/`, and the
//! attribute / builder / spec-file agreement property tests).

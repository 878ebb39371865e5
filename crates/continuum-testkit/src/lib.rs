//! Dev-only helpers for tests and benchmarks. Never linked into the `continuum` binary's serve path.

pub mod pg;
pub mod synth;

//! Dev-only helpers for tests and benchmarks. Never linked into the `continuum` binary's serve path.

pub mod browser;
pub mod pg;
/// The synthetic data generator now lives in `continuum-seed` (it is a product feature: `continuum seed`);
/// re-exported under its old name so tests and benchmarks keep their imports.
pub use continuum_seed as synth;

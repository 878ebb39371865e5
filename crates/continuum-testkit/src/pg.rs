//! Throwaway PostgreSQL clusters (in progress).

//! lock (placeholder).

//! journal (placeholder).

//! docker actions (placeholder).

//! compose actions (placeholder).
